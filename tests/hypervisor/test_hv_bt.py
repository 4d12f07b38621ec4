"""Binary translation (techniques/bt.py, bt/): teachos and hand-written guest kernels under the
translator, compared with native runs."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
from virtlevels_hypervisor.bt.cache import TC_BASE
from virtlevels_hypervisor.hypervisor import Hypervisor
from virtlevels_hypervisor.techniques.bt import BtTechnique
from virtlevels_hypervisor.techniques.trap import build_teachos_popf

from virtlevels.guests import boot_teachos, build_teachos
from virtlevels.guests.layout import KERNEL_BASE
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.isa import x86like
from virtlevels.machine.isa.encodings import ENCODINGS
from virtlevels.machine.machine import PhysicalMachine, RunResult

LIMIT = 5_000_000
MIB = 1 << 20


def native(image: Any, x86: bool = False) -> RunResult:
    m = virt_machine()
    if x86:
        x86like.apply(m.table)
    boot_teachos(m, image)
    return m.run(LIMIT, engine="fast")


def make_vm(technique: Any = "bt", x86: bool = False) -> Any:
    host = PhysicalMachine(ram_size=64 * MIB)
    if x86:
        x86like.apply(host.table)  # the silicon is x86-like: its popf does not trap in U-mode either
    hv = Hypervisor(host)
    vm = hv.create_vm(technique, ram_size=16 * MIB)
    if x86:
        x86like.apply(vm.table)
    return vm


def run_vm(
    image: Any, technique: Any = "bt", x86: bool = False, engine: str = "fast"
) -> tuple[RunResult, Any]:
    vm = make_vm(technique, x86)
    vm.load(image)
    return vm.run(LIMIT, engine=engine), vm


def per_process(text: str) -> dict[str, list[str]]:
    """UART lines grouped by process ("counter 2: 1" -> "counter 2"): equivalence excludes timing,
    so interleaving may differ, each process's own stream may not."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        out.setdefault(line.split(":")[0], []).append(line)
    return out


@pytest.mark.parametrize("programs", [["hello"], ["hello", "counter", "counter"], ["fault", "hello"]])
def test_teachos_under_bt_equals_native(programs: list[str]) -> None:
    image = build_teachos(programs, timer_interval=3000)
    ref = native(image)
    got, vm = run_vm(image)
    assert (got.status, got.exit_code) == (ref.status, ref.exit_code)
    assert per_process(got.uart) == per_process(ref.uart)
    st = vm.technique.stats(vm)
    assert st["callouts"] > 0 and st["translated_instructions"] > 0
    assert st["translated_guest_instructions"] > 0 and st["translations"] > 0
    assert st["emulate_callouts_by_instruction"].get("sret", 0) > 0  # the kernel's sret went to the monitor
    # only kernel code was translated: user code never enters the cache
    assert all(t.gva >= KERNEL_BASE for t in vm.technique.bt.cache.translations())
    if "counter" in programs:
        assert st["direct_instructions"] > 100_000  # the counters' busy loops ran directly
        assert st["direct_fraction"] > 0.9
    assert vm.vstats.cycles["translation"] > 0 and vm.vstats.cycles["hypervisor"] > 0


def test_bt_is_deterministic_and_engine_independent() -> None:
    image = build_teachos(["hello", "counter"], timer_interval=3000)
    a, _ = run_vm(image)
    b, _ = run_vm(image)
    c, _ = run_vm(image, engine="interp")
    assert (a.cycles, a.instructions, a.uart) == (b.cycles, b.instructions, b.uart)
    assert (c.cycles, c.instructions, c.uart) == (a.cycles, a.instructions, a.uart)


def test_blocks_chain_and_callouts_stay_on_the_host_hart() -> None:
    _, vm = run_vm(build_teachos(["hello", "counter", "counter"], timer_interval=3000))
    st = vm.technique.stats(vm)
    assert st["chained_exits"] > 0
    assert st["fast_callouts"] > 0.5 * st["callouts"]  # most callouts never leave the host hart
    # a callout is cheaper than a trap-and-emulate exit: no world switch, bt_callout < trap_emulate
    assert vm.hv_cost("bt_callout") < vm.hv_cost("trap_emulate")


