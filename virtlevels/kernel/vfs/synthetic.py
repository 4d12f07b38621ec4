"""Synthetic filesystems: files produced by callables (the pattern of procfs, sysfs, cgroupfs).

A tree of nodes: :class:`SynDir` lists its entries (a dict, or a callable of the caller, so
/proc lists the pids the reader's pid namespace can see), :class:`SynFile` produces its bytes
on read and hands written bytes to a handler, :class:`SynSymlink` computes its target (/proc/self).
``caller`` is whatever the kernel put in ``FsContext.task``. Dentries are kept while a name
exists, so something mounted on a synthetic directory stays put.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from virtlevels.kernel.errno import EINVAL, EPERM, KernelError
from virtlevels.kernel.vfs.constants import S_IFDIR, S_IFLNK, S_IFREG
from virtlevels.kernel.vfs.inode import Dentry, FileSystem, Inode, SuperBlock


@attrs.define(eq=False)
class SynFile:
    """``read(caller) -> bytes``; ``write(caller, data)`` (raise KernelError to refuse)."""

    read: Callable[[Any], bytes] | None = None
    write: Callable[[Any, bytes], object] | None = None
    mode: int = -1
    uid: int = 0
    gid: int = 0

    def __attrs_post_init__(self) -> None:
        if self.mode < 0:
            self.mode = 0o644 if self.write is not None else 0o444


@attrs.define(eq=False)
class SynSymlink:
    """``target`` is what readlink shows. A *magic link* (proc(5): /proc/PID/ns/*, cwd, root,
    fd/N) also has ``magic(caller)``: following it jumps to the returned ``Path``, or, for any
    other object (a namespace), to a file standing for that object (nsfs): its inode number is
    the object's ``inum`` and ``inode.private`` is the object, which setns(2) reads."""

    target: str | Callable[[Any], str]
    uid: int = 0
    gid: int = 0
    mode: int = 0o777
    magic: Callable[[Any], Any] | None = None


@attrs.define(eq=False)
class SynDir:
    """``entries`` is a mapping or ``f(caller) -> mapping``; ``mkdir(caller, name, mode)`` and
    ``rmdir(caller, name)`` let a filesystem accept directory creation (cgroupfs does)."""

    entries: Mapping[str, SynNode] | Callable[[Any], Mapping[str, SynNode]] = attrs.field(factory=dict)
    mode: int = 0o555
    uid: int = 0
    gid: int = 0
    mkdir: Callable[[Any, str, int], object] | None = None
    rmdir: Callable[[Any, str], object] | None = None
    #: ``get(caller, name)``: one entry (or None), so a path walk need not build the whole listing.
    get: Callable[[Any, str], SynNode | None] | None = None

    def list(self, caller: Any) -> Mapping[str, SynNode]:
        e = self.entries
        return e(caller) if callable(e) else e

    def child(self, caller: Any, name: str) -> SynNode | None:
        if self.get is not None:
            return self.get(caller, name)
        return self.list(caller).get(name)


SynNode = SynFile | SynSymlink | SynDir


class MagicObjectOps:
    """An open file on the object behind a magic link (nsfs: a namespace file descriptor).

    It holds a reference on the object while open (an object with ``get()``/``put()``, as a
    namespace), so the namespace outlives its processes while someone may setns(2) to it."""

    seekable = False

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        get = getattr(obj, "get", None)
        if get is not None:
            get()

    def read(self, f: Any, size: int) -> bytes:
        raise KernelError(EINVAL, "this file stands for an object and has no data")

    def write(self, f: Any, data: bytes) -> int:
        raise KernelError(EINVAL, "this file stands for an object and has no data")

    def release(self, f: Any) -> None:
        put = getattr(self.obj, "put", None)
        if put is not None:
            put()


def _type_bits(node: SynNode) -> int:
    if isinstance(node, SynDir):
        return S_IFDIR
    if isinstance(node, SynSymlink):
        return S_IFLNK
    return S_IFREG


class SyntheticFS(FileSystem):
    def __init__(self, root: SynDir, name: str = "synthetic") -> None:
        self.root_node = root
        self.name = name

    def make_root(self, sb: SuperBlock) -> None:
        inode = self._inode(sb, self.root_node)
        sb.root = Dentry("/", inode, sb, fsdata=self.root_node)

    def _inode(self, sb: SuperBlock, node: SynNode) -> Inode:
        inode = sb.new_inode(_type_bits(node) | (node.mode & 0o7777), node.uid, node.gid)
        inode.nlink = 2 if isinstance(node, SynDir) else 1
        inode.private = node
        return inode

    def lookup(self, dir_: Dentry, name: str, caller: Any = None) -> Dentry | None:
        node = dir_.fsdata
        assert isinstance(node, SynDir)
        child = node.child(caller, name)
        cached = dir_.children.get(name)
        if child is None:
            if cached is not None and cached.mount_count == 0:
                cached.unlinked = True
                del dir_.children[name]
            return None
        if cached is not None and type(cached.fsdata) is type(child):
            if cached.fsdata is not child:
                # Same kind of node under the same name: keep the dentry (and anything mounted
                # on it), refresh what it shows.
                cached.fsdata = child
                cached.inode.private = child
                cached.inode.mode = _type_bits(child) | (child.mode & 0o7777)
                cached.inode.uid, cached.inode.gid = child.uid, child.gid
            return cached
        d = Dentry(name, self._inode(dir_.sb, child), dir_.sb, dir_, fsdata=child)
        dir_.children[name] = d
        return d

    def iterate(self, dir_: Dentry, caller: Any = None) -> list[tuple[str, int, int]]:
        node = dir_.fsdata
        assert isinstance(node, SynDir)
        out = []
        for name in list(node.list(caller)):
            d = self.lookup(dir_, name, caller)
            if d is not None:
                out.append((name, d.inode.ino, d.inode.dtype))
        return out

    def mkdir(self, dir_: Dentry, name: str, mode: int, uid: int, gid: int, caller: Any = None) -> Dentry:
        node = dir_.fsdata
        if not isinstance(node, SynDir) or node.mkdir is None:
            raise KernelError(EPERM, f"{self.name}: cannot create directories here")
        node.mkdir(caller, name, mode)  # the caller's credentials decide (cgroup mkdir)
        d = self.lookup(dir_, name, caller)
        if d is None:
            raise KernelError(EPERM, f"{self.name}: mkdir of {name!r} made nothing")
        return d

    def rmdir(self, dir_: Dentry, child: Dentry, caller: Any = None) -> None:
        node = dir_.fsdata
        if not isinstance(node, SynDir) or node.rmdir is None:
            raise KernelError(EPERM, f"{self.name}: cannot remove directories here")
        node.rmdir(caller, child.name)
        dir_.children.pop(child.name, None)
        child.unlinked = True

    def is_empty_dir(self, dentry: Dentry) -> bool:
        # A synthetic directory's files are its interface (cgroup.procs...); subdirectories count.
        node = dentry.fsdata
        assert isinstance(node, SynDir)
        return not any(isinstance(n, SynDir) for n in node.list(None).values())

    def read(self, inode: Inode, offset: int, size: int, caller: Any = None) -> bytes:
        node = inode.private
        if not isinstance(node, SynFile) or node.read is None:
            raise KernelError(EINVAL, f"{self.name}: file is not readable")
        return bytes(node.read(caller))[offset:offset + size]

    def write(self, inode: Inode, offset: int, data: bytes, caller: Any = None) -> int:
        node = inode.private
        if not isinstance(node, SynFile) or node.write is None:
            raise KernelError(EINVAL, f"{self.name}: file is not writable")
        node.write(caller, bytes(data))
        return len(data)

    def truncate(self, inode: Inode, size: int) -> None:
        """O_TRUNC on a control file is accepted and ignored (echo > cgroup.procs works)."""

    def readlink(self, inode: Inode, caller: Any = None) -> str:
        node = inode.private
        assert isinstance(node, SynSymlink)
        t = node.target
        return t(caller) if callable(t) else t

    def file_ops(self, inode: Inode) -> Any:
        """A magic link's object (not a synthetic node) opens as :class:`MagicObjectOps`."""
        node = inode.private
        if isinstance(node, (SynFile, SynSymlink, SynDir)):
            return None
        return MagicObjectOps(node)

    def magic_file(self, link: Dentry, obj: Any) -> Dentry:
        """The dentry a magic link to a non-path object leads to (one per object, kept)."""
        cache: dict[int, Dentry] = self.__dict__.setdefault("_magic", {})
        d = cache.get(id(obj))
        if d is None or d.inode.private is not obj:
            sb = link.sb
            inum = getattr(obj, "inum", None)
            inode = sb.new_inode(S_IFREG | 0o444)
            if isinstance(inum, int):
                inode.ino = inum
            inode.private = obj
            d = Dentry(link.name, inode, sb, link.up())
            d.unlinked = True  # not reachable by name: only through the link
            cache[id(obj)] = d
        return d

    def setattr(self, dentry: Dentry, **_changes: Any) -> None:
        raise KernelError(EPERM, f"{self.name}: attributes are fixed")
