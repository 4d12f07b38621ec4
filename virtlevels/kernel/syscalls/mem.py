"""Memory system calls: brk, mmap (anonymous and file-backed private), munmap, mprotect (mmap(2), brk(2))."""

from __future__ import annotations

from typing import Any

from virtlevels.kernel.cgroup import memory as cgmem
from virtlevels.kernel.errno import EACCES, EINVAL, ENOMEM, KernelError
from virtlevels.kernel.mm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SHIFT,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    USER_TOP,
    Vma,
    page_align_up,
)
from virtlevels.kernel.process import RLIM_INFINITY, RLIMIT_AS, RLIMIT_DATA
from virtlevels.kernel.syscalls import numbers as nr
from virtlevels.kernel.syscalls.table import syscall
from virtlevels.kernel.syscalls.util import s32

SCRIPTED_HEAP_BASE = 0x1000_0000  # where a scripted process's brk starts (it has no ELF image)


def _as_ok(t: Any, extra: int) -> bool:
    limit = t.process.rlimit(RLIMIT_AS)
    return limit == RLIM_INFINITY or t.mm.total_size() + extra <= limit


def _unmap(k: Any, t: Any, start: int, end: int) -> None:
    mm = t.mm
    dropped = mm.remove_range(start, end)
    by: dict[Any, int] = {}
    for page in dropped:
        who = mm.resident.pop(page)
        by[who] = by.get(who, 0) + 1
    for (proc, cg), n in by.items():
        cgmem.uncharge_pages(cg, n, "anon", task=proc)
    if mm.hw is not None:
        k.isa.unmap_pages(t, start, end, dropped)


@syscall(nr.brk, 1)
def sys_brk(k: Any, t: Any, addr: int) -> int:
    """brk(2): returns the new break, or the old one when the request cannot be met."""
    mm = t.mm
    if mm.start_brk == 0:
        mm.start_brk = mm.brk = SCRIPTED_HEAP_BASE
    if addr < mm.start_brk:
        return int(mm.brk)
    old_end, new_end = page_align_up(mm.brk), page_align_up(addr)
    data_limit = t.process.rlimit(RLIMIT_DATA)
    if data_limit != RLIM_INFINITY and addr - mm.start_brk > data_limit:
        return int(mm.brk)
    if new_end > old_end:
        if mm.overlaps(old_end, new_end) or new_end > USER_TOP or not _as_ok(t, new_end - old_end):
            return int(mm.brk)
        heap = next((v for v in mm.vmas if v.name == "[heap]"), None)
        if heap is None:
            mm.insert(Vma(mm.start_brk, new_end, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          name="[heap]"))  # fmt: skip
        else:
            heap.end = new_end
    elif new_end < old_end:
        _unmap(k, t, new_end, old_end)
        heap = next((v for v in mm.vmas if v.name == "[heap]"), None)
        if heap is None and new_end > mm.start_brk:
            mm.insert(Vma(mm.start_brk, new_end, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          name="[heap]"))  # fmt: skip
    mm.brk = addr
    return int(addr)


@syscall(nr.mmap, 6)
def sys_mmap(k: Any, t: Any, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
    """mmap(2) (the 64-bit ABI: ``offset`` in bytes). MAP_SHARED anonymous memory is treated as
    private (no process shares it after fork in this model); MAP_SHARED files are refused."""
    if length == 0 or prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
        raise KernelError(EINVAL, "zero length or bad prot")
    mtype = flags & (MAP_SHARED | MAP_PRIVATE)
    if mtype not in (MAP_SHARED, MAP_PRIVATE):
        raise KernelError(EINVAL, "exactly one of MAP_SHARED and MAP_PRIVATE")
    if offset & (PAGE_SIZE - 1):
        raise KernelError(EINVAL, "offset not page aligned")
    size = page_align_up(length)
    if size > USER_TOP:
        raise KernelError(ENOMEM, "mapping too large")
    f = None
    if not flags & MAP_ANONYMOUS:
        f = t.files.get(s32(fd))
        if not f.readable or not f.inode.is_reg:
            raise KernelError(EACCES, "file not open for reading or not a regular file")
        if mtype == MAP_SHARED:
            raise KernelError(EINVAL, "shared file mappings are not implemented")
    mm = t.mm
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        if addr & (PAGE_SIZE - 1) or addr + size > USER_TOP:
            raise KernelError(EINVAL, "MAP_FIXED address not page aligned")
        if mm.overlaps(addr, addr + size):
            if flags & MAP_FIXED_NOREPLACE:
                raise KernelError(17, "range already mapped")  # EEXIST
            _unmap(k, t, addr, addr + size)
        start = addr
    else:
        found = mm.find_free(size, addr)
        if found is None:
            raise KernelError(ENOMEM, "no room in the address space")
        start = found
    if not _as_ok(t, size):
        raise KernelError(ENOMEM, "RLIMIT_AS exceeded")
    if f is not None:
        f.get()
    mm.insert(Vma(start, start + size, prot, flags, f, offset))
    return start


@syscall(nr.munmap, 2)
def sys_munmap(k: Any, t: Any, addr: int, length: int) -> int:
    if addr & (PAGE_SIZE - 1) or length == 0 or addr + length > USER_TOP:
        raise KernelError(EINVAL, "munmap of an unaligned or empty range")
    _unmap(k, t, addr, addr + page_align_up(length))
    return 0


@syscall(nr.mprotect, 3)
def sys_mprotect(k: Any, t: Any, addr: int, length: int, prot: int) -> int:
    if addr & (PAGE_SIZE - 1) or prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
        raise KernelError(EINVAL, "unaligned address or bad prot")
    end = addr + page_align_up(length)
    if length == 0:
        return 0
    if not t.mm.covered(addr, end):
        raise KernelError(ENOMEM, "range not fully mapped")
    t.mm.protect(addr, end, prot)
    if t.mm.hw is not None:
        k.isa.protect_pages(t, addr, end, prot)
    return 0


_ = PAGE_SHIFT
