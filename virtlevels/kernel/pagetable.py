"""Sv32 page tables in machine memory, and the page frames they map (Priv 4.3).

The kernel owns a range of the machine's RAM and hands it out a 4 KiB frame at a time
(:class:`FrameAllocator`, deterministic: lowest free frame first). A :class:`PageTable` is one
address space's two-level Sv32 table: a root page of 1024 PTEs, leaf tables allocated on demand,
all written into RAM through the machine's physical-memory port - a kernel's linear map of RAM,
plain stores, not privileged state (the hart only learns about a table when the kernel executes
``csrw satp`` and ``sfence.vma``). The table also keeps ``pages`` (vpn -> frame), what Linux's
``struct page`` bookkeeping knows, so freeing an address space does not need a walk.

:meth:`PageTable.walk` translates in software by reading the PTEs back from RAM, as
copy_from_user's page walk does; it is how system calls reach user memory.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.kernel.mm import PROT_EXEC, PROT_READ, PROT_WRITE
from virtlevels.machine.mmu import PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
ZERO_PAGE = bytes(PAGE_SIZE)
SATP_SV32 = 1 << 31


class OutOfFrames(Exception):  # noqa: N818 - the caller turns it into the OOM killer's SIGKILL
    """The kernel's RAM range is exhausted."""


@attrs.define(eq=False)
class FrameAllocator:
    """Physical page frames [first, end) of the machine's RAM, owned by the kernel."""

    machine: Any
    first: int  # first ppn
    end: int  # one past the last ppn
    _next: int = attrs.field(init=False)
    _free: list[int] = attrs.field(factory=list, init=False)
    in_use: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        self._next = self.first

    def alloc(self, data: bytes | None = None) -> int:
        """A frame filled with ``data`` (zeros by default)."""
        if self._free:
            ppn = self._free.pop()
        elif self._next < self.end:
            ppn = self._next
            self._next += 1
        else:
            raise OutOfFrames()
        self.in_use += 1
        content = ZERO_PAGE if data is None else data.ljust(PAGE_SIZE, b"\0")
        self.machine.phys_write(ppn << PAGE_SHIFT, content)
        return ppn

    def free(self, ppn: int) -> None:
        self.in_use -= 1
        self._free.append(ppn)
        if len(self._free) > 1:
            self._free.sort(reverse=True)  # lowest first: reuse does not depend on free order


def pte_flags(prot: int, writable: bool = True) -> int:
    """Leaf PTE bits for a VMA protection; A and D preset (no A/D faults to service)."""
    flags = PTE_V | PTE_U | PTE_A | PTE_D
    if prot & (PROT_READ | PROT_WRITE):
        flags |= PTE_R  # Priv 4.3.1: W without R is reserved
    if prot & PROT_WRITE and writable:
        flags |= PTE_W
    if prot & PROT_EXEC:
        flags |= PTE_X
    return flags


@attrs.define(eq=False)
class PageTable:
    """One Sv32 address space in machine memory."""

    frames: FrameAllocator
    root: int = attrs.field(init=False)
    leaves: dict[int, int] = attrs.field(factory=dict, init=False)  # vpn[1] -> leaf table ppn
    pages: dict[int, int] = attrs.field(factory=dict, init=False)  # vpn -> frame ppn
    #: bumped whenever a valid translation is removed or changed: harts that ran this table
    #: need an sfence.vma before running it again (a lazy TLB shootdown).
    generation: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        self.root = self.frames.alloc()

    @property
    def machine(self) -> Any:
        return self.frames.machine

    def satp(self, asid: int = 0) -> int:
        return SATP_SV32 | (asid & 0x1FF) << 22 | self.root

    def _write_pte(self, table: int, index: int, pte: int) -> None:
        self.machine.phys_write((table << PAGE_SHIFT) + 4 * index, pte.to_bytes(4, "little"))

    def _read_pte(self, table: int, index: int) -> int:
        return int.from_bytes(self.machine.phys_read((table << PAGE_SHIFT) + 4 * index, 4), "little")

    def map(self, vpn: int, ppn: int, flags: int) -> None:
        """Install the leaf PTE for ``vpn`` (allocating the leaf table if needed)."""
        hi = vpn >> 10
        leaf = self.leaves.get(hi)
        if leaf is None:
            leaf = self.leaves[hi] = self.frames.alloc()
            self._write_pte(self.root, hi, leaf << 10 | PTE_V)  # a pointer: V with R=W=X=0
        if vpn in self.pages:
            self.generation += 1
        self.pages[vpn] = ppn
        self._write_pte(leaf, vpn & 0x3FF, ppn << 10 | flags)

    def set_flags(self, vpn: int, flags: int) -> None:
        ppn = self.pages.get(vpn)
        if ppn is not None:
            self._write_pte(self.leaves[vpn >> 10], vpn & 0x3FF, ppn << 10 | flags)
            self.generation += 1

    def unmap(self, vpn: int) -> None:
        """Remove the mapping and free its frame."""
        ppn = self.pages.pop(vpn, None)
        if ppn is None:
            return
        self._write_pte(self.leaves[vpn >> 10], vpn & 0x3FF, 0)
        self.frames.free(ppn)
        self.generation += 1

    def walk(self, va: int) -> tuple[int, int] | None:
        """Software Sv32 walk (Priv 4.3.2) over the tables in RAM: (physical address, leaf PTE)."""
        pte = self._read_pte(self.root, va >> 22)
        if not pte & PTE_V:
            return None
        if pte & (PTE_R | PTE_X):  # a megapage: the kernel never makes one, but walk it right
            return ((pte >> 20) << 22 | (va & 0x3FFFFF)), pte
        pte = self._read_pte(pte >> 10, (va >> 12) & 0x3FF)
        if not pte & PTE_V:
            return None
        return (pte >> 10) << PAGE_SHIFT | (va & (PAGE_SIZE - 1)), pte

    def copy(self, flags_of: Any) -> PageTable:
        """A new table with a private copy of every frame (fork); ``flags_of(vpn)`` gives its PTE bits."""
        m = self.machine
        child = PageTable(self.frames)
        try:
            for vpn in sorted(self.pages):
                data = m.phys_read(self.pages[vpn] << PAGE_SHIFT, PAGE_SIZE)
                child.map(vpn, self.frames.alloc(data), flags_of(vpn))
        except OutOfFrames:
            child.destroy()
            raise
        return child

    def destroy(self) -> None:
        for ppn in self.pages.values():
            self.frames.free(ppn)
        for ppn in self.leaves.values():
            self.frames.free(ppn)
        self.frames.free(self.root)
        self.pages.clear()
        self.leaves.clear()
        self.generation += 1

