"""The physical address space: RAM regions and MMIO devices, and the device protocols.

An access to a physical address that is neither RAM nor a device is an access fault
(Privileged ISA 3.7 "Physical Memory Attributes"; causes 1, 5, 7 by access kind), raised by the
hart from :class:`BusError`. An MMIO region shadows RAM it overlaps (HTIF's ``tohost`` lives in
RAM-backed ELF sections but behaves as a device).

Misaligned accesses never reach the bus: the hart traps them (loads: cause 4; stores and AMOs:
cause 6; see :mod:`virtlevels.machine.hart`), which Unpriv 2.6 and Priv 3.6.3.4 permit.

Devices implement :class:`MmioDevice`; the machine gives each one a :class:`DeviceHost` through
``attach(host)`` if the device has that method.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import attrs

from virtlevels.machine.memory import PAGE_SHIFT, PAGE_SIZE, Page, PhysicalMemory


@runtime_checkable
class MmioDevice(Protocol):
    """A memory-mapped device. ``offset`` is relative to the device's base; ``width`` is 1, 2 or 4.

    Optional methods: ``reset()``, ``attach(host: DeviceHost)``.
    """

    name: str
    size: int

    def read(self, offset: int, width: int) -> int: ...

    def write(self, offset: int, width: int, value: int) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class DeviceHost(Protocol):
    """What a device may ask of the machine it is attached to."""

    def now(self) -> int:
        """The machine clock in cycles."""
        ...

    def raise_irq(self, line: int, level: bool) -> None:
        """Drive interrupt source ``line`` (routed to the interrupt controller, e.g. the PLIC)."""
        ...

    def request_exit(self, code: int) -> None:
        """Stop the machine after the current instruction; 0 = pass, anything else = fail with that code."""
        ...

    def charge(self, category: str, cycles: int) -> None:
        """Account ``cycles`` of device work under ``category`` (charged to the hart being served)."""
        ...

    def schedule(self, delay_cycles: int, callback: Callable[[], None]) -> object:
        """Run ``callback`` ``delay_cycles`` from now; returns a handle."""
        ...


@runtime_checkable
class InterruptHost(DeviceHost, Protocol):
    """The extra the machine offers interrupt controllers (CLINT, PLIC): driving a hart's mip bits."""

    @property
    def hart_count(self) -> int: ...

    def set_hart_interrupt(self, hart_id: int, bit: int, level: bool) -> None:
        """Set or clear hardware-driven bit ``bit`` (MSIP=3, MTIP=7, SEIP=9, MEIP=11) of a hart's mip."""
        ...


class BusError(Exception):
    """Internal: no RAM or device at a physical address; the hart turns it into an access fault."""


@attrs.frozen
class Mapping:
    base: int
    size: int
    device: Any  # MmioDevice

    @property
    def end(self) -> int:
        return self.base + self.size


@attrs.define(eq=False)
class Bus:
    """RAM regions over one sparse :class:`PhysicalMemory`, plus MMIO mappings."""

    memory: PhysicalMemory = attrs.field(factory=PhysicalMemory)
    ram: list[tuple[int, int]] = attrs.field(factory=list)  # (base, end)
    mmio: list[Mapping] = attrs.field(factory=list)  # sorted by base
    _bases: list[int] = attrs.field(factory=list)
    _mmio_pages: set[int] = attrs.field(factory=set)

    def add_ram(self, base: int, size: int) -> None:
        if base & (PAGE_SIZE - 1) or size & (PAGE_SIZE - 1):
            raise ValueError(f"RAM region 0x{base:x}+0x{size:x} must be page-aligned")
        self.ram.append((base, base + size))

    def add_device(self, base: int, device: Any) -> Mapping:
        size = int(device.size)
        for m in self.mmio:
            if base < m.end and m.base < base + size:
                raise ValueError(
                    f"device {device.name!r} at 0x{base:x}+0x{size:x} overlaps "
                    f"{m.device.name!r} at 0x{m.base:x}"
                )
        mapping = Mapping(base, size, device)
        i = bisect.bisect(self._bases, base)
        self.mmio.insert(i, mapping)
        self._bases.insert(i, base)
        for ppn in range(base >> PAGE_SHIFT, (base + size - 1 >> PAGE_SHIFT) + 1):
            self._mmio_pages.add(ppn)
        return mapping

    def remove_device(self, device: Any) -> None:
        self.mmio = [m for m in self.mmio if m.device is not device]
        self._bases = [m.base for m in self.mmio]
        self._mmio_pages = set()
        for m in self.mmio:
            self._mmio_pages.update(range(m.base >> PAGE_SHIFT, (m.end - 1 >> PAGE_SHIFT) + 1))

    # -- lookups ----------------------------------------------------------------------------
    def is_ram(self, paddr: int, width: int = 1) -> bool:
        for base, end in self.ram:
            if base <= paddr and paddr + width <= end:
                return True
        return False

    def ram_page(self, ppn: int) -> Page | None:
        """The RAM page ``ppn`` if every byte of it is plain RAM (no device overlaps), else None."""
        if ppn in self._mmio_pages:
            return None
        addr = ppn << PAGE_SHIFT
        for base, end in self.ram:
            if base <= addr < end:
                return self.memory.page(ppn)
        return None

    def is_plain_ram(self, paddr: int, width: int) -> bool:
        """RAM that no device shadows (where LR/SC and instruction fetch are allowed)."""
        return self.is_ram(paddr, width) and self.find(paddr, width) is None

    def find(self, paddr: int, width: int) -> Mapping | None:
        i = bisect.bisect(self._bases, paddr) - 1
        if i >= 0:
            m = self.mmio[i]
            if paddr < m.base + m.size:
                return m  # an access that runs past the end is still the device's (it may fault)
        return None

    # -- slow-path accesses (MMIO, device-shadowed pages) ----------------------------------
    def read(self, paddr: int, width: int) -> tuple[int, bool]:
        """(value, was_mmio); raises BusError if nothing is there."""
        m = self.find(paddr, width)
        if m is not None:
            if paddr + width > m.base + m.size:
                raise BusError(paddr)
            return m.device.read(paddr - m.base, width) & ((1 << (8 * width)) - 1), True
        if self.is_ram(paddr, width):
            return self.memory.read(paddr, width), False
        raise BusError(paddr)

    def write(self, paddr: int, width: int, value: int) -> bool:
        """Store; returns whether it went to a device. Raises BusError if nothing is there."""
        m = self.find(paddr, width)
        if m is not None:
            if paddr + width > m.base + m.size:
                raise BusError(paddr)
            m.device.write(paddr - m.base, width, value & ((1 << (8 * width)) - 1))
            return True
        if self.is_ram(paddr, width):
            self.memory.write(paddr, width, value)
            return False
        raise BusError(paddr)
