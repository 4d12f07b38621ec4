"""Sparse physical memory: a dict from page number to a 4 KiB bytearray.

A page costs nothing until it is first touched (read or written), so a 1 GiB guest is cheap.
Each page is kept together with two memoryviews over the same buffer (16-bit and 32-bit
elements), so the hot paths read a halfword or a word with one index instead of slicing and
``int.from_bytes``. The views use the host's byte order, which must be little-endian like
RISC-V (checked at import).
"""

from __future__ import annotations

import sys

import attrs

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE_SIZE - 1

if sys.byteorder != "little":  # pragma: no cover - every supported host is little-endian
    raise ImportError("virtlevels' memory views need a little-endian host (RISC-V is little-endian)")

# A page: (bytes, 16-bit view, 32-bit view) over one buffer.
Page = tuple[bytearray, memoryview, memoryview]


def new_page(data: bytes | None = None) -> Page:
    buf = bytearray(PAGE_SIZE) if data is None else bytearray(data)
    mv = memoryview(buf)
    return (buf, mv.cast("H"), mv.cast("I"))


@attrs.define(eq=False)
class PhysicalMemory:
    """The RAM contents of a machine, keyed by absolute physical page number."""

    pages: dict[int, Page] = attrs.field(factory=dict)

    def page(self, ppn: int) -> Page:
        """The page ``ppn``, allocated (zero-filled) on first touch."""
        p = self.pages.get(ppn)
        if p is None:
            p = self.pages[ppn] = new_page()
        return p

    def read(self, paddr: int, width: int) -> int:
        off = paddr & PAGE_MASK
        if off + width <= PAGE_SIZE:
            buf = self.page(paddr >> PAGE_SHIFT)[0]
            return int.from_bytes(buf[off : off + width], "little")
        return int.from_bytes(self.read_bytes(paddr, width), "little")

    def write(self, paddr: int, width: int, value: int) -> None:
        self.write_bytes(paddr, (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little"))

    def read_bytes(self, paddr: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            off = paddr & PAGE_MASK
            chunk = min(n, PAGE_SIZE - off)
            p = self.pages.get(paddr >> PAGE_SHIFT)
            out += p[0][off : off + chunk] if p is not None else bytes(chunk)
            paddr += chunk
            n -= chunk
        return bytes(out)

    def write_bytes(self, paddr: int, data: bytes) -> None:
        pos = 0
        n = len(data)
        while pos < n:
            off = paddr & PAGE_MASK
            chunk = min(n - pos, PAGE_SIZE - off)
            self.page(paddr >> PAGE_SHIFT)[0][off : off + chunk] = data[pos : pos + chunk]
            paddr += chunk
            pos += chunk

    @property
    def touched_bytes(self) -> int:
        return len(self.pages) * PAGE_SIZE

    # -- snapshot ---------------------------------------------------------------------------
    def snapshot(self) -> dict[int, bytes]:
        """Every touched page as bytes (all-zero pages included: touching is observable in stats)."""
        return {ppn: bytes(p[0]) for ppn, p in sorted(self.pages.items())}

    def restore(self, pages: dict[int, bytes]) -> None:
        # New page objects: anything that cached the old ones (hart fast paths) is flushed by the caller.
        self.pages = {int(ppn): new_page(data) for ppn, data in pages.items()}
