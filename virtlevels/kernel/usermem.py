"""User memory as system call handlers see it, for both kinds of process.

Handlers take pointers and read or write through a :class:`UserMemory`: an ISA process's is a
software walk of its Sv32 page tables over the machine's physical memory; a scripted process's
is :class:`ScriptedMemory`, a small arena into which the dispatcher copies the Python values a
scripted call passes (bytes, strings, lists of strings, output buffers) so that the very same
handlers serve both. A bad pointer is EFAULT, as copy_from_user reports it.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

import attrs

from virtlevels.kernel.errno import EFAULT, ENAMETOOLONG, KernelError

PATH_MAX = 4096
PAGE_SIZE = 4096


class UserMemory(Protocol):
    def read(self, addr: int, size: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


def read_cstr(mem: UserMemory, addr: int, limit: int = PATH_MAX) -> bytes:
    """A NUL-terminated string (strncpy_from_user); ENAMETOOLONG past ``limit``."""
    if addr == 0:
        raise KernelError(EFAULT, "NULL string pointer")
    if isinstance(mem, ScriptedMemory):
        return mem.read_cstr(addr, limit)
    # A page at a time: a string never faults on a page it does not reach.
    out = bytearray()
    while len(out) < limit:
        cur = addr + len(out)
        chunk = mem.read(cur, min(limit - len(out), PAGE_SIZE - (cur & (PAGE_SIZE - 1))))
        nul = chunk.find(0)
        if nul >= 0:
            out += chunk[:nul]
            return bytes(out)
        out += chunk
    raise KernelError(ENAMETOOLONG, "string longer than PATH_MAX")


def read_path(mem: UserMemory, addr: int) -> str:
    return read_cstr(mem, addr).decode("utf-8", errors="surrogateescape")


def read_u32(mem: UserMemory, addr: int) -> int:
    return int(struct.unpack("<I", mem.read(addr, 4))[0])


def write_u32(mem: UserMemory, addr: int, value: int) -> None:
    mem.write(addr, struct.pack("<I", value & 0xFFFFFFFF))


def write_i32(mem: UserMemory, addr: int, value: int) -> None:
    mem.write(addr, struct.pack("<i", value))


def read_ptr_array(mem: UserMemory, addr: int, limit: int = 1024) -> list[bytes]:
    """A NULL-terminated array of string pointers (execve's argv and envp)."""
    out: list[bytes] = []
    if addr == 0:
        return out
    while len(out) < limit:
        p = read_u32(mem, addr + 4 * len(out))
        if p == 0:
            return out
        out.append(read_cstr(mem, p))
    raise KernelError(EFAULT, "argument list too long")


ARENA_BASE = 0x7F00_0000  # scripted pointers live here; far from anything an ISA process maps


@attrs.define(eq=False)
class ScriptedMemory:
    """The user-memory shim of a scripted process: one arena of allocations per system call.

    Python objects that are not memory (a child's entry function for clone) are passed as
    *handles*: addresses in a separate range that :meth:`object_at` turns back into the object.
    """

    _blocks: list[tuple[int, bytearray]] = attrs.field(factory=list)
    _next: int = ARENA_BASE
    _objects: dict[int, Any] = attrs.field(factory=dict)

    def reset(self) -> None:
        self._blocks.clear()
        self._objects.clear()
        self._next = ARENA_BASE

    def alloc(self, data: bytes | int) -> int:
        buf = bytearray(data) if isinstance(data, (bytes, bytearray)) else bytearray(data)
        addr = self._next
        self._blocks.append((addr, buf))
        self._next += (len(buf) + 16) & ~7  # a gap so overruns fault instead of spilling
        return addr

    def put_object(self, obj: Any) -> int:
        handle = 0x10 + 0x10 * len(self._objects)
        self._objects[handle] = obj
        return handle

    def object_at(self, handle: int) -> Any:
        try:
            return self._objects[handle]
        except KeyError:
            raise KernelError(EFAULT, f"no scripted object at {handle:#x}") from None

    def _find(self, addr: int, size: int) -> tuple[bytearray, int]:
        for base, buf in self._blocks:
            if base <= addr and addr + size <= base + len(buf):
                return buf, addr - base
        raise KernelError(EFAULT, f"bad user address {addr:#x}+{size}")

    def read_cstr(self, addr: int, limit: int) -> bytes:
        buf, off = self._find(addr, 1)
        nul = buf.find(0, off, off + limit)
        if nul < 0:
            if len(buf) - off >= limit:
                raise KernelError(ENAMETOOLONG, "string longer than PATH_MAX")
            raise KernelError(EFAULT, f"unterminated string at {addr:#x}")
        return bytes(buf[off:nul])

    def read(self, addr: int, size: int) -> bytes:
        if size == 0:
            return b""
        buf, off = self._find(addr, size)
        return bytes(buf[off:off + size])

    def write(self, addr: int, data: bytes) -> None:
        if not data:
            return
        buf, off = self._find(addr, len(data))
        buf[off:off + len(data)] = data

    def block(self, addr: int) -> bytes:
        for base, buf in self._blocks:
            if base == addr:
                return bytes(buf)
        raise KernelError(EFAULT, f"no block at {addr:#x}")
