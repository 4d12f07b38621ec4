"""Trap-and-emulate and paravirtualization (plugins/virtlevels_hypervisor/deprivileged.py, shadow.py,
techniques/trap.py, techniques/pv.py): teachos under both equals teachos on the bare machine."""

from __future__ import annotations

from typing import Any

import pytest
from virtlevels_hypervisor.equivalence import group_lines as lines_by_process
from virtlevels_hypervisor.hypervisor import Hypervisor
from virtlevels_hypervisor.techniques.trap import build_teachos_popf

from virtlevels.guests import boot_teachos, build_teachos
from virtlevels.machine.board import virt_machine
from virtlevels.machine.devices.finisher import TestFinisher
from virtlevels.machine.devices.uart import Uart16550
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.memmap import TEST_FINISHER_BASE, UART_BASE
from virtlevels.world import World

LIMIT = 5_000_000
MIB = 1 << 20




def run_native(image: Any) -> Any:
    m = virt_machine()
    boot_teachos(m, image)
    return m.run(LIMIT)


def make_vm(technique: str, **kw: Any) -> Any:
    host = PhysicalMachine(ram_size=64 * MIB, **kw)
    return Hypervisor(host).create_vm(technique, ram_size=16 * MIB)


def run_vm(technique: str, image: Any) -> tuple[Any, Any]:
    vm = make_vm(technique)
    vm.load(image)
    return vm, vm.run(LIMIT)


@pytest.mark.parametrize("technique", ["trap", "pv"])
@pytest.mark.parametrize("programs", [["hello"], ["hello", "counter", "counter"], ["fault", "hello"]])
def test_output_and_status_equal_native(technique: str, programs: list[str]) -> None:
    image = build_teachos(programs, paravirt=technique == "pv")
    native = run_native(image)
    vm, res = run_vm(technique, image)
    assert res.status == native.status and res.exit_code == native.exit_code
    assert lines_by_process(res.uart) == lines_by_process(native.uart)
    assert native.uart.strip()  # the comparison compared something
    exits = vm.vstats.exits
    assert exits["mmio"] > 0 and exits["page_fault"] > 0 and exits["exception"] > 0
    if technique == "trap":
        assert exits["privileged"] > 0 and exits["sbi"] > 0 and vm.vstats.hypercalls == 0
    else:
        assert exits["hypercall"] > 0 and vm.vstats.hypercalls == exits["hypercall"]
        # A PV kernel executes no privileged instruction: what is emulated are counter reads only.
        assert exits["privileged"] <= exits["hypercall"] // 2
    assert vm.vstats.direct_fraction() > 0.9
    cats = vm.vstats.cycles
    assert cats["guest_kernel"] > 0 and cats["hypervisor"] > 0 and cats["world_switch"] > 0


def test_timer_preempts_under_trap() -> None:
    image = build_teachos(["counter", "counter"])
    vm, res = run_vm("trap", image)
    assert res.status == "pass"
    assert vm.vstats.exits["timer"] > 0 and vm.technique.vmm.injected > 0
    # The two counters interleave (each one's lines are not all before the other's).
    order = [line.split(":")[0] for line in res.uart.splitlines()]
    assert order != sorted(order)


@pytest.mark.parametrize("technique", ["trap", "pv"])
def test_guest_pte_write_is_emulated(technique: str) -> None:
    # memtouch grows its heap: every demand-paged heap page is a PTE written into a page table
    # the shadows were built from (a trapped store under trap, an mmu_update under PV).
    image = build_teachos(["memtouch", "hello"], paravirt=technique == "pv")
    native = run_native(image)
    vm, res = run_vm(technique, image)
    assert lines_by_process(res.uart) == lines_by_process(native.uart)
    assert vm.vstats.shadow_updates > 0
    if technique == "trap":
        assert vm.vstats.exits["pt_write"] == vm.vstats.shadow_updates
    else:
        assert vm.vstats.exits.get("pt_write", 0) == 0
        assert vm.technique.calls["mmu_update"] > 0


def test_pv_counts_hypercalls_per_system_call() -> None:
    image = build_teachos(["getpid-loop"], paravirt=True)
    vm, res = run_vm("pv", image)
    assert res.status == "pass"
    calls = vm.technique.calls
    # docs/guests.md: three hypercalls per system call (trap_info, csr_write(sepc), sret).
    assert calls["trap_info"] >= 200 and calls["sret"] >= 200 and calls["csr_write"] >= 200
    trap_vm, _ = run_vm("trap", build_teachos(["getpid-loop"]))
    assert trap_vm.vstats.exits["privileged"] > 3 * vm.vstats.hypercalls // 2


def test_pv_mmu_update_refuses_foreign_memory() -> None:
    vm = make_vm("pv")
    vm.load(build_teachos(["hello"], paravirt=True))
    tech = vm.technique
    table = 0x80F0_0000
    pte_addr = 0x80E0_0000
    outside = 0x8800_0000  # host RAM, but not this VM's
    for value, ok in (((outside >> 12) << 10 | 0xCF, False), ((0x80D0_0000 >> 12) << 10 | 0xCF, True)):
        vm.bus.memory.write(table, 4, pte_addr)
        vm.bus.memory.write(table + 4, 4, value)
        err, done = tech._mmu_update(vm, table, 1)
        assert (err == 0 and done == 1) is ok
    assert tech.rejected_ptes == 1


