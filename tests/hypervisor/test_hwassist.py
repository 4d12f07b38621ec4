"""The hardware-assisted native VM (plugins/virtlevels_hypervisor/hwassist.py) against native teachos."""

from __future__ import annotations

import pytest
from virtlevels_hypervisor.hwassist import HwAssistVM

from virtlevels.guests import boot_teachos, build_teachos
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.machine import PhysicalMachine

LIMIT = 5_000_000


def run_native(image):  # type: ignore[no-untyped-def]
    m = virt_machine()
    boot_teachos(m, image)
    return m.run(LIMIT)


def run_vm(image):  # type: ignore[no-untyped-def]
    vm = HwAssistVM(PhysicalMachine(hypervisor=True))
    vm.load_kernel(image)
    return vm.run(LIMIT)


def lines_by_pid(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        out.setdefault(line.split(":")[0], []).append(line)
    return out


@pytest.mark.parametrize("programs", [["hello"], ["hello", "counter", "counter"], ["fault", "hello"]])
def test_vm_output_and_status_equal_native(programs: list[str]) -> None:
    # timer_interval 3000: the timer still preempts (a timer exit happens) but no process's
    # slice ends near a line boundary, so the interleaving does not depend on exit costs.
    image = build_teachos(programs, timer_interval=3000)
    native, vm = run_native(image), run_vm(image)
    assert native.status in ("pass", "fail")
    assert vm.uart == native.uart.encode()
    assert (vm.status, vm.exit_code) == (native.status, native.exit_code)
    assert vm.exits["sbi_call"] > 0 and vm.exits["mmio"] > 0
    assert vm.exits["virtual_instruction"] == 0
    assert vm.guest_instructions > 0
    assert vm.rejected == ()


def test_default_kernel_same_lines_per_process_and_status() -> None:
    # With the default 1000-tick timer the interleaving of the two counters is timing, which
    # equivalence (Popek-Goldberg) does not cover: each process's output and the status must match.
    image = build_teachos()
    native, vm = run_native(image), run_vm(image)
    assert (vm.status, vm.exit_code) == (native.status, native.exit_code) == ("pass", 0)
    assert lines_by_pid(vm.uart.decode()) == lines_by_pid(native.uart)
    assert vm.exits["timer"] > 0
    assert vm.exits["mmio"] == vm.exits["guest_page_fault"]


GUEST_ESCAPE = """
    .text
    .globl _start
_start:
    li   t0, 0x81000000        # just past the guest's 16 MiB: host RAM, not the guest's
    li   t1, 0xdeadbeef
    sw   t1, 0(t0)
    lw   t2, 0(t0)             # reads as 0: the monitor refuses it
    li   t0, 0x84000000        # guest-physical = where its RAM lives in host-physical
    sw   t1, 0(t0)
    li   t3, 0x80200100        # inside its RAM: a plain store, no exit
    sw   t1, 0(t3)
    mv   a1, t2                # SRST shutdown, reason = what the load returned
    li   a0, 0
    li   a6, 0
    li   a7, 0x53525354
    ecall
"""


def test_guest_cannot_touch_host_memory_outside_its_allocation() -> None:
    image = assemble(GUEST_ESCAPE, "escape.S", base=0x8020_0000)
    host = PhysicalMachine(hypervisor=True)
    vm = HwAssistVM(host)
    host.phys_write(0x8100_0000, b"HOST")
    vm.load_kernel(image)
    before = host.phys_read(0x8100_0000, 4), host.phys_read(0x8400_0000 + 0x100_0000, 4)
    result = vm.run(10_000)
    assert (result.status, result.exit_code) == ("pass", 0)  # the load read 0
    assert result.rejected == (("store", 0x8100_0000), ("load", 0x8100_0000), ("store", 0x8400_0000))
    assert (host.phys_read(0x8100_0000, 4), host.phys_read(0x8400_0000 + 0x100_0000, 4)) == before
    assert host.phys_read(0x8100_0000, 4) == b"HOST"
    assert vm.guest_read(0x8020_0100, 4) == (0xDEADBEEF).to_bytes(4, "little")
    assert result.exits["mmio"] == 3


def test_vm_needs_the_h_extension() -> None:
    with pytest.raises(ValueError, match="hypervisor=True"):
        HwAssistVM(PhysicalMachine())


def test_vm_runs_are_deterministic() -> None:
    image = build_teachos(timer_interval=1000)
    first, second = run_vm(image), run_vm(image)
    assert first == second
