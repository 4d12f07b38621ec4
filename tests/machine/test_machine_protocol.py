"""PhysicalMachine keeps the Machine protocol that kernels and hypervisors program against."""

from __future__ import annotations

from virtlevels.machine.board import virt_machine
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.protocol import Machine


def test_physical_machines_are_machines() -> None:
    assert isinstance(PhysicalMachine(), Machine)
    assert isinstance(virt_machine(num_harts=2), Machine)


def test_something_else_is_not_a_machine() -> None:
    assert not isinstance(object(), Machine)
