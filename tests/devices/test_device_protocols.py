"""Every device satisfies the bus's MmioDevice protocol and fits its slot in the memory map."""

from __future__ import annotations

import pytest

from virtlevels.machine import memmap
from virtlevels.machine.bus import Bus, MmioDevice
from virtlevels.machine.devices import BlockDevice, Htif, Nic, Plic, TestFinisher, Uart16550


@pytest.mark.parametrize(
    ("device", "base", "size"),
    [
        (Uart16550(), memmap.UART_BASE, memmap.UART_SIZE),
        (BlockDevice(bytearray(512)), memmap.BLOCK_BASE, memmap.BLOCK_SIZE),
        (Nic(), memmap.NIC_BASE, memmap.NIC_SIZE),
        (Plic(num_harts=4), memmap.PLIC_BASE, memmap.PLIC_SIZE),
        (TestFinisher(), memmap.TEST_FINISHER_BASE, memmap.TEST_FINISHER_SIZE),
    ],
    ids=lambda v: getattr(v, "name", None) or hex(v),
)
def test_device_is_mmio_and_matches_the_memory_map(device, base, size):
    assert isinstance(device, MmioDevice)
    assert device.size == size
    bus = Bus()
    bus.add_device(base, device)
    assert bus.find(base + size - 4, 4) is not None


def test_uart_and_finisher_work_through_the_bus(host):
    bus = Bus()
    uart, fin = Uart16550(), TestFinisher()
    for base, dev in ((memmap.UART_BASE, uart), (memmap.TEST_FINISHER_BASE, fin)):
        dev.attach(host)
        bus.add_device(base, dev)
    bus.write(memmap.UART_BASE, 1, ord("!"))
    assert bus.read(memmap.UART_BASE + 5, 1) == (0x60, True)
    bus.write(memmap.TEST_FINISHER_BASE, 4, 0x5555)
    assert uart.output == b"!" and host.exits == [0]


def test_htif_is_mmio():
    assert isinstance(Htif(), MmioDevice)
