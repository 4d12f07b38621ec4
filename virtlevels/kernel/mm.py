"""Address-space bookkeeping (mm_struct, vm_area_struct; brk(2), mmap(2), munmap(2), mprotect(2)).

An :class:`AddressSpace` holds the VMAs of a process and which pages are resident. A page is
charged to the memory cgroup the first time it is touched (the page-fault path), never at
mmap time, as Linux does for anonymous memory. ISA processes additionally keep Sv32 page
tables in machine memory (see :mod:`virtlevels.kernel.isa`); this module is the part both
kinds of process share.
"""

from __future__ import annotations

from typing import Any

import attrs

PAGE_SIZE = 4096
PAGE_SHIFT = 12

# include/uapi/asm-generic/mman-common.h, mman.h
PROT_NONE = 0
PROT_READ = 1
PROT_WRITE = 2
PROT_EXEC = 4
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_FIXED_NOREPLACE = 0x100000
MAP_FAILED = 0xFFFFFFFF

USER_TOP = 0x8000_0000  # RV32 Linux TASK_SIZE (user addresses below 2 GiB, PAGE_OFFSET 0xC0000000)
MMAP_BASE = 0x4000_0000  # where mmap starts looking (a legacy bottom-up layout)
STACK_TOP = 0x7FFF_F000


def page_align_up(x: int) -> int:
    return (x + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


@attrs.define(eq=False)
class Vma:
    start: int
    end: int
    prot: int
    flags: int
    file: Any = None  # an OpenFile for file-backed private mappings
    offset: int = 0
    name: str = ""

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end


@attrs.define(eq=False)
class AddressSpace:
    """The memory map of one process (shared by CLONE_VM tasks)."""

    vmas: list[Vma] = attrs.field(factory=list)
    start_brk: int = 0
    brk: int = 0
    #: page number -> the process charged for it (anonymous pages this mm owns).
    resident: dict[int, Any] = attrs.field(factory=dict)
    #: pages inherited from the parent at fork (copy-on-write): readable without a charge; a
    #: write makes a private copy, charged then.
    cow: set[int] = attrs.field(factory=set)
    users: int = 1
    #: ISA processes: the hardware side (page-table root, frames); None for scripted processes.
    hw: Any = None
    #: The dynamic linker's per-process state (a plugin's link map): it belongs to the address
    #: space, so fork copies it (``linkmap.fork()``) and execve, which makes a new one, drops it.
    linkmap: Any = None

    def find(self, addr: int) -> Vma | None:
        for v in self.vmas:
            if v.start <= addr < v.end:
                return v
        return None

    def total_size(self) -> int:
        return sum(v.end - v.start for v in self.vmas)

    def overlaps(self, start: int, end: int) -> bool:
        return any(v.start < end and start < v.end for v in self.vmas)

    def find_free(self, length: int, hint: int = 0) -> int | None:
        """get_unmapped_area, bottom-up first fit from the hint (or MMAP_BASE)."""
        addr = page_align_up(hint) if hint else MMAP_BASE
        for _ in range(2):
            for v in sorted(self.vmas, key=lambda v: v.start):
                if v.end <= addr:
                    continue
                if v.start >= addr + length:
                    break
                addr = v.end
            if addr + length <= USER_TOP:
                return addr
            addr = MMAP_BASE
        return None

    def insert(self, vma: Vma) -> None:
        self.vmas.append(vma)
        self.vmas.sort(key=lambda v: v.start)

    def remove_range(self, start: int, end: int) -> list[int]:
        """Unmap [start, end): split VMAs; return the resident page numbers dropped."""
        out: list[Vma] = []
        for v in self.vmas:
            if v.end <= start or v.start >= end:
                out.append(v)
                continue
            if v.start < start:
                out.append(attrs.evolve(v, end=start))
            if v.end > end:
                out.append(attrs.evolve(v, start=end, offset=v.offset + (end - v.start)))
        self.vmas = sorted(out, key=lambda v: v.start)
        dropped = [p for p in self.resident if start >> PAGE_SHIFT <= p < end >> PAGE_SHIFT]
        for p in range(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
            self.cow.discard(p)
        return dropped

    def protect(self, start: int, end: int, prot: int) -> None:
        """mprotect: split the VMAs at the boundaries and set ``prot`` inside."""
        out: list[Vma] = []
        for v in self.vmas:
            if v.end <= start or v.start >= end:
                out.append(v)
                continue
            if v.start < start:
                out.append(attrs.evolve(v, end=start))
            lo, hi = max(v.start, start), min(v.end, end)
            out.append(attrs.evolve(v, start=lo, end=hi, prot=prot, offset=v.offset + (lo - v.start)))
            if v.end > end:
                out.append(attrs.evolve(v, start=end, offset=v.offset + (end - v.start)))
        self.vmas = sorted(out, key=lambda v: v.start)

    def covered(self, start: int, end: int) -> bool:
        """Every page of [start, end) lies in some VMA (mprotect's ENOMEM check)."""
        addr = start
        for v in sorted(self.vmas, key=lambda v: v.start):
            if v.end <= addr:
                continue
            if v.start > addr:
                return False
            addr = v.end
            if addr >= end:
                return True
        return addr >= end

    def fork(self) -> AddressSpace:
        """dup_mm: same VMAs; the parent's pages become copy-on-write for the child."""
        child = AddressSpace([attrs.evolve(v) for v in self.vmas], self.start_brk, self.brk)
        child.cow = set(self.resident) | set(self.cow)
        if self.linkmap is not None:
            child.linkmap = self.linkmap.fork()
        for v in child.vmas:
            if v.file is not None:
                v.file.get()
        return child
