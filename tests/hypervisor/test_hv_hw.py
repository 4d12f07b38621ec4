"""The hardware-assisted technique (techniques/hw.py): teachos in VS/VU-mode on the H extension,
compared with the same image on the physical board; the world switch, exits and statistics."""

from __future__ import annotations

from importlib import resources

import pytest
from virtlevels_hypervisor.hypervisor import Hypervisor
from virtlevels_hypervisor.techniques.hw import HW_NATIVE, HwTechnique, host_state

from virtlevels.errors import ConfigError
from virtlevels.guests import boot_teachos, build_teachos
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.devices.finisher import TestFinisher
from virtlevels.machine.devices.uart import Uart16550
from virtlevels.machine.isa import x86like
from virtlevels.machine.isa.encodings import ENCODINGS
from virtlevels.machine.machine import PhysicalMachine, RunResult
from virtlevels.machine.memmap import TEST_FINISHER_BASE, UART_BASE
from virtlevels.world import World

LIMIT = 5_000_000
MIB = 1 << 20


def run_native(image, engine: str = "fast") -> RunResult:  # type: ignore[no-untyped-def]
    m = virt_machine()
    boot_teachos(m, image)
    return m.run(LIMIT, engine=engine)


def hw_vm(**kw):  # type: ignore[no-untyped-def]
    host = PhysicalMachine(hypervisor=True, **kw)
    hv = Hypervisor(host)
    return hv.create_vm("hw"), hv


def run_hw(image, engine: str = "fast"):  # type: ignore[no-untyped-def]
    vm, _hv = hw_vm()
    boot_teachos(vm, image)
    return vm.run(LIMIT, engine=engine), vm


