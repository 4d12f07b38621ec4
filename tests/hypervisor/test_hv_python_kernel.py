"""The Python kernel of the kernel issue, unchanged, as a guest (issue 5 item 4b).

It drives its hart only with privileged instructions (``hart.execute``), so on a VM's vCPU those
same instructions go through the technique: interpreted (emulate), trapped and emulated (trap),
or run in VS-mode (hw); its user processes are RV32 code run by the technique.
"""

from __future__ import annotations

from typing import Any

import pytest
from virtlevels_hypervisor.equivalence import host_machine
from virtlevels_hypervisor.hypervisor import Hypervisor

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.kernel import Kernel
from virtlevels.machine.asm import assemble
from virtlevels.machine.elf.writer import write_elf
from virtlevels.world import World

MIB = 1 << 20
# An RV32 user program: write "hello\n", then exit with its pid (Linux syscall numbers).
HELLO = write_elf(assemble("""
    .text
    .globl _start
_start:
    li a0, 1
    la a1, msg
    li a2, 6
    li a7, 64
    ecall
    li a7, 172
    ecall
    li a7, 93
    ecall
    .data
msg: .ascii "hello\\n"
""", base=0x10000))


def boot(technique: str | None) -> tuple[Kernel, Any]:
    world = World(entry_points=False)
    host = host_machine(world, technique, ram_size=64 * MIB)
    machine = host if technique is None else Hypervisor(host).create_vm(technique, ram_size=16 * MIB)
    return Kernel(world, machine=machine), machine


def run_two(k: Kernel) -> list[tuple[int, int]]:
    k.write_file("/bin/hello", HELLO, 0o755)
    waits: list[tuple[int, int]] = []

    def init() -> Any:
        waits.append((yield sc.wait4(-1)))
        waits.append((yield sc.wait4(-1)))

    k.spawn(init, stdio=True)
    k.spawn("/bin/hello", ["/bin/hello"], stdio=True)
    k.spawn("/bin/hello", ["/bin/hello"], stdio=True)
    k.run()
    return waits


@pytest.mark.parametrize("technique", ["emulate", "trap", "bt", "pv", "hw"])
def test_python_kernel_runs_unchanged_in_a_vm(technique: str) -> None:
    native, _ = boot(None)
    want = run_two(native)
    k, vm = boot(technique)
    got = run_two(k)
    assert bytes(k.console) == bytes(native.console) == b"hello\nhello\n"
    assert sorted(got) == sorted(want)  # exit statuses: each process exits with its pid
    st = vm.vstats
    assert st.guest_instructions() > 0
    if technique == "emulate":
        assert st.direct_instructions == 0
    else:
        assert st.direct_instructions > 0  # the user processes ran on the host hart
    assert k.isa.frames.in_use == 0


COUNTERS = write_elf(assemble("""
    .text
    .globl _start
_start:
    rdcycle t0
    rdtime t1
    rdinstret t2
    li a0, 1
    la a1, msg
    li a2, 3
    li a7, 64
    ecall
    li a0, 0
    li a7, 93
    ecall
    .data
msg: .ascii "ok\\n"
""", base=0x10000))


@pytest.mark.parametrize("technique", ["emulate", "trap", "bt", "pv", "hw"])
def test_user_counter_reads_work_as_natively(technique: str) -> None:
    # The kernel lets user code read the counters (scounteren); a VMM that virtualizes time traps
    # them on the host, but must then let the guest's own permission decide, not kill the process.
    k, _vm = boot(technique)
    k.write_file("/bin/counters", COUNTERS, 0o755)
    waits: list[Any] = []

    def init() -> Any:
        waits.append((yield sc.wait4(-1)))

    k.spawn(init, stdio=True)
    k.spawn("/bin/counters", ["/bin/counters"], stdio=True)
    k.run()
    assert bytes(k.console) == b"ok\n" and waits[0][1] == 0
