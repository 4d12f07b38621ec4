"""Fixtures for the VFS tests: a kernel VFS with a tmpfs root in an initial mount namespace."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from virtlevels.graph import ResourceGraph
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import KernelError
from virtlevels.kernel.vfs import FsContext, MountNamespace, Vfs
from virtlevels.kernel.vfs.constants import O_CREAT, O_RDONLY, O_TRUNC, O_WRONLY


class Clock:
    """Simulated nanoseconds that advance by 1000 on every reading."""

    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        self.t += 1000
        return self.t


@attrs.define
class Box:
    """One kernel's VFS with a tmpfs "/" and a root-owned context in the initial namespace."""

    vfs: Vfs
    ns: MountNamespace
    fs: FsContext
    graph: ResourceGraph

    def errno(self, fn: Callable[..., object], *args: object, **kw: object) -> int:
        with pytest.raises(KernelError) as ei:
            fn(*args, **kw)
        return ei.value.errno

    def write(self, path: str, data: bytes, creds: Credentials | None = None, fs: FsContext | None = None,
              mode: int = 0o644) -> None:
        f = self.vfs.openat(fs or self.fs, creds or ROOT, path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        assert self.vfs.write(f, data) == len(data)
        f.put()

    def read(self, path: str, creds: Credentials | None = None, fs: FsContext | None = None) -> bytes:
        f = self.vfs.openat(fs or self.fs, creds or ROOT, path, O_RDONLY)
        out = self.vfs.read(f, 1 << 20)
        f.put()
        return out

    def mkdirs(self, *paths: str, mode: int = 0o755, fs: FsContext | None = None) -> None:
        for p in paths:
            self.vfs.mkdirat(fs or self.fs, ROOT, p, mode)

    def ls(self, path: str, fs: FsContext | None = None) -> list[str]:
        from virtlevels.kernel.vfs.constants import O_DIRECTORY
        from virtlevels.kernel.vfs.stat import parse_dirents64

        f = self.vfs.openat(fs or self.fs, ROOT, path, O_RDONLY | O_DIRECTORY)
        names = [n for _i, _o, _t, n in parse_dirents64(self.vfs.getdents64(f, 1 << 16))]
        f.put()
        return sorted(n for n in names if n not in (".", ".."))


ROOT = Credentials.root()
USER = Credentials.user(1000, 1000)
OTHER = Credentials.user(2000, 2000)