def lines_by_process(text: str) -> dict[str, list[str]]:
    """UART lines grouped by their "name pid:" prefix (the interleaving is timing, not equivalence)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        out.setdefault(line.split(":")[0], []).append(line)
    return out


@pytest.mark.parametrize(
    ("programs", "interval"),
    [
        (["hello"], 3000),
        (["hello", "counter", "counter"], 3000),
        (["fault", "hello"], 3000),
        (None, None),  # the default image: hello + two counters, the default 1000-tick timer
    ],
)
def test_teachos_under_hw_equals_native(programs: list[str] | None, interval: int | None) -> None:
    image = build_teachos(programs) if interval is None else build_teachos(programs, timer_interval=interval)
    native = run_native(image)
    result, vm = run_hw(image)
    assert native.status in ("pass", "fail")
    assert (result.status, result.exit_code) == (native.status, native.exit_code)
    assert lines_by_process(result.uart) == lines_by_process(native.uart)
    st = vm.vstats
    # Every guest instruction ran on a host hart (VS/VU): nothing emulated or translated.
    assert st.direct_instructions == result.instructions > 0 and st.direct_fraction() == 1.0
    assert st.exits["mmio"] > 0 and st.exits["sbi"] > 0
    assert st.exits["virtual_instruction"] == 0 and st.exits["page_fault"] == 0
    cats = st.cycles
    assert cats["guest_user"] > 0 and cats["guest_kernel"] > 0 and cats["hypervisor"] > 0
    assert cats["world_switch"] == vm.technique.world_switches * vm.hv_cost("world_switch")
    assert cats["emulation"] == cats["translation"] == 0


def test_default_timer_exits_and_costs() -> None:
    image = build_teachos()
    result, vm = run_hw(image)
    st = vm.vstats
    assert st.exits["timer"] > 0  # the guest's timer came through the host timer and hvip.VSTIP
    exits = sum(st.exits.values())
    # Every exit costs exit_hw plus two world switches (out and back in, except the last).
    assert st.cycles["hypervisor"] >= exits * vm.hv_cost("exit_hw")
    assert vm.technique.world_switches >= 2 * exits
    host = vm.host
    assert host.harts[0].charges["vmm_hypervisor"] >= exits * vm.hv_cost("exit_hw")
    # The vCPU's counters hold the guest's retired instructions (user and supervisor).
    vcpu = vm.harts[0]
    assert vcpu.retired() == st.direct_instructions
    assert sum(vcpu.counts_by_priv[0]) > 0 and sum(vcpu.counts_by_priv[1]) > 0
    assert result.cycles > 0


@pytest.mark.parametrize("engine", ["interp", "fast"])
def test_engines_give_the_same_run(engine: str) -> None:
    image = build_teachos(["hello", "counter"], timer_interval=2000)
    first, vm1 = run_hw(image, "interp")
    other, vm2 = run_hw(image, engine)
    assert (other.uart, other.status, other.instructions, other.cycles) == (
        first.uart,
        first.status,
        first.instructions,
        first.cycles,
    )
    assert vm1.vstats == vm2.vstats


def test_vm_state_between_runs_is_on_the_vcpu() -> None:
    # Run in small pieces: after each, the vCPU (not the host hart) holds the guest's state.
    image = build_teachos(["counter"], timer_interval=2000)
    vm, _hv = hw_vm()
    boot_teachos(vm, image)
    host_hart, vcpu = vm.host.harts[0], vm.harts[0]
    seen_user = seen_kernel = False
    for _ in range(400):
        r = vm.run(2000, engine="fast")
        assert (host_hart.priv, host_hart.virt) == (1, 0)  # the host hart is back in HS-mode ...
        assert HW_NATIVE <= host_hart.pc < HW_NATIVE + 0x1000  # ... in the VMM's (native) code
        assert vcpu.priv in (0, 1) and vcpu.csr.stvec in (0, image.symbols["trap_entry"])
        if vcpu.priv == 0:
            seen_user = True
            assert vcpu.pc < 0x8000_0000 and vcpu.csr.satp >> 31  # user code under Sv32
        else:
            seen_kernel = True
        if r.status != "limit":
            break
    assert r.status == "pass" and seen_user and seen_kernel
    assert "counter 1: 4" in vm.console_output()


def test_snapshot_and_restore_replay_the_same_output() -> None:
    image = build_teachos(["hello", "counter"], timer_interval=2000)
    vm, _hv = hw_vm()
    boot_teachos(vm, image)
    vm.run(30_000, engine="fast")
    snap = vm.snapshot()
    first = vm.run(LIMIT, engine="fast")
    out_first = vm.console_output()
    vm.restore(snap)
    second = vm.run(LIMIT, engine="fast")
    assert (first.status, second.status) == ("pass", "pass")
    assert vm.console_output() == out_first


# -- the x86-like profile: its sensitive instructions see the VS copy of the state ---------------------
X86_CHECKS = (
    (
        "arch_init:\n    la    t0, trap_entry\n    csrw  stvec, t0\n",
        "    sidt  t1\n    bne   t0, t1, x86_fail\n"
        "    rdcs  t1\n    li    t0, 1\n    bne   t0, t1, x86_fail\n",
    ),
    (
        "    csrw  sscratch, a0                 # the next trap saves into this frame\n",
        "    str   t0\n    bne   t0, a0, x86_fail\n    pushf t0\n    andi  t0, t0, SSTATUS_SPP\n"
        "    bnez  t0, x86_fail\n    smsw  t0\n    andi  t0, t0, SSTATUS_SPIE\n    beqz  t0, x86_fail\n",
    ),
    (
        "    csrw  satp, a0                     # Priv 4.1.11\n",
        "    sgdt  t0\n    bne   t0, a0, x86_fail\n    sldt  t0\n    srli  t1, a0, 22\n"
        "    andi  t1, t1, 0x1ff\n    bne   t0, t1, x86_fail\n",
    ),
)
X86_FAIL = """
x86_fail:                                # SRST shutdown, reason 0xE000_0042: exit code 0x42
    li    a0, 0
    li    a1, 0xE0000042
    li    a6, 0
    li    a7, 0x53525354
    ecall
