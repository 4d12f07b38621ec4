"""The standard board: a PhysicalMachine with the QEMU-virt-like devices wired in.

``virt_machine()`` is what ``virtlevels machine run`` uses and what a script wants by default:
CLINT (added by the machine), PLIC, a 16550 UART at 0x1000_0000, the test finisher at
0x10_0000, and optionally a block device; HTIF appears at ``tohost`` when a program has one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from virtlevels.cost import CostModel
from virtlevels.machine.devices.block import BlockDevice
from virtlevels.machine.devices.finisher import TestFinisher
from virtlevels.machine.devices.plic import Plic
from virtlevels.machine.devices.uart import Uart16550
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.memmap import BLOCK_BASE, PLIC_BASE, RAM_SIZE_DEFAULT, TEST_FINISHER_BASE, UART_BASE

if TYPE_CHECKING:
    from virtlevels.world import World


def virt_machine(
    *,
    num_harts: int = 1,
    ram_size: int = RAM_SIZE_DEFAULT,
    profile: CostModel | str = "default",
    world: World | None = None,
    echo: Callable[[bytes], object] | None = None,
    input_stream: BinaryIO | None = None,
    disk: bytearray | str | Path | None = None,
    hypervisor: bool = False,
    isa_extensions: tuple[str, ...] = (),
) -> PhysicalMachine:
    """A machine with PLIC, UART (output captured, and passed to ``echo``), test finisher and disk;
    ``hypervisor`` gives the harts the H extension, ``isa_extensions`` adds registered ISA extensions."""
    machine = PhysicalMachine(num_harts=num_harts, ram_size=ram_size, profile=profile, world=world,
                              hypervisor=hypervisor, isa_extensions=isa_extensions)
    machine.add_device(PLIC_BASE, Plic(num_harts=num_harts))
    machine.add_device(UART_BASE, Uart16550(echo=echo, input_stream=input_stream))
    machine.add_device(TEST_FINISHER_BASE, TestFinisher())
    if disk is not None:
        machine.add_device(BLOCK_BASE, BlockDevice(backing=disk))
    return machine