# -- the x86-like profile: sensitive instructions that do not trap -------------------------------------


def x86_check_arch() -> str:
    """teachos's arch_native.S whose arch_init checks, as an x86 kernel might, that it runs at
    kernel privilege (rdcs, x86 MOV r,CS) and that POPF really toggles the interrupt flag (pushf
    reads it back); if not, it shuts down with exit code 88 ("X")."""
    src = resources.files("virtlevels.guests.teachos").joinpath("arch_native.S").read_text(encoding="utf-8")
    anchor = "    ret\n\narch_trap_info:"
    assert anchor in src, "arch_native.S changed: the x86 check's patch point is gone"
    return src.replace(
        anchor,
        """    rdcs  t0                           # x86 MOV r,CS: 1 = supervisor
    li    t1, 1
    bne   t0, t1, 9f
    li    t0, 2
    popf  t0                           # x86 STI through POPF (no timer armed yet)
    pushf t1
    popf  zero                         # x86 CLI
    andi  t1, t1, 2
    beqz  t1, 9f                       # the enable was dropped
    ret
9:  li    a0, 0                        # SBI SRST shutdown, reason 0xE000_0000 | 88
    li    a1, 0xE0000058
    li    a6, 0
    li    a7, 0x53525354
    ecall
1:  j     1b

arch_trap_info:""",
    )


def test_x86_like_kernel_is_correct_under_bt_and_diverges_under_trap() -> None:
    image = build_teachos(["hello"], arch_source=x86_check_arch(), encodings=ENCODINGS + x86like.ENCODINGS)
    ref = native(image, x86=True)
    assert (ref.status, ref.exit_code) == ("pass", 0)
    got, vm = run_vm(image, x86=True)
    assert (got.status, got.exit_code, got.uart) == (ref.status, ref.exit_code, ref.uart)
    names = vm.technique.stats(vm)["emulate_callouts_by_instruction"]
    assert names["popf"] == 2 and names["pushf"] == 1 and names["rdcs"] == 1
    trap, _ = run_vm(image, technique="trap", x86=True)
    assert (trap.status, trap.exit_code) == ("fail", 88)  # rdcs saw host U-mode: the kernel gave up


def test_x86_like_popf_idle_loop_under_bt() -> None:
    image = build_teachos_popf(timer_interval=3000)
    ref = native(image, x86=True)
    got, vm = run_vm(image, x86=True)
    assert (got.status, got.exit_code, got.uart) == (ref.status, ref.exit_code, ref.uart)
    assert vm.technique.stats(vm)["emulate_callouts_by_instruction"].get("popf", 0) > 0


# -- a hand-written guest kernel: self-modifying code, faults inside translated code --------------------

SMC_KERNEL = """
    .equ SRST, 0x53525354
    .text
_start:
    la    t0, handler
    csrw  stvec, t0
    jal   ra, f
    mv    s1, a0                       # 1
    la    t0, f
    li    t1, 0x00200513               # addi a0, zero, 2
    sw    t1, 0(t0)                    # rewrite f (translated and run already)
    jal   ra, f
    mv    s2, a0                       # 2: f's translation was dropped
    la    t0, 1f
    li    t1, 0x00700613               # addi a2, zero, 7
    sw    t1, 0(t0)                    # rewrite the next instruction, in the running block
1:  li    a2, 3                        # runs as "li a2, 7"
    mv    s3, a2
fault1:
    lw    t2, 0(zero)                  # no RAM at guest-physical 0: a load access fault
fault2:
    lw    t2, 16(tc)                   # the monitor's cache window: the guest has nothing there
    li    t0, 10
    bne   s5, t0, 2f                   # two load access faults (cause 5)
    la    t0, fault1
    bne   s8, t0, 2f                   # the first fault's sepc is the guest's pc of its lw
    la    t0, fault2
    bne   s7, t0, 2f
    li    s9, 1
2:  li    t0, 1000
    mul   a1, s1, t0
    li    t0, 100
    mul   t1, s2, t0
    add   a1, a1, t1
    li    t0, 10
    mul   t1, s3, t0
    add   a1, a1, t1
    add   a1, a1, s9
    li    t0, 0xE0000000
    or    a1, a1, t0
    li    a0, 0
    li    a6, 0
    li    a7, SRST
    ecall                              # exit code 1000*s1 + 100*s2 + 10*s3 + ok
3:  j     3b

handler:
    csrr  t0, scause
    add   s5, s5, t0
    csrr  t0, sepc
    mv    s7, t0
    bnez  s8, 4f
    mv    s8, t0
4:  addi  t0, t0, 4
    csrw  sepc, t0
    sret

f:  li    a0, 1
    ret
"""