"""


def x86_arch() -> str:
    """arch_native.S checking, with the x86-like sensitive instructions, that it sees its own state."""
    src = resources.files("virtlevels.guests.teachos").joinpath("arch_native.S").read_text()
    for anchor, checks in X86_CHECKS:
        assert anchor in src
        src = src.replace(anchor, anchor + checks)
    return src + X86_FAIL


def test_x86_like_guest_runs_correctly_under_hw() -> None:
    world = World(0, entry_points=False)
    image = build_teachos(
        ["hello", "counter"], arch_source=x86_arch(), encodings=(*ENCODINGS, *x86like.ENCODINGS)
    )
    native = PhysicalMachine(world=world, isa_extensions=("x86-like",))
    native.add_device(UART_BASE, Uart16550())
    native.add_device(TEST_FINISHER_BASE, TestFinisher())
    boot_teachos(native, image)
    expected = native.run(LIMIT, engine="fast")
    assert (expected.status, expected.exit_code) == ("pass", 0)
    vm, _hv = hw_vm(world=world, isa_extensions=("x86-like",))
    assert vm.table.profile == "x86-like"
    boot_teachos(vm, image)
    result = vm.run(LIMIT, engine="fast")
    assert (result.status, result.exit_code) == ("pass", 0)
    assert lines_by_process(result.uart) == lines_by_process(expected.uart)
    # The checks did run (in VS-mode, on the host hart): sidt/str/sgdt... are x86-like rows.
    host_counts = vm.host.harts[0].counts_by_priv[5]
    assert host_counts[vm.host.table.classes.index("csr")] > 0


def test_x86_like_vm_needs_the_extension_on_the_host() -> None:
    world = World(0, entry_points=False)
    host = PhysicalMachine(hypervisor=True, world=world)
    hv = Hypervisor(host)
    with pytest.raises(ConfigError, match="x86-like"):
        hv.create_vm("hw", isa_extensions=("x86-like",))
    assert hv.pool.free_bytes == host.ram_size - hv.reserved  # nothing left allocated


# -- set-up errors and the G-stage ---------------------------------------------------------------------
def test_hw_needs_a_host_with_the_h_extension() -> None:
    hv = Hypervisor(PhysicalMachine())
    with pytest.raises(ConfigError, match="H extension"):
        hv.create_vm("hw")
    assert hv.vms == [] and hv.pool.free_bytes == hv.host.ram_size - hv.reserved


def test_gstage_maps_the_allocation_with_megapages_in_pool_frames() -> None:
    vm, hv = hw_vm()
    tech = vm.technique
    assert isinstance(tech, HwTechnique) and tech.gstage is not None
    gs = tech.gstage
    assert gs.megapages == vm.ram_size // (4 * MIB) and gs.pages == 0
    assert gs.root % (16 * 1024) == 0  # Priv 8.5.1: the Sv32x4 root is 16 KiB aligned
    base, size = vm.guest_memory.hppn_of(0) << 12, vm.ram_size  # native mode: one contiguous block
    assert not base <= gs.root < base + size  # the table is the hypervisor's, not in the guest's RAM
    assert hv.pool.base <= gs.root < hv.pool.base + hv.pool.size
    root = vm.host.phys_read(gs.root + 4 * (vm.ram_base >> 22), 4)
    pte = int.from_bytes(root, "little")
    assert pte >> 10 << 12 == base and pte & 0xDF == 0xDF  # V R W X U A D megapage leaf
    free = hv.pool.free_bytes
    hv.destroy_vm(vm)
    assert hv.pool.free_bytes == free + size + 16 * 1024
    assert gs.vmid not in host_state(vm.host).vmids


def test_scattered_frames_are_mapped_page_by_page() -> None:
    from virtlevels_hypervisor.hw_gstage import build_gstage, free_gstage

    vm, hv = hw_vm()
    gm = vm.guest_memory
    original = gm.hppn_of
    gm.hppn_of = lambda i: original(i ^ 1)  # pairwise swapped frames: no megapage possible
    free = hv.pool.free_bytes
    gs = build_gstage(vm, hv, 99)
    assert gs.megapages == 0 and gs.pages == vm.ram_size >> 12 and len(gs.tables) == 4
    l0 = int.from_bytes(vm.host.phys_read(gs.root + 4 * (vm.ram_base >> 22), 4), "little")
    table = (l0 >> 10) << 12
    assert table == gs.tables[0] and l0 & 0xF == 1  # a pointer to a level-0 table
    first = int.from_bytes(vm.host.phys_read(table, 4), "little")
    assert first >> 10 == original(1)
    free_gstage(gs, hv, vm)
    assert hv.pool.free_bytes == free


def test_a_guest_wfi_frees_the_host_hart_until_its_timer() -> None:
    # A guest that arms its timer and waits: the vCPU waits, the run skips to the deadline.
    src = """
    .text
    .globl _start
_start:
    la    t0, trap
    csrw  stvec, t0
    li    t0, 0x20
    csrs  sie, t0                 # STIE
    csrsi sstatus, 2              # SIE: take it in S-mode
    rdtime a0
    addi  a0, a0, 500             # 500 ticks from now
    li    a1, 0
    li    a6, 0
    li    a7, 0x54494D45          # SBI TIME set_timer
    ecall
1:  wfi
    j     1b
trap:
    li    a0, 0
    li    a1, 0
    li    a7, 0x53525354          # SRST shutdown: pass
    ecall
"""
    image = assemble(src, "wfi.S", base=0x8020_0000)
    vm, _hv = hw_vm()
    vm.load(image)
    start = vm.events.now
    r = vm.run(100_000, engine="fast")
    assert (r.status, r.exit_code) == ("pass", 0)
    assert vm.vstats.exits["virtual_instruction"] >= 1  # WFI (hstatus.VTW)
    assert vm.vstats.exits["timer"] == 0  # the deadline passed while the vCPU waited
    assert vm.events.now - start >= 500 * vm.cost.timebase_divisor
    assert vm.idle_cycles > 0