# A bare S-mode guest kernel that touches memory outside its 16 MiB: each access must fault.
PROBE = r"""
    .globl _start
_start:
    la    t0, handler
    csrw  stvec, t0
    li    s0, {addr}
    lw    s1, 0(s0)             # must fault (load access fault, 5)
    sw    s1, 0(s0)             # must fault (store access fault, 7)
    li    a0, 0
    li    a1, 0
    li    a7, 0x53525354
    li    a6, 0
    ecall                       # SRST shutdown: pass
handler:
    csrr  t1, scause
    li    t2, 0x10000000
    addi  t1, t1, '0'
    sb    t1, 0(t2)             # print the cause as a digit
    csrr  t1, sepc
    addi  t1, t1, 4
    csrw  sepc, t1
    sret
"""


@pytest.mark.parametrize("addr", [0x8100_0000, 0x8300_0000, 0x7FFF_F000])
def test_guest_cannot_reach_outside_its_allocation(addr: int) -> None:
    from virtlevels.machine.asm import assemble

    vm = make_vm("trap")
    host = vm.host
    base, size = vm.gpa_to_hpa(vm.ram_base), vm.ram_size
    secret = 0x5EC2E7
    # Host memory right after and right before the VM's block: what a broken VMM would expose.
    host.phys_write(base + size, secret.to_bytes(4, "little"))
    host.phys_write(base - 4096, secret.to_bytes(4, "little"))
    image = assemble(PROBE.format(addr=addr), "probe.S", base=0x8020_0000)
    vm.load(image)
    res = vm.run(100_000)
    assert res.status == "pass"
    assert res.uart == "57"  # load access fault, then store access fault, both delivered to the guest
    assert host.phys_read(base + size, 4) == secret.to_bytes(4, "little")


def x86_host(technique: str) -> Any:
    world = World(0, entry_points=False)
    host = PhysicalMachine(world=world, isa_extensions=("x86-like",), ram_size=64 * MIB)
    return Hypervisor(host).create_vm(technique, ram_size=16 * MIB)


def test_x86like_popf_diverges_under_trap_only() -> None:
    image = build_teachos_popf()
    world = World(0, entry_points=False)
    native = PhysicalMachine(world=world, isa_extensions=("x86-like",))
    native.add_device(UART_BASE, Uart16550())
    native.add_device(TEST_FINISHER_BASE, TestFinisher())
    boot_teachos(native, image)
    expected = native.run(LIMIT)
    assert expected.status == "pass" and expected.uart == "sleeping\nawake!!\n"
    trap_vm = x86_host("trap")
    trap_vm.load(image)
    res = trap_vm.run(1_000_000)
    # popf ran in host U-mode and dropped the enable: the kernel spins forever in its idle loop.
    assert res.status == "limit" and res.uart == "sleeping\n"
    assert trap_vm.vstats.exits["timer"] > 10
    emu_vm = x86_host("emulate")
    emu_vm.load(image)
    ok = emu_vm.run(LIMIT)
    assert (ok.status, ok.uart) == (expected.status, expected.uart)


def test_same_inputs_same_cycles() -> None:
    image = build_teachos(["hello", "counter"])
    a = run_vm("trap", image)[1]
    b = run_vm("trap", image)[1]
    assert (a.cycles, a.instructions, a.uart) == (b.cycles, b.instructions, b.uart)


def test_python_kernel_runs_isa_programs_under_trap() -> None:
    """The Python kernel (virtlevels.kernel) unchanged on a trap-and-emulate VM: its privileged
    instructions are exits, its user processes run directly, the output equals the bare machine's."""
    from virtlevels.kernel import scripted as sc
    from virtlevels.kernel.kernel import Kernel
    from virtlevels.machine.asm import assemble
    from virtlevels.machine.elf.writer import write_elf

    def spinner(letter: str) -> bytes:
        src = f"""
    .globl _start
_start:
    li s0, 3
1:  li s1, 30000
2:  addi s1, s1, -1
    bnez s1, 2b
    li a0, 1
    la a1, ch
    li a2, 1
    li a7, 64
    ecall
    addi s0, s0, -1
    bnez s0, 1b
    li a0, 0
    li a7, 93
    ecall
    .data
ch: .ascii "{letter}"
"""
        return write_elf(assemble(src, base=0x10000))

    def run(technique: str | None) -> tuple[bytes, Any]:
        world = World(entry_points=False)
        host = virt_machine(world=world)
        machine = Hypervisor(host).create_vm(technique, ram_size=32 * MIB) if technique else host
        k = Kernel(world, machine=machine, slice_ns=20_000)
        k.write_file("/bin/a", spinner("a"), 0o755)
        k.write_file("/bin/b", spinner("b"), 0o755)
        k.spawn(lambda: (yield sc.wait4(-1)) and (yield sc.wait4(-1)), stdio=True)
        k.spawn("/bin/a", ["a"], stdio=True)
        k.spawn("/bin/b", ["b"], stdio=True)
        k.run()
        return bytes(k.console), machine

    native, _ = run(None)
    out, vm = run("trap")
    assert sorted(out) == sorted(native) == sorted(b"aaabbb")
    exits = vm.vstats.exits
    assert exits["privileged"] > 0 and exits["exception"] >= 6 and exits["timer"] > 0
    assert vm.vstats.direct_instructions > 100_000