def smc_image() -> Any:
    source = SMC_KERNEL.replace("16(tc)", "16(s10)").replace(
        "_start:\n", f"_start:\n    li    s10, {TC_BASE}\n"
    )
    return assemble(source, "smc.S", base=KERNEL_BASE)


def test_self_modifying_kernel_code_invalidates_translations() -> None:
    for engine in ("fast", "interp"):
        got, vm = run_vm(smc_image(), engine=engine)
        assert (got.status, got.exit_code) == ("fail", 1271), engine  # 1, 2, 7 and both faults right
        st = vm.technique.stats(vm)
        assert st["invalidated_translations"] >= 2
        assert st["callouts_by_kind"].get("stale", 0) >= 1  # the running block left at the rewritten word


def test_cache_flush_when_full_keeps_the_guest_correct() -> None:
    image = build_teachos(["hello", "counter"], timer_interval=3000)
    ref = native(image)
    vm = make_vm(BtTechnique(tc_pages=1))
    vm.technique.bt.cache.limit = 1024  # a quarter of teachos's translated kernel
    vm.load(image)
    got = vm.run(LIMIT, engine="fast")
    assert (got.status, got.exit_code) == (ref.status, ref.exit_code)
    assert per_process(got.uart) == per_process(ref.uart)
    assert vm.technique.stats(vm)["cache_flushes"] > 0


def test_destroying_the_vm_returns_the_cache_frames() -> None:
    hv = Hypervisor(PhysicalMachine(ram_size=64 * MIB))
    free = hv.pool.free_bytes
    vm = hv.create_vm("bt", ram_size=16 * MIB)
    assert hv.pool.free_bytes < free - 16 * MIB  # the guest's RAM and the translation cache
    vm.load(build_teachos(["hello"]))
    vm.run(LIMIT, engine="fast")
    watchers = len(hv.host.store_watchers)
    hv.destroy_vm(vm)
    assert hv.pool.free_bytes == free
    assert len(hv.host.store_watchers) < watchers


def test_bt_guest_inside_a_vm() -> None:
    # Theorem 2: the binary-translating VMM runs on a VM (its host hart is a vCPU of a trap VM).
    image = build_teachos(["hello"], timer_interval=3000)
    ref = native(image)
    outer = Hypervisor(PhysicalMachine(ram_size=128 * MIB)).create_vm("trap", ram_size=64 * MIB)
    inner = Hypervisor(outer).create_vm("bt", ram_size=16 * MIB)
    inner.load(image)
    got = inner.run(LIMIT, engine="fast")
    assert (got.status, got.exit_code, got.uart) == (ref.status, ref.exit_code, ref.uart)
    assert inner.vstats.callouts > 0
    assert outer.vstats.guest_instructions() > 0  # the inner guest's instructions ran through the outer VM


def test_snapshot_restore_drops_translations_and_replays_equal() -> None:
    vm = make_vm()
    vm.load(build_teachos(["hello", "counter"], timer_interval=3000))
    assert vm.run(60_000, engine="fast").status == "limit"
    snap = vm.snapshot()
    first = vm.run(LIMIT, engine="fast")
    flushes = vm.technique.bt.cache.flushes
    vm.restore(snap)
    assert vm.technique.bt.cache.flushes == flushes + 1 and not vm.technique.bt.cache.by_gva
    again = vm.run(LIMIT, engine="fast")
    assert (again.status, again.exit_code, again.uart) == (first.status, first.exit_code, first.uart)
