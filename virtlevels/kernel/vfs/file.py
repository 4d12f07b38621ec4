"""Open file descriptions and the file descriptor table (include/linux/fs.h struct file,
fs/file.c; open(2), dup(2), fcntl(2)).

An :class:`OpenFile` is a file description: offset, status flags and the object behind it; it
is shared by dup'ed descriptors and across fork. An :class:`FdTable` maps small integers to
descriptions with a close-on-exec bit each.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from virtlevels.kernel.errno import EBADF, EINVAL, EISDIR, EMFILE, ESPIPE, KernelError
from virtlevels.kernel.vfs.constants import (
    AT_FDCWD,
    O_ACCMODE,
    O_APPEND,
    O_CLOEXEC,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    SEEK_CUR,
    SEEK_END,
    SEEK_SET,
)
from virtlevels.kernel.vfs.inode import Inode
from virtlevels.kernel.vfs.mount import Path
from virtlevels.kernel.vfs.pipe import Pipe


class FileOps(Protocol):
    """What an open file does with read/write/seek (struct file_operations, the parts modelled)."""

    seekable: bool

    def read(self, f: OpenFile, size: int) -> bytes: ...

    def write(self, f: OpenFile, data: bytes) -> int: ...

    def release(self, f: OpenFile) -> None: ...


class RegularOps:
    """Files whose bytes a filesystem holds or generates (tmpfs data, synthetic files)."""

    seekable = True

    def read(self, f: OpenFile, size: int) -> bytes:
        inode = f.inode
        out = inode.sb.fs.read(inode, f.pos, size, f.caller)
        f.pos += len(out)
        return out

    def write(self, f: OpenFile, data: bytes) -> int:
        inode = f.inode
        if f.flags & O_APPEND:
            f.pos = inode.size  # open(2) O_APPEND: every write goes to the end
        n = inode.sb.fs.write(inode, f.pos, data, f.caller)
        f.pos += n
        return n

    def release(self, f: OpenFile) -> None:
        pass


class DirOps:
    seekable = True

    def read(self, f: OpenFile, size: int) -> bytes:
        raise KernelError(EISDIR, "read on a directory")

    def write(self, f: OpenFile, data: bytes) -> int:
        raise KernelError(EISDIR, "write on a directory")

    def release(self, f: OpenFile) -> None:
        pass


@attrs.define(eq=False)
class PipeOps:
    """One end (or both, for a FIFO opened O_RDWR) of a pipe."""

    pipe: Pipe
    seekable = False

    def read(self, f: OpenFile, size: int) -> bytes:
        return self.pipe.read(size, bool(f.flags & O_NONBLOCK), f.fifo_wait)

    def write(self, f: OpenFile, data: bytes) -> int:
        return self.pipe.write(data, bool(f.flags & O_NONBLOCK))

    def release(self, f: OpenFile) -> None:
        self.pipe.close_end(f.readable, f.writable)


@attrs.define(eq=False, repr=False)
class OpenFile:
    """A file description (struct file)."""

    inode: Inode
    ops: Any  # FileOps
    #: Access mode and status flags as given to open (O_CLOEXEC lives in the fd table).
    flags: int
    path: Path | None = None
    pos: int = 0
    refs: int = 1
    #: The opener, passed to synthetic files (procfs answers relative to it).
    caller: Any = None
    #: For a FIFO reader that opened before any writer: the writer count it waits to see change.
    fifo_wait: int | None = None
    released: bool = False

    @property
    def readable(self) -> bool:
        return self.flags & O_ACCMODE in (O_RDONLY, O_RDWR)

    @property
    def writable(self) -> bool:
        return self.flags & O_ACCMODE in (O_WRONLY, O_RDWR)

    @property
    def seekable(self) -> bool:
        return bool(self.ops.seekable)

    def get(self) -> OpenFile:
        self.refs += 1
        return self

    def put(self) -> None:
        """Drop one reference; the last one releases the description (fput -> __fput)."""
        self.refs -= 1
        if self.refs == 0 and not self.released:
            self.released = True
            self.ops.release(self)
            inode = self.inode
            inode.open_count -= 1
            if inode.nlink <= 0 and inode.open_count <= 0:
                inode.sb.fs.evict(inode)
            if self.path is not None:
                self.path.mnt.put()

    def lseek(self, offset: int, whence: int) -> int:
        """lseek(2): ESPIPE on pipes; EINVAL for a bad whence or a negative result."""
        if not self.ops.seekable:
            raise KernelError(ESPIPE, "lseek on a pipe")
        if whence == SEEK_SET:
            new = offset
        elif whence == SEEK_CUR:
            new = self.pos + offset
        elif whence == SEEK_END:
            if self.inode.is_dir:
                raise KernelError(EINVAL, "SEEK_END on a directory")
            new = self.inode.size + offset
        else:
            raise KernelError(EINVAL, f"whence {whence}")
        if new < 0:
            raise KernelError(EINVAL, "negative file offset")
        self.pos = new
        return new

    def __repr__(self) -> str:
        return f"<OpenFile {self.inode!r} flags={self.flags:o} pos={self.pos}>"


@attrs.define(eq=False)
class FdTable:
    """A process's descriptor table (struct files_struct). ``max_fds`` is RLIMIT_NOFILE."""

    max_fds: int = 1024
    fds: dict[int, OpenFile] = attrs.field(factory=dict)
    cloexec: set[int] = attrs.field(factory=set)

    def _lowest_free(self, minfd: int) -> int:
        fd = minfd
        while fd in self.fds:
            fd += 1
        if fd >= self.max_fds:
            raise KernelError(EMFILE, f"no descriptor below RLIMIT_NOFILE={self.max_fds}")
        return fd

    def install(self, f: OpenFile, cloexec: bool = False, minfd: int = 0) -> int:
        """Give ``f`` (and the reference the caller holds) the lowest free descriptor >= minfd."""
        fd = self._lowest_free(minfd)
        self.fds[fd] = f
        if cloexec:
            self.cloexec.add(fd)
        return fd

    def get(self, fd: int) -> OpenFile:
        try:
            return self.fds[fd]
        except KeyError:
            raise KernelError(EBADF, f"fd {fd}") from None

    def dirfd(self, fd: int, path: str = "") -> OpenFile | None:
        """The description a *at() call's dirfd names; None for AT_FDCWD or an absolute path
        (where dirfd is ignored, even if invalid)."""
        if path.startswith("/") or fd == AT_FDCWD:
            return None
        return self.get(fd)

    def close(self, fd: int) -> None:
        f = self.get(fd)
        del self.fds[fd]
        self.cloexec.discard(fd)
        f.put()

    def dup(self, fd: int) -> int:
        """dup(2): the lowest free descriptor, sharing the description, close-on-exec clear."""
        f = self.get(fd)
        new = self._lowest_free(0)
        self.fds[new] = f.get()
        return new

    def dup2(self, old: int, new: int) -> int:
        f = self.get(old)
        if old == new:
            return new
        return self._replace(f, new, False)

    def dup3(self, old: int, new: int, flags: int) -> int:
        """dup3(2): EINVAL for old == new or flags other than O_CLOEXEC."""
        if flags & ~O_CLOEXEC:
            raise KernelError(EINVAL, f"dup3 flags {flags:#o}")
        if old == new:
            raise KernelError(EINVAL, "dup3 with oldfd == newfd")
        f = self.get(old)
        return self._replace(f, new, bool(flags & O_CLOEXEC))

    def _replace(self, f: OpenFile, new: int, cloexec: bool) -> int:
        if new < 0 or new >= self.max_fds:
            raise KernelError(EBADF, f"fd {new} outside RLIMIT_NOFILE")
        f.get()
        if new in self.fds:
            self.close(new)  # dup2(2): the old file is closed silently
        self.fds[new] = f
        if cloexec:
            self.cloexec.add(new)
        return new

    def dupfd(self, fd: int, minfd: int, cloexec: bool = False) -> int:
        """fcntl F_DUPFD / F_DUPFD_CLOEXEC: the lowest free descriptor >= minfd."""
        f = self.get(fd)
        if minfd < 0 or minfd >= self.max_fds:
            raise KernelError(EINVAL, f"F_DUPFD minimum {minfd}")
        new = self._lowest_free(minfd)
        self.fds[new] = f.get()
        if cloexec:
            self.cloexec.add(new)
        return new

    def get_cloexec(self, fd: int) -> bool:
        self.get(fd)
        return fd in self.cloexec

    def set_cloexec(self, fd: int, on: bool) -> None:
        self.get(fd)
        if on:
            self.cloexec.add(fd)
        else:
            self.cloexec.discard(fd)

    def fork(self) -> FdTable:
        """dup_fd: a new table whose descriptors share the parent's descriptions."""
        for f in self.fds.values():
            f.get()
        return FdTable(self.max_fds, dict(self.fds), set(self.cloexec))

    def exec(self) -> None:
        """execve(2): close every close-on-exec descriptor."""
        for fd in sorted(self.cloexec):
            if fd in self.fds:
                self.close(fd)
        self.cloexec.clear()

    def close_all(self) -> None:
        for fd in sorted(self.fds):
            self.close(fd)
