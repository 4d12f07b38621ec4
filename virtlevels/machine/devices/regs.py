"""Sub-word access to 32-bit little-endian device registers.

The bus passes any width of 1, 2 or 4 bytes; devices with 32-bit registers decode the register
from ``offset & ~3`` and use these helpers for the byte lanes, as a 32-bit APB/TileLink slave
does with its byte strobes.
"""

from __future__ import annotations

WIDTH_MASKS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF, 8: 0xFFFF_FFFF_FFFF_FFFF}


def read_lanes(value: int, offset: int, width: int) -> int:
    """The ``width`` bytes of register ``value`` starting at byte lane ``offset & 3``."""
    return (value >> ((offset & 3) << 3)) & WIDTH_MASKS[width]


def write_lanes(old: int, offset: int, width: int, value: int) -> int:
    """``old`` with the lanes a ``width``-byte write at ``offset`` touches replaced by ``value``."""
    shift = (offset & 3) << 3
    mask = (WIDTH_MASKS[width] << shift) & 0xFFFF_FFFF
    return (old & ~mask) | ((value << shift) & mask)
