"""The Python kernel (virtlevels.kernel.Kernel) as a guest under hardware assistance: its ISA
processes run in VU-mode on the host hart; the kernel's own privileged instructions are VS-mode
CSR accesses (no exit), except the virtual firmware's M-mode ones and Sstc's stimecmp."""

from __future__ import annotations

from virtlevels_hypervisor.hypervisor import Hypervisor

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.kernel import Kernel
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.elf.writer import write_elf
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.world import World

LOOP = write_elf(assemble("""
    .text
    .globl _start
_start:
    li    s0, 0
    li    s1, 30000
1:  addi  s0, s0, 1
    blt   s0, s1, 1b
    li    a0, 1
    la    a1, msg
    li    a2, 6
    li    a7, 64              # write
    ecall
    li    a0, 3
    li    a7, 94              # exit_group
    ecall
    .data
msg: .ascii "hello\\n"
""", base=0x10000))


def run_two(k: Kernel) -> tuple[list[tuple[int, int]], bytes]:
    k.write_file("/bin/loop", LOOP, 0o755)
    waited: list[tuple[int, int]] = []

    def parent():  # type: ignore[no-untyped-def]
        for _ in range(2):
            waited.append((yield sc.wait4(-1)))

    k.spawn(parent, stdio=True)
    k.spawn("/bin/loop", ["/bin/loop"], stdio=True)
    k.spawn("/bin/loop", ["/bin/loop"], stdio=True)
    k.run()
    return sorted(waited), bytes(k.console)


def test_python_kernel_runs_unchanged_as_a_hw_guest() -> None:
    world = World(entry_points=False)
    native = run_two(Kernel(world, machine=virt_machine(world=world), engine="fast"))
    world = World(entry_points=False)
    host = PhysicalMachine(hypervisor=True, world=world)
    hv = Hypervisor(host, world=world)
    vm = hv.create_vm("hw", ram_size=64 << 20)
    k = Kernel(world, machine=vm, engine="fast")
    assert run_two(k) == native
    assert native[1] == b"hello\nhello\n" and [s for _p, s in native[0]] == [3 << 8, 3 << 8]
    st = vm.vstats
    # User code ran on the host hart in VU-mode: ~60k loop instructions, all direct.
    assert sum(host.harts[0].counts_by_priv[4]) >= 60_000
    assert st.cycles["guest_user"] >= 60_000 and st.direct_fraction() > 0.99
    # The kernel's traps reach its Python handler on the vCPU; the virtual firmware's M-mode
    # set-up and the stimecmp writes exit; its other CSR accesses and sret do not.
    assert st.exits["native_trap"] >= 4 and st.exits["privileged"] > 0
    assert st.exits["virtual_instruction"] > 0
    assert st.exits["sbi"] == st.exits["mmio"] == 0
    # The kernel saw its user time on its vCPU (the host hart's VU work was booked there).
    assert sum(vm.harts[0].counts_by_priv[0]) == sum(host.harts[0].counts_by_priv[4])
