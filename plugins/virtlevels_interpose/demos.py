"""Demo programs for ``virtlevels interpose run``: scripted programs that use the C library and
the Win32 layer, installed in /bin of a fresh kernel."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from virtlevels_interpose.linker import libcall as lc
from virtlevels_interpose.linker import linked
from virtlevels_interpose.win32 import CREATE_ALWAYS, GENERIC_WRITE, KERNEL32, STD_OUTPUT_HANDLE

Gen = Generator[Any, Any, Any]


def hello() -> Gen:
    """printf, getpid, getuid, time, malloc/free."""
    pid = yield from lc.getpid()
    uid = yield from lc.getuid()
    now = yield from lc.time(0)
    p = yield from lc.malloc(64)
    yield from lc.printf("hello from pid %d, uid %d, time %d, malloc -> %p\n", pid, uid, now, p)
    yield from lc.free(p)
    return 0


@linked(needed=[KERNEL32])
def win32_hello() -> Gen:
    """Written against the Win32 subset: GetStdHandle/WriteFile/CreateFileA/CloseHandle."""
    out = yield from lc.GetStdHandle(STD_OUTPUT_HANDLE)
    msg = b"hello from kernel32\r\n"
    yield from lc.WriteFile(out, msg, len(msg), 0, 0)
    h = yield from lc.CreateFileA("C:\\tmp\\out.txt", GENERIC_WRITE, 0, 0, CREATE_ALWAYS, 0, 0)
    yield from lc.WriteFile(h, b"data", 4, 0, 0)
    yield from lc.CloseHandle(h)
    pid = yield from lc.GetCurrentProcessId()
    yield from lc.ExitProcess(pid & 0)
    return 0


DEMOS = {"hello": hello, "win32-hello": win32_hello}
