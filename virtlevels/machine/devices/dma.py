"""What bus-mastering devices (block device, NIC) need from the machine: guest-physical DMA.

The machine passes an object with ``dma_read``/``dma_write`` at construction, or its
``DeviceHost`` implements both. DMA is physical: it bypasses the harts' MMUs (as real DMA
does without an IOMMU) but goes through the bus, so it may reach RAM and nothing else.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class DmaFault(Exception):
    """Raised by a DmaHost when a transfer touches an address that is not RAM.

    Devices catch it and report a DMA error in their status register: a guest that programs a
    bad buffer address sees a device error, never a Python exception.
    """


@runtime_checkable
class DmaHost(Protocol):
    """Guest-physical memory access for a device."""

    def dma_read(self, paddr: int, n: int) -> bytes:
        """``n`` bytes of guest-physical memory at ``paddr``; raises DmaFault if not RAM."""
        ...

    def dma_write(self, paddr: int, data: bytes) -> None:
        """Store ``data`` at guest-physical ``paddr``; raises DmaFault if not RAM."""
        ...
