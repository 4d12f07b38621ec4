"""Inodes, dentries, superblocks and the filesystem operations interface (include/linux/fs.h).

An :class:`Inode` is a file; a :class:`Dentry` is a name for it in a directory (hard links give
one inode several dentries); a :class:`SuperBlock` is one instance of a filesystem, with its own
inode-number space and device number. Filesystems implement :class:`FileSystem`: *namespace*
operations are called on the filesystem of the directory's dentry (``dentry.sb.fs``), *data*
operations on the filesystem of the inode (``inode.sb.fs``) -- that split is what lets overlayfs
hand out the real (upper or lower) inode for I/O, as overlayfs does with its backing files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.kernel.errno import EINVAL, EISDIR, ENODATA, EOPNOTSUPP, EPERM, KernelError
from virtlevels.kernel.vfs.constants import S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, dtype_of

if TYPE_CHECKING:
    from virtlevels.kernel.vfs.pipe import Pipe

Clock = Callable[[], int]
#: A user namespace, or None for the initial one: anything with ``parent`` and ``owner`` as
#: caps.UserNamespaceLike describes (Any, so read-only ``parent`` properties are accepted too).
UserNs = Any


def encode_dev(major: int, minor: int) -> int:
    """A dev_t as struct stat holds it (include/linux/kdev_t.h, new_encode_dev)."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def decode_dev(dev: int) -> tuple[int, int]:
    """(major, minor) of a dev_t encoded by :func:`encode_dev` (new_decode_dev)."""
    return (dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)


@attrs.define(eq=False, repr=False)
class Inode:
    """A file: type and permission bits, owner (kernel ids), link count, times (ns), payload."""

    sb: SuperBlock
    ino: int
    mode: int
    uid: int = 0
    gid: int = 0
    nlink: int = 1
    rdev: int = 0
    atime: int = 0
    mtime: int = 0
    ctime: int = 0
    #: Regular-file bytes (tmpfs); None for filesystems that produce content on read.
    data: bytearray | None = None
    #: Symlink target.
    target: str = ""
    xattrs: dict[str, bytes] = attrs.field(factory=dict)
    #: Reported size when there is no ``data`` (directories: tmpfs counts 20 bytes per entry).
    isize: int = 0
    #: Filesystem-private state (the synthetic node for SyntheticFS).
    private: Any = None
    #: The pipe behind a FIFO, made on first open (fs/pipe.c, fifo_open).
    pipe: Pipe | None = None
    #: Open file descriptions referring to this inode (an unlinked file lives while open).
    open_count: int = 0

    @property
    def ftype(self) -> int:
        return self.mode & S_IFMT

    @property
    def is_dir(self) -> bool:
        return self.mode & S_IFMT == S_IFDIR

    @property
    def is_reg(self) -> bool:
        return self.mode & S_IFMT == S_IFREG

    @property
    def is_symlink(self) -> bool:
        return self.mode & S_IFMT == S_IFLNK

    @property
    def dtype(self) -> int:
        return dtype_of(self.mode)

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if self.is_symlink:
            return len(self.target.encode())
        return self.isize

    def touch(self, *, a: bool = False, m: bool = False, c: bool = False) -> None:
        now = self.sb.clock()
        if a:
            self.atime = now
        if m:
            self.mtime = now
        if c:
            self.ctime = now

    def __repr__(self) -> str:
        return f"<Inode {self.sb.fstype}:{self.ino} mode={self.mode:o}>"


@attrs.define(eq=False, repr=False)
class Dentry:
    """A name in a directory. The root dentry is its own parent, as in Linux."""

    name: str
    inode: Inode
    sb: SuperBlock
    parent: Dentry | None = None
    #: Child dentries (authoritative for tmpfs, a cache for overlay and synthetic filesystems).
    children: dict[str, Dentry] = attrs.field(factory=dict)
    fsdata: Any = None
    #: Removed from its directory (d_unhashed): getcwd reports ENOENT, lookups cannot reach it.
    unlinked: bool = False
    #: How many mounts sit on this dentry, over all namespaces (d_mountpoint; rmdir -> EBUSY).
    mount_count: int = 0

    def __attrs_post_init__(self) -> None:
        if self.parent is None:
            self.parent = self

    @property
    def is_root(self) -> bool:
        return self.parent is self

    def up(self) -> Dentry:
        assert self.parent is not None
        return self.parent

    def is_ancestor_of(self, other: Dentry) -> bool:
        """Whether ``other`` is this dentry or below it (is_subdir)."""
        d = other
        while True:
            if d is self:
                return True
            if d.is_root:
                return False
            d = d.up()

    def __repr__(self) -> str:
        return f"<Dentry {self.name!r} of {self.sb.fstype}:{self.sb.minor}>"


@attrs.define(eq=False, repr=False)
class SuperBlock:
    """One mounted instance of a filesystem: root, device number, inode numbers, owner namespace."""

    fs: FileSystem
    fstype: str
    minor: int
    clock: Clock
    source: str = "none"
    #: The user namespace that mounted it; capability checks on its inodes are made against it.
    user_ns: UserNs = None
    #: Superblock-wide read-only (mount -o remount,ro without MS_BIND).
    ro: bool = False
    major: int = 0
    root: Dentry = attrs.field(default=None)
    next_ino: int = 1
    #: Mounts of this superblock plus filesystems stacked on it (overlayfs layers).
    refs: int = 0
    graph_id: str | None = None
    #: Called when the last reference goes (drops the graph node, releases layers).
    on_release: Callable[[], None] | None = None

    @property
    def dev(self) -> int:
        return encode_dev(self.major, self.minor)

    def alloc_ino(self) -> int:
        ino = self.next_ino
        self.next_ino += 1
        return ino

    def new_inode(self, mode: int, uid: int = 0, gid: int = 0, rdev: int = 0) -> Inode:
        now = self.clock()
        return Inode(self, self.alloc_ino(), mode, uid, gid, 1, rdev, now, now, now)

    def get(self) -> None:
        self.refs += 1

    def put(self) -> None:
        self.refs -= 1
        if self.refs == 0 and self.on_release is not None:
            cb, self.on_release = self.on_release, None
            cb()

    def __repr__(self) -> str:
        return f"<SuperBlock {self.fstype} 0:{self.minor}>"


