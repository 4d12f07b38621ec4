"""A fake DeviceHost and a fake RAM for device tests: they record what devices ask of the machine."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from virtlevels.machine.devices.dma import DmaFault


@attrs.define(eq=False)
class FakeHost:
    """Records interrupt levels, exit requests, charges and scheduled callbacks."""

    cycles: int = 0
    levels: dict[int, bool] = attrs.field(factory=dict)
    irq_log: list[tuple[int, bool]] = attrs.field(factory=list)
    exits: list[int] = attrs.field(factory=list)
    charges: list[tuple[str, int]] = attrs.field(factory=list)
    scheduled: list[tuple[int, Callable[[], object]]] = attrs.field(factory=list)

    def now(self) -> int:
        return self.cycles

    def raise_irq(self, line: int, level: bool) -> None:
        self.levels[line] = level
        self.irq_log.append((line, level))

    def request_exit(self, code: int) -> None:
        self.exits.append(code)

    def charge(self, category: str, cycles: int) -> None:
        self.charges.append((category, cycles))

    def schedule(self, delay_cycles: int, callback: Callable[[], object]) -> None:
        self.scheduled.append((self.cycles + delay_cycles, callback))


@attrs.define(eq=False)
class FakeRam:
    """Guest-physical RAM at [base, base + size) with the DmaHost methods."""

    base: int = 0x8000_0000
    data: bytearray = attrs.field(factory=lambda: bytearray(0x10000))

    def _check(self, paddr: int, n: int) -> int:
        off = paddr - self.base
        if off < 0 or off + n > len(self.data):
            raise DmaFault(f"0x{paddr:x}+{n} is not RAM")
        return off

    def dma_read(self, paddr: int, n: int) -> bytes:
        off = self._check(paddr, n)
        return bytes(self.data[off : off + n])

    def dma_write(self, paddr: int, data: bytes) -> None:
        off = self._check(paddr, len(data))
        self.data[off : off + len(data)] = data


@attrs.define(eq=False)
class FakeDmaHost(FakeHost):
    """A DeviceHost that also offers DMA (devices pick it up in attach())."""

    ram: FakeRam = attrs.field(factory=FakeRam)

    def dma_read(self, paddr: int, n: int) -> bytes:
        return self.ram.dma_read(paddr, n)

    def dma_write(self, paddr: int, data: bytes) -> None:
        self.ram.dma_write(paddr, data)


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def ram() -> FakeRam:
    return FakeRam()


@pytest.fixture
def dma_host() -> FakeDmaHost:
    return FakeDmaHost()
