"""A loadable program image: what the assembler and the ELF loader produce and a machine loads."""

from __future__ import annotations

import attrs

# ELF segment permission bits (ELF gABI, p_flags).
PF_X, PF_W, PF_R = 1, 2, 4


@attrs.frozen
class Segment:
    """Bytes placed at a physical address; ``memsize`` beyond ``len(data)`` is zero-filled (.bss)."""

    addr: int
    data: bytes
    memsize: int
    flags: int = PF_R | PF_W | PF_X
    name: str = ""


@attrs.frozen
class Image:
    """A program ready to load: segments, entry point and symbols (kept for tohost and traces)."""

    segments: tuple[Segment, ...]
    entry: int
    symbols: dict[str, int] = attrs.field(factory=dict, hash=False)
    source: str = ""  # file name the image came from, for messages

    def symbol(self, name: str) -> int | None:
        return self.symbols.get(name)
