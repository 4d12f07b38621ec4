"""Images and root filesystems: host directories and tar archives unpacked into the simulated VFS.

A layer is a host directory or a tar archive (read with the standard library's ``tarfile``); an
image is a list of layers, bottom first, that the engine stacks with overlayfs
(``lowerdir=top:...:bottom``). Unpacking is done by a scripted process (``unpack``) issuing
mkdirat/openat/write/symlinkat, as containerd's unpacker does with real system calls; its cost is
charged like any process's. ``busybox`` is the built-in image (see :mod:`.busybox`).

Not supported in layers (reported, not skipped): overlay whiteouts (``.wh.NAME``) and opaque
markers (``.wh..wh..opq``) need mknodat(2)/setxattr(2), which the kernel does not offer; device
nodes; hard links (their content is copied instead).
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels.kernel import scripted as sys
from virtlevels.kernel.errno import EEXIST
from virtlevels.kernel.vfs.constants import AT_FDCWD, O_CLOEXEC, O_CREAT, O_TRUNC, O_WRONLY
from virtlevels_containers.busybox import busybox_files

Gen = Generator[Any, Any, Any]


@attrs.frozen
class Entry:
    """One file of a layer: relative path, kind ("dir", "file", "symlink"), mode, data or link target."""

    path: str
    kind: str
    mode: int = 0o644
    data: bytes = b""


def _check_name(source: str, rel: str) -> None:
    base = rel.rsplit("/", 1)[-1]
    if base.startswith(".wh."):
        raise ConfigError(
            f"{source}: {rel}: overlay whiteouts in layers are not supported "
            "(the kernel has no mknodat/setxattr)"
        )


def entries_from_dir(root: Path) -> Iterator[Entry]:
    """The files under a host directory, parents first, in sorted (deterministic) order."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        names = sorted(dirnames + filenames)
        for name in names:
            full = os.path.join(dirpath, name)
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            _check_name(str(root), rel)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                yield Entry(rel, "symlink", 0o777, os.readlink(full).encode())
            elif stat.S_ISDIR(st.st_mode):
                yield Entry(rel, "dir", stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                yield Entry(rel, "file", stat.S_IMODE(st.st_mode), Path(full).read_bytes())
            else:
                raise ConfigError(f"{root}: {rel}: special files are not supported in layers")


def entries_from_tar(path: Path) -> Iterator[Entry]:
    """The members of a tar archive (any compression tarfile reads), in archive order."""
    try:
        archive = tarfile.open(path)
    except (tarfile.TarError, OSError) as exc:
        raise ConfigError(f"{path}: not a readable tar archive: {exc}") from None
    with archive:
        for m in archive.getmembers():
            rel = os.path.normpath(m.name).lstrip("/")
            if rel in (".", "") or rel.startswith(".."):
                continue
            _check_name(str(path), rel)
            if m.isdir():
                yield Entry(rel, "dir", m.mode & 0o7777)
            elif m.issym():
                yield Entry(rel, "symlink", 0o777, m.linkname.encode())
            elif m.isfile() or m.islnk():
                f = archive.extractfile(m)
                yield Entry(rel, "file", m.mode & 0o7777, f.read() if f is not None else b"")
            else:
                raise ConfigError(f"{path}: {m.name}: device and fifo members are not supported")


def entries_from(source: str | Path) -> list[Entry]:
    p = Path(source)
    if p.is_dir():
        return list(entries_from_dir(p))
    if p.is_file():
        return list(entries_from_tar(p))
    raise ConfigError(f"{source}: no such layer (a directory or a tar archive)")


def busybox_entries() -> list[Entry]:
    out = []
    for rel, data in sorted(busybox_files().items()):
        if rel.endswith("/"):
            out.append(Entry(rel.rstrip("/"), "dir", 0o755))
        else:
            out.append(Entry(rel, "file", 0o755 if rel.startswith("bin/") else 0o644, data))
    return out


def unpack(dest: str, entries: list[Entry], result: list[str]) -> Gen:
    """Scripted program: create ``entries`` under ``dest`` (made if missing). Errors go to ``result``."""
    yield sys.umask(0)
    cur = ""
    for part in [p for p in dest.split("/") if p]:
        cur += "/" + part
        r = yield sys.mkdirat(AT_FDCWD, cur, 0o755)
        if r < 0 and r != -EEXIST:
            result.append(f"mkdir {cur}: errno {-r}")
            return 1
    for e in entries:
        target = f"{dest}/{e.path}"
        if e.kind == "dir":
            r = yield sys.mkdirat(AT_FDCWD, target, e.mode)
            r = 0 if r == -EEXIST else r
        elif e.kind == "symlink":
            r = yield sys.symlinkat(e.data.decode(), AT_FDCWD, target)
        else:
            fd = yield sys.openat(AT_FDCWD, target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, e.mode)
            r = fd
            if fd >= 0:
                r = yield sys.write(fd, e.data) if e.data else sys.sched_yield()
                yield sys.close(fd)
        if isinstance(r, int) and r < 0:
            result.append(f"{e.path}: errno {-r}")
            return 1
    return 0
