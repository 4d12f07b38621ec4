"""Character devices and a devtmpfs-like /dev (drivers/char/mem.c; null(4), zero(4), full(4)).

A device's behaviour follows its device number, not the filesystem it is named in, so a node
made with mknod in any tmpfs, or bind-mounted elsewhere, is the same device.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from virtlevels.kernel.errno import ENOSPC, KernelError
from virtlevels.kernel.vfs.file import OpenFile


class NullDevice:
    """/dev/null (1,3): reads are end of file, writes vanish; seeks succeed at 0."""

    seekable = True

    def read(self, f: OpenFile, size: int) -> bytes:
        return b""

    def write(self, f: OpenFile, data: bytes) -> int:
        return len(data)

    def release(self, f: OpenFile) -> None:
        pass


class ZeroDevice(NullDevice):
    """/dev/zero (1,5): reads give zero bytes, writes vanish."""

    def read(self, f: OpenFile, size: int) -> bytes:
        return bytes(size)


class FullDevice(ZeroDevice):
    """/dev/full (1,7): reads give zeros, every write fails with ENOSPC."""

    def write(self, f: OpenFile, data: bytes) -> int:
        raise KernelError(ENOSPC, "/dev/full")


@attrs.define(eq=False)
class ConsoleDevice:
    """/dev/console (5,1): writes go to a sink (the machine's UART, a test list); reads see end
    of file (no terminal input is modelled)."""

    sink: Callable[[bytes], object]
    seekable = False

    def read(self, f: OpenFile, size: int) -> bytes:
        return b""

    def write(self, f: OpenFile, data: bytes) -> int:
        self.sink(bytes(data))
        return len(data)

    def release(self, f: OpenFile) -> None:
        pass


#: (name, major, minor, mode) of the nodes devtmpfs shows (Documentation/admin-guide/devices.txt).
STANDARD_NODES: tuple[tuple[str, int, int, int], ...] = (
    ("null", 1, 3, 0o666),
    ("zero", 1, 5, 0o666),
    ("full", 1, 7, 0o666),
    ("console", 5, 1, 0o600),
)
#: Symlinks a container's /dev has (OCI runtime-spec config-linux.md "Default Devices" / runc).
STANDARD_LINKS: tuple[tuple[str, str], ...] = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)