class FileSystem:
    """Operations a filesystem provides. The VFS has already checked permissions, existence,
    file types and read-only mounts; a filesystem raises only its own errors (ENOSPC, EXDEV...).
    Defaults refuse, so a filesystem implements what it supports."""

    name = "none"

    # -- namespace operations (on the directory's superblock) ----------------------------------
    def lookup(self, dir_: Dentry, name: str, caller: Any = None) -> Dentry | None:
        """The child called ``name``, or None."""
        return dir_.children.get(name)

    def iterate(self, dir_: Dentry, caller: Any = None) -> list[tuple[str, int, int]]:
        """(name, ino, d_type) of each entry except "." and ".."."""
        return [(n, d.inode.ino, d.inode.dtype) for n, d in dir_.children.items()]

    def create(self, dir_: Dentry, name: str, mode: int, uid: int, gid: int, rdev: int = 0) -> Dentry:
        """Make a non-directory, non-symlink node (regular file, FIFO, device: vfs_create/mknod)."""
        raise KernelError(EPERM, f"{self.name} cannot create files")

    def mkdir(self, dir_: Dentry, name: str, mode: int, uid: int, gid: int, caller: Any = None) -> Dentry:
        raise KernelError(EPERM, f"{self.name} cannot create directories")

    def symlink(self, dir_: Dentry, name: str, target: str, uid: int, gid: int) -> Dentry:
        raise KernelError(EPERM, f"{self.name} cannot create symlinks")

    def link(self, old: Dentry, dir_: Dentry, name: str) -> Dentry:
        raise KernelError(EPERM, f"{self.name} cannot create hard links")

    def unlink(self, dir_: Dentry, child: Dentry) -> None:
        raise KernelError(EPERM, f"{self.name} cannot remove files")

    def rmdir(self, dir_: Dentry, child: Dentry, caller: Any = None) -> None:
        raise KernelError(EPERM, f"{self.name} cannot remove directories")

    def is_empty_dir(self, dentry: Dentry) -> bool:
        return not self.iterate(dentry)

    def rename(self, old_dir: Dentry, old: Dentry, new_dir: Dentry, new_name: str, flags: int) -> None:
        """Move ``old`` to ``new_dir/new_name`` (replacing or, with RENAME_EXCHANGE, swapping)."""
        raise KernelError(EPERM, f"{self.name} cannot rename")

    def prepare_write(self, dentry: Dentry) -> Inode:
        """The inode to modify for a change to ``dentry`` (overlayfs copies up here)."""
        return dentry.inode

    def setattr(self, dentry: Dentry, *, mode: int | None = None, uid: int | None = None,
                gid: int | None = None, atime: int | None = None, mtime: int | None = None) -> None:
        inode = self.prepare_write(dentry)
        if mode is not None:
            inode.mode = (inode.mode & S_IFMT) | (mode & 0o7777)
        if uid is not None:
            inode.uid = uid
        if gid is not None:
            inode.gid = gid
        if atime is not None:
            inode.atime = atime
        if mtime is not None:
            inode.mtime = mtime
        inode.touch(c=True)

    def open(self, dentry: Dentry, flags: int) -> Inode:
        """The inode an open file description will use (overlayfs: upper after copy-up)."""
        return dentry.inode

    def file_ops(self, inode: Inode) -> Any:
        """File operations for a regular inode that is not plain data (None: ordinary file)."""
        return None

    # -- data operations (on the inode's superblock) -------------------------------------------
    def read(self, inode: Inode, offset: int, size: int, caller: Any = None) -> bytes:
        if inode.data is None:
            raise KernelError(EINVAL, f"{self.name} has no data for inode {inode.ino}")
        return bytes(inode.data[offset:offset + size])

    def write(self, inode: Inode, offset: int, data: bytes, caller: Any = None) -> int:
        raise KernelError(EINVAL, f"{self.name} cannot write")

    def truncate(self, inode: Inode, size: int) -> None:
        if inode.is_dir:
            raise KernelError(EISDIR)
        raise KernelError(EINVAL, f"{self.name} cannot truncate")

    def readlink(self, inode: Inode, caller: Any = None) -> str:
        return inode.target

    def getxattr(self, dentry: Dentry, name: str) -> bytes:
        try:
            return dentry.inode.xattrs[name]
        except KeyError:
            raise KernelError(ENODATA, name) from None

    def setxattr(self, dentry: Dentry, name: str, value: bytes) -> None:
        raise KernelError(EOPNOTSUPP, f"{self.name} has no xattrs")

    def evict(self, inode: Inode) -> None:
        """The last link and the last open file are gone: free the inode's storage."""

    def show_options(self, sb: SuperBlock) -> str:
        """Filesystem options as /proc/mounts shows them after the mount flags ("" for none)."""
        return ""

    def release(self, sb: SuperBlock) -> None:
        """The superblock's last mount went away."""
