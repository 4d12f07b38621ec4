"""API translation, as Wine does it: a Win32-flavoured ``kernel32.dll`` on the kernel's system calls.

Programs written against these functions (their names, arguments, handles, BOOL results and
GetLastError codes, per the Win32 API reference on learn.microsoft.com) run unchanged on the
Linux-like kernel: each call is translated into system calls. Handles are per process (a table
in the link map, copied at fork); the standard handles map to fds 0, 1, 2. Paths: ``C:\\dir\\f``
becomes ``/dir/f`` under :data:`DRIVE_C` (Wine maps drive C: to a directory, ~/.wine/drive_c).
Each call also costs ``[interpose] win32`` cycles (the translation), shown in the reports.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from typing import Any

import attrs

from virtlevels.kernel import scripted as sys
from virtlevels.kernel.mm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from virtlevels.kernel.vfs.constants import AT_FDCWD, O_CREAT, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY
from virtlevels_interpose.linker import CallCtx, Library

KERNEL32 = "kernel32.dll"
DRIVE_C = "/"
Gen = Generator[Any, Any, Any]

# winnt.h / winbase.h / fileapi.h constants
GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
CREATE_NEW, CREATE_ALWAYS, OPEN_EXISTING, OPEN_ALWAYS, TRUNCATE_EXISTING = 1, 2, 3, 4, 5
STD_INPUT_HANDLE = 0xFFFFFFF6  # (DWORD)-10
STD_OUTPUT_HANDLE = 0xFFFFFFF5  # (DWORD)-11
STD_ERROR_HANDLE = 0xFFFFFFF4  # (DWORD)-12
INVALID_HANDLE_VALUE = 0xFFFFFFFF
MEM_COMMIT, MEM_RESERVE, MEM_DECOMMIT, MEM_RELEASE = 0x1000, 0x2000, 0x4000, 0x8000
PAGE_NOACCESS, PAGE_READONLY, PAGE_READWRITE = 0x01, 0x02, 0x04
PAGE_EXECUTE, PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE = 0x10, 0x20, 0x40
# winerror.h
ERROR_SUCCESS = 0
ERROR_FILE_NOT_FOUND = 2
ERROR_PATH_NOT_FOUND = 3
ERROR_TOO_MANY_OPEN_FILES = 4
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_HANDLE = 6
ERROR_NOT_ENOUGH_MEMORY = 8
ERROR_FILE_EXISTS = 80
ERROR_INVALID_PARAMETER = 87
ERROR_ALREADY_EXISTS = 183

#: How Wine's ntdll maps errno to Win32 errors (a subset of its FILE_GetNtStatus + RtlNtStatusToDosError).
ERRNO_TO_WIN32 = {2: ERROR_FILE_NOT_FOUND, 20: ERROR_PATH_NOT_FOUND, 13: ERROR_ACCESS_DENIED,
                  1: ERROR_ACCESS_DENIED, 17: ERROR_FILE_EXISTS, 9: ERROR_INVALID_HANDLE,
                  24: ERROR_TOO_MANY_OPEN_FILES, 12: ERROR_NOT_ENOUGH_MEMORY,
                  22: ERROR_INVALID_PARAMETER}  # fmt: skip
_PROT = {PAGE_NOACCESS: PROT_NONE, PAGE_READONLY: PROT_READ, PAGE_READWRITE: PROT_READ | PROT_WRITE,
         PAGE_EXECUTE: PROT_EXEC, PAGE_EXECUTE_READ: PROT_EXEC | PROT_READ,
         PAGE_EXECUTE_READWRITE: PROT_EXEC | PROT_READ | PROT_WRITE}  # fmt: skip


@attrs.define
class Win32State:
    """A process's handle table and region sizes (what wineserver keeps per process)."""

    handles: dict[int, int] = attrs.field(factory=dict)  # handle -> fd
    next_handle: int = 4  # Windows handles are multiples of 4
    regions: dict[int, int] = attrs.field(factory=dict)  # VirtualAlloc base -> size
    last_error: int = 0

    def fork(self) -> Win32State:
        return Win32State(dict(self.handles), self.next_handle, dict(self.regions), self.last_error)


