"""Small helpers for the assembler tests."""

from __future__ import annotations

from virtlevels.machine.asm import assemble
from virtlevels.machine.image import Image, Segment


def seg(image: Image, name: str) -> Segment:
    return next(s for s in image.segments if s.name == name)


def words(source: str, **kw: object) -> list[int]:
    """The .text of ``source`` as 32-bit little-endian words."""
    data = seg(assemble(source, "t.S", **kw), ".text").data  # type: ignore[arg-type]
    return [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]
