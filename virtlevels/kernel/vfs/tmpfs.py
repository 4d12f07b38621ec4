"""tmpfs: a filesystem held in memory (mm/shmem.c; Documentation/filesystems/tmpfs.rst).

The dentry tree *is* the directory structure (as with Linux's dcache-backed ramfs/tmpfs). File
bytes are counted in pages: ``size=`` limits them (ENOSPC past it) and an optional ``charge``
callable is told every change in page count (the memory cgroup charges tmpfs pages to the
writer's cgroup; a charge that fails raises and leaves the file unchanged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from virtlevels.kernel.errno import ENOSPC, KernelError
from virtlevels.kernel.vfs.constants import (
    PAGE_SIZE,
    RENAME_EXCHANGE,
    S_IFDIR,
    S_IFLNK,
    S_IFMT,
    s_isreg,
)
from virtlevels.kernel.vfs.inode import Dentry, FileSystem, Inode, SuperBlock

#: tmpfs reports a directory's size as 20 bytes per entry (mm/shmem.c, BOGO_DIRENT_SIZE).
BOGO_DIRENT_SIZE = 20


def pages_for(nbytes: int) -> int:
    return (nbytes + PAGE_SIZE - 1) // PAGE_SIZE


class TmpFS(FileSystem):
    """One tmpfs instance (one superblock)."""

    name = "tmpfs"

    def __init__(self, size_limit: int | None = None, charge: Callable[[int], object] | None = None,
                 mode: int = 0o1777) -> None:
        #: Byte limit (rounded up to pages, as shmem does); None means unlimited.
        self.size_limit = size_limit
        self.limit_pages = None if size_limit is None else pages_for(size_limit)
        self.charge = charge
        self.root_mode = mode
        self.used_pages = 0
        self.sb: SuperBlock | None = None

    # -- page accounting -------------------------------------------------------------------------
    def _account(self, delta: int) -> None:
        if delta > 0 and self.limit_pages is not None and self.used_pages + delta > self.limit_pages:
            raise KernelError(ENOSPC, "tmpfs size limit reached")
        if delta and self.charge is not None:
            self.charge(delta)  # may raise (memory cgroup over its limit): nothing changed yet
        self.used_pages += delta

    def _resize(self, inode: Inode, new_size: int) -> None:
        assert inode.data is not None
        old = len(inode.data)
        self._account(pages_for(new_size) - pages_for(old))
        if new_size < old:
            del inode.data[new_size:]
        else:
            inode.data.extend(bytes(new_size - old))

    # -- building ----------------------------------------------------------------------------------
    def _add(self, dir_: Dentry, name: str, inode: Inode) -> Dentry:
        d = Dentry(name, inode, dir_.sb, dir_)
        dir_.children[name] = d
        dir_.inode.isize += BOGO_DIRENT_SIZE
        dir_.inode.touch(m=True, c=True)
        return d

    def _drop(self, dir_: Dentry, child: Dentry) -> None:
        del dir_.children[child.name]
        child.unlinked = True
        dir_.inode.isize -= BOGO_DIRENT_SIZE
        dir_.inode.touch(m=True, c=True)

    def create(self, dir_: Dentry, name: str, mode: int, uid: int, gid: int, rdev: int = 0) -> Dentry:
        inode = dir_.sb.new_inode(mode, uid, gid, rdev)
        if s_isreg(mode):
            inode.data = bytearray()
        return self._add(dir_, name, inode)

    def mkdir(self, dir_: Dentry, name: str, mode: int, uid: int, gid: int, caller: Any = None) -> Dentry:
        inode = dir_.sb.new_inode(S_IFDIR | (mode & 0o7777), uid, gid)
        inode.nlink = 2
        dir_.inode.nlink += 1  # the child's ".."
        return self._add(dir_, name, inode)

    def symlink(self, dir_: Dentry, name: str, target: str, uid: int, gid: int) -> Dentry:
        inode = dir_.sb.new_inode(S_IFLNK | 0o777, uid, gid)
        inode.target = target
        return self._add(dir_, name, inode)

    def link(self, old: Dentry, dir_: Dentry, name: str) -> Dentry:
        old.inode.nlink += 1
        old.inode.touch(c=True)
        return self._add(dir_, name, old.inode)

    def unlink(self, dir_: Dentry, child: Dentry) -> None:
        self._drop(dir_, child)
        child.inode.nlink -= 1
        child.inode.touch(c=True)
        self.maybe_evict(child.inode)

    def rmdir(self, dir_: Dentry, child: Dentry, caller: Any = None) -> None:
        self._drop(dir_, child)
        child.inode.nlink = 0
        dir_.inode.nlink -= 1

    def rename(self, old_dir: Dentry, old: Dentry, new_dir: Dentry, new_name: str, flags: int) -> None:
        target = new_dir.children.get(new_name)
        if flags & RENAME_EXCHANGE:
            assert target is not None
            old_name = old.name
            old_dir.children[old_name] = target
            new_dir.children[new_name] = old
            target.name, target.parent = old_name, old_dir
            old.name, old.parent = new_name, new_dir
            if old.inode.is_dir != target.inode.is_dir and old_dir is not new_dir:
                delta = 1 if old.inode.is_dir else -1
                new_dir.inode.nlink += delta
                old_dir.inode.nlink -= delta
            for d in {id(old_dir): old_dir, id(new_dir): new_dir}.values():
                d.inode.touch(m=True, c=True)
            return
        if target is not None:
            if target.inode.is_dir:
                self.rmdir(new_dir, target)
            else:
                self.unlink(new_dir, target)
        del old_dir.children[old.name]
        old_dir.inode.isize -= BOGO_DIRENT_SIZE
        old.name, old.parent = new_name, new_dir
        new_dir.children[new_name] = old
        new_dir.inode.isize += BOGO_DIRENT_SIZE
        if old.inode.is_dir and old_dir is not new_dir:
            old_dir.inode.nlink -= 1
            new_dir.inode.nlink += 1
        old_dir.inode.touch(m=True, c=True)
        new_dir.inode.touch(m=True, c=True)
        old.inode.touch(c=True)

    # -- data ----------------------------------------------------------------------------------------
    def write(self, inode: Inode, offset: int, data: bytes, caller: Any = None) -> int:
        assert inode.data is not None
        end = offset + len(data)
        if self.limit_pages is not None:
            # A write that runs past the limit is short; one that cannot store a byte is ENOSPC.
            have = pages_for(len(inode.data))
            room = (have + self.limit_pages - self.used_pages) * PAGE_SIZE
            if end > room:
                if offset >= room:
                    raise KernelError(ENOSPC, "tmpfs size limit reached")
                data = data[: room - offset]
                end = room
        if end > len(inode.data):
            self._resize(inode, end)
        inode.data[offset:end] = data
        inode.touch(m=True, c=True)
        return len(data)

    def truncate(self, inode: Inode, size: int) -> None:
        if inode.data is None:
            super().truncate(inode, size)
        self._resize(inode, size)
        inode.touch(m=True, c=True)

    def setxattr(self, dentry: Dentry, name: str, value: bytes) -> None:
        dentry.inode.xattrs[name] = bytes(value)
        dentry.inode.touch(c=True)

    def maybe_evict(self, inode: Inode) -> None:
        if inode.nlink <= 0 and inode.open_count <= 0:
            self.evict(inode)

    def evict(self, inode: Inode) -> None:
        if inode.data is not None and inode.sb.fs is self:
            self._account(-pages_for(len(inode.data)))
            inode.data = bytearray()

    def show_options(self, sb: SuperBlock) -> str:
        opts = []
        if self.limit_pages is not None:
            opts.append(f"size={self.limit_pages * PAGE_SIZE // 1024}k")
        mode = sb.root.inode.mode & 0o7777
        if mode != 0o1777:
            opts.append(f"mode={mode:o}")
        if sb.root.inode.uid:
            opts.append(f"uid={sb.root.inode.uid}")
        if sb.root.inode.gid:
            opts.append(f"gid={sb.root.inode.gid}")
        return ",".join(opts)


def make_tmpfs_sb(sb_factory: Callable[[FileSystem, str], SuperBlock], *, size_limit: int | None = None,
                  charge: Callable[[int], object] | None = None, mode: int = 0o1777, uid: int = 0,
                  gid: int = 0, fstype: str = "tmpfs") -> SuperBlock:
    """A fresh tmpfs superblock with its root directory."""
    fs = TmpFS(size_limit, charge, mode)
    sb = sb_factory(fs, fstype)
    fs.sb = sb
    root = sb.new_inode(S_IFDIR | (mode & 0o7777 & ~S_IFMT), uid, gid)
    root.nlink = 2
    sb.root = Dentry("/", root, sb)
    return sb