def _state(c: CallCtx) -> Win32State:
    st = c.lm.ext.get("win32")
    if st is None:
        st = c.lm.ext["win32"] = Win32State()
    return st  # type: ignore[no-any-return]


def _fail(c: CallCtx, err: int, value: int = 0) -> int:
    _state(c).last_error = err
    return value


def _errno_fail(c: CallCtx, r: int, value: int = 0) -> int:
    return _fail(c, ERRNO_TO_WIN32.get(-r, ERROR_INVALID_PARAMETER), value)


def unix_path(win: str) -> str:
    """``C:\\dir\\file`` -> ``/dir/file`` under DRIVE_C; forward slashes are accepted too."""
    p = win.replace("\\", "/")
    if len(p) >= 2 and p[1] == ":" and p[0].upper() == "C":
        p = p[2:]
    root = DRIVE_C.rstrip("/")
    return root + ("/" + p.lstrip("/"))


def _fd_of(c: CallCtx, handle: int) -> int | None:
    h = handle & 0xFFFFFFFF
    if h in (STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE):
        return {STD_INPUT_HANDLE: 0, STD_OUTPUT_HANDLE: 1, STD_ERROR_HANDLE: 2}[h]
    return _state(c).handles.get(h)


def make_kernel32() -> Library:
    lib = Library(
        KERNEL32, cost_key="win32", description="Win32 subset translated to system calls (Wine-like)"
    )
    f = lib.function

    @f("CreateFileA")
    def create_file(
        c: CallCtx,
        name: Any,
        access: int,
        share: int = 0,
        sec: int = 0,
        disposition: int = OPEN_EXISTING,
        flags: int = 0,
        template: int = 0,
    ) -> Gen:
        access &= 0xFFFFFFFF
        rd, wr = bool(access & GENERIC_READ), bool(access & GENERIC_WRITE)
        oflags = O_RDWR if rd and wr else (O_WRONLY if wr else O_RDONLY)
        extra = {CREATE_NEW: O_CREAT | O_EXCL, CREATE_ALWAYS: O_CREAT | O_TRUNC, OPEN_EXISTING: 0,
                 OPEN_ALWAYS: O_CREAT, TRUNCATE_EXISTING: O_TRUNC}.get(disposition)  # fmt: skip
        if extra is None:
            return _fail(c, ERROR_INVALID_PARAMETER, INVALID_HANDLE_VALUE)
        path = unix_path(c.text(name))
        existed = False
        if disposition in (CREATE_ALWAYS, OPEN_ALWAYS):
            st = yield sys.faccessat(AT_FDCWD, path, 0)
            existed = st == 0
        fd = yield sys.openat(AT_FDCWD, path, oflags | extra, 0o644)
        if fd < 0:
            return _errno_fail(c, fd, INVALID_HANDLE_VALUE)
        s = _state(c)
        h = s.next_handle
        s.next_handle += 4
        s.handles[h] = fd
        # CreateFile: "If the specified file exists ... the function succeeds, and the last-error
        # code is set to ERROR_ALREADY_EXISTS" (CREATE_ALWAYS, OPEN_ALWAYS); 0 otherwise.
        s.last_error = ERROR_ALREADY_EXISTS if existed else ERROR_SUCCESS
        return h

    @f("ReadFile")
    def read_file(c: CallCtx, handle: int, buf: Any, n: int, nread: Any = 0, overlapped: int = 0) -> Gen:
        fd = _fd_of(c, handle)
        if fd is None:
            return _fail(c, ERROR_INVALID_HANDLE)
        r = yield sys.read(fd, n)
        if isinstance(r, int):
            return _errno_fail(c, r)
        if r:
            c.write(buf, r)
        _store_dword(c, nread, len(r))
        return 1

    @f("WriteFile")
    def write_file(c: CallCtx, handle: int, buf: Any, n: int, nwritten: Any = 0, overlapped: int = 0) -> Gen:
        fd = _fd_of(c, handle)
        if fd is None:
            return _fail(c, ERROR_INVALID_HANDLE)
        r = yield sys.write(fd, c.read(buf, n))
        if r < 0:
            return _errno_fail(c, r)
        _store_dword(c, nwritten, r)
        return 1

    @f("CloseHandle")
    def close_handle(c: CallCtx, handle: int) -> Gen:
        fd = _state(c).handles.pop(handle & 0xFFFFFFFF, None)
        if fd is None:
            return _fail(c, ERROR_INVALID_HANDLE)
        yield sys.close(fd)
        return 1

    @f("GetStdHandle")
    def get_std_handle(c: CallCtx, which: int) -> int:
        w = which & 0xFFFFFFFF
        if w not in (STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE):
            return _fail(c, ERROR_INVALID_HANDLE, INVALID_HANDLE_VALUE)
        return w  # the pseudo-handle itself stands for the fd

    @f("GetCurrentProcessId")
    def get_pid(c: CallCtx) -> Gen:
        return (yield sys.getpid())

    @f("ExitProcess")
    def exit_process(c: CallCtx, code: int) -> Gen:
        yield sys.exit_group(int(code) & 0xFF)
        return 0

    @f("Sleep")
    def sleep(c: CallCtx, ms: int) -> Gen:
        yield sys.nanosleep((ms & 0xFFFFFFFF) * 1_000_000)
        return None

    @f("GetTickCount")
    def get_tick_count(c: CallCtx) -> Gen:
        ns = yield sys.clock_gettime(7)  # CLOCK_BOOTTIME: milliseconds since the system started
        return (ns // 1_000_000) & 0xFFFFFFFF

    @f("VirtualAlloc")
    def virtual_alloc(c: CallCtx, addr: int, size: int, alloc_type: int, protect: int) -> Gen:
        prot = _PROT.get(protect)
        if prot is None or size == 0 or not alloc_type & (MEM_COMMIT | MEM_RESERVE):
            return _fail(c, ERROR_INVALID_PARAMETER)
        length = (size + 0xFFF) & ~0xFFF
        flags = MAP_PRIVATE | MAP_ANONYMOUS | (MAP_FIXED if addr else 0)
        r = yield sys.mmap(addr, length, prot, flags, -1, 0)
        r &= 0xFFFFFFFF
        if r >= 0xFFFFF000:
            return _fail(c, ERROR_NOT_ENOUGH_MEMORY)
        _state(c).regions[r] = length
        return r

    @f("VirtualFree")
    def virtual_free(c: CallCtx, addr: int, size: int, free_type: int) -> Gen:
        s = _state(c)
        if free_type == MEM_RELEASE:
            length = s.regions.get(addr)
            if size != 0 or length is None:  # MEM_RELEASE needs dwSize 0 and the base address
                return _fail(c, ERROR_INVALID_PARAMETER)
            del s.regions[addr]
        elif free_type == MEM_DECOMMIT:
            length = (size + 0xFFF) & ~0xFFF
        else:
            return _fail(c, ERROR_INVALID_PARAMETER)
        r = yield sys.munmap(addr, length)
        return 1 if r == 0 else _errno_fail(c, r)

    @f("GetLastError")
    def get_last_error(c: CallCtx) -> int:
        return _state(c).last_error

    @f("SetLastError")
    def set_last_error(c: CallCtx, err: int) -> None:
        _state(c).last_error = err

    return lib


def _store_dword(c: CallCtx, where: Any, value: int) -> None:
    if isinstance(where, list):
        where[:] = [value]
    elif where:
        c.write(where, struct.pack("<I", value & 0xFFFFFFFF))
