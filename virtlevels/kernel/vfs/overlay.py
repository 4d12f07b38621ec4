"""overlayfs (Documentation/filesystems/overlayfs.rst).

A merged view of one optional writable *upper* directory over read-only *lower* directories
(``lowerdir=top:...:bottom``). An overlay dentry's inode is the real inode of its topmost layer;
its :class:`OvlEntry` remembers the upper and lower dentries behind it. Changes go to the upper
layer only: a lower file is *copied up* first (built in ``workdir`` and renamed into place, as
the kernel does), deleting a lower name leaves a *whiteout* (a 0/0 character device), and a
directory made where a lower one was hidden is *opaque* (``trusted.overlay.opaque=y``).
Without ``redirect_dir``, renaming a directory that has lower layers is EXDEV ("Renaming
directories"), which tools answer by copying.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.kernel.errno import EROFS, EXDEV, KernelError
from virtlevels.kernel.vfs.constants import (
    O_ACCMODE,
    O_RDONLY,
    O_TRUNC,
    OVL_OPAQUE_XATTR,
    RENAME_EXCHANGE,
    S_IFCHR,
    S_IFMT,
)
from virtlevels.kernel.vfs.inode import Dentry, FileSystem, Inode, SuperBlock


@attrs.define(eq=False)
class OvlEntry:
    upper: Dentry | None
    #: Lower dentries, topmost first: several only for a merged directory.
    lowers: list[Dentry] = attrs.field(factory=list)
    opaque: bool = False


def is_whiteout(inode: Inode) -> bool:
    """overlayfs.rst "whiteouts and opaque directories": a character device with 0/0 number."""
    return inode.mode & S_IFMT == S_IFCHR and inode.rdev == 0


def _is_opaque(d: Dentry) -> bool:
    return d.inode.is_dir and d.inode.xattrs.get(OVL_OPAQUE_XATTR) == b"y"


def _fs(d: Dentry) -> FileSystem:
    return d.sb.fs


class OverlayFS(FileSystem):
    name = "overlay"

    def __init__(self, lowers: list[Dentry], upper: Dentry | None, work: Dentry | None,
                 options: str) -> None:
        self.lowers = lowers
        self.upper = upper
        #: ``workdir/work``: where copies are built before they are renamed into the upper layer.
        self.work = work
        self.options = options
        self._tmp = 0

    def make_root(self, sb: SuperBlock) -> None:
        top = self.upper if self.upper is not None else self.lowers[0]
        sb.root = Dentry("/", top.inode, sb, fsdata=OvlEntry(self.upper, list(self.lowers)))

    # -- lookup and listing ---------------------------------------------------------------------
    def lookup(self, dir_: Dentry, name: str, caller: Any = None) -> Dentry | None:
        cached = dir_.children.get(name)
        if cached is not None:
            return cached
        e: OvlEntry = dir_.fsdata
        upper: Dentry | None = None
        opaque = False
        if e.upper is not None:
            u = _fs(e.upper).lookup(e.upper, name)
            if u is not None:
                if is_whiteout(u.inode):
                    return None
                upper = u
                opaque = _is_opaque(u)
        lowers: list[Dentry] = []
        if not e.opaque and (upper is None or (upper.inode.is_dir and not opaque)):
            for ld in e.lowers:
                low = _fs(ld).lookup(ld, name)
                if low is None:
                    continue
                if is_whiteout(low.inode):
                    break
                have_dir = upper is not None or bool(lowers)
                if have_dir and not low.inode.is_dir:
                    break  # a non-directory below a directory is hidden by it
                lowers.append(low)
                if not low.inode.is_dir or _is_opaque(low):
                    break
        if upper is None and not lowers:
            return None
        top = upper if upper is not None else lowers[0]
        d = Dentry(name, top.inode, dir_.sb, dir_, fsdata=OvlEntry(upper, lowers, opaque))
        dir_.children[name] = d
        return d

    def _layers(self, e: OvlEntry) -> list[Dentry]:
        return ([e.upper] if e.upper is not None else []) + ([] if e.opaque else e.lowers)

    def iterate(self, dir_: Dentry, caller: Any = None) -> list[tuple[str, int, int]]:
        """The merged listing: upper names, then lower names not already seen or whited out."""
        e: OvlEntry = dir_.fsdata
        seen: set[str] = set()
        out = []
        for layer in self._layers(e):
            for name, _ino, _t in _fs(layer).iterate(layer):
                if name in seen:
                    continue
                seen.add(name)
                d = self.lookup(dir_, name)
                if d is not None:
                    out.append((name, d.inode.ino, d.inode.dtype))
            if layer is not e.upper and _is_opaque(layer):
                break
        return out

    def _lower_has(self, dir_: Dentry, name: str) -> bool:
        """Whether a lower layer shows ``name`` under this directory (so a removal needs a whiteout)."""
        e: OvlEntry = dir_.fsdata
        if e.opaque:
            return False
        for ld in e.lowers:
            low = _fs(ld).lookup(ld, name)
            if low is not None:
                return not is_whiteout(low.inode)
            if _is_opaque(ld):
                return False
        return False

    # -- copy-up ---------------------------------------------------------------------------------
    def _need_upper(self) -> tuple[Dentry, Dentry]:
        if self.upper is None or self.work is None:
            raise KernelError(EROFS, "overlay has no upper layer")
        return self.upper, self.work

    def copy_up(self, d: Dentry) -> Dentry:
        """The upper dentry for ``d``, copying it (and its parents) up first (ovl_copy_up)."""
        e: OvlEntry = d.fsdata
        if e.upper is not None:
            return e.upper
        _upper, work = self._need_upper()
        parent_upper = self.copy_up(d.up())
        src = e.lowers[0]
        inode = src.inode
        ufs = _fs(work)
        self._tmp += 1
        tmp = f"#{self._tmp:x}"
        if inode.is_dir:
            new = ufs.mkdir(work, tmp, inode.mode, inode.uid, inode.gid)
        elif inode.is_symlink:
            new = ufs.symlink(work, tmp, _fs(src).readlink(inode), inode.uid, inode.gid)
        else:
            new = ufs.create(work, tmp, inode.mode, inode.uid, inode.gid, inode.rdev)
            if inode.is_reg:
                try:
                    data = inode.sb.fs.read(inode, 0, inode.size)
                    if data:
                        new.inode.sb.fs.write(new.inode, 0, data)
                except KernelError:
                    ufs.unlink(work, new)  # ENOSPC etc.: no half-made copy is left behind
                    raise
        for k, v in inode.xattrs.items():
            if not k.startswith("trusted.overlay."):
                new.inode.xattrs[k] = v
        new.inode.mode = inode.mode
        new.inode.atime, new.inode.mtime = inode.atime, inode.mtime
        ufs.rename(work, new, parent_upper, d.name, 0)
        e.upper = new
        d.inode = new.inode
        return new

    def prepare_write(self, dentry: Dentry) -> Inode:
        return self.copy_up(dentry).inode

    def open(self, dentry: Dentry, flags: int) -> Inode:
        # overlayfs.rst "Non-directories": opening a lower file for write copies it up.
        if flags & O_ACCMODE != O_RDONLY or flags & O_TRUNC:
            return self.copy_up(dentry).inode
        return dentry.inode

    # -- namespace changes ---------------------------------------------------------------------------
    def _clear_whiteout(self, pu: Dentry, name: str) -> bool:
        old = _fs(pu).lookup(pu, name)
        if old is not None and is_whiteout(old.inode):
            _fs(pu).unlink(pu, old)
            return True
        return False

    def _new(self, dir_: Dentry, name: str, upper: Dentry, opaque: bool = False) -> Dentry:
        d = Dentry(name, upper.inode, dir_.sb, dir_, fsdata=OvlEntry(upper, [], opaque))
        dir_.children[name] = d
        return d

    def create(self, dir_: Dentry, name: str, mode: int, uid: int, gid: int, rdev: int = 0) -> Dentry:
        self._need_upper()
        pu = self.copy_up(dir_)
        self._clear_whiteout(pu, name)
        return self._new(dir_, name, _fs(pu).create(pu, name, mode, uid, gid, rdev))

    def mkdir(self, dir_: Dentry, name: str, mode: int, uid: int, gid: int, caller: Any = None) -> Dentry:
        self._need_upper()
        pu = self.copy_up(dir_)
        hid_lower = self._clear_whiteout(pu, name) or self._lower_has(dir_, name)
        new = _fs(pu).mkdir(pu, name, mode, uid, gid)
        if hid_lower:
            # overlayfs.rst: a directory created where a lower one was removed is opaque.
            _fs(new).setxattr(new, OVL_OPAQUE_XATTR, b"y")
        return self._new(dir_, name, new, hid_lower)

    def symlink(self, dir_: Dentry, name: str, target: str, uid: int, gid: int) -> Dentry:
        self._need_upper()
        pu = self.copy_up(dir_)
        self._clear_whiteout(pu, name)
        return self._new(dir_, name, _fs(pu).symlink(pu, name, target, uid, gid))

    def link(self, old: Dentry, dir_: Dentry, name: str) -> Dentry:
        self._need_upper()
        ou = self.copy_up(old)
        pu = self.copy_up(dir_)
        self._clear_whiteout(pu, name)
        return self._new(dir_, name, _fs(pu).link(ou, pu, name))

    def _whiteout(self, pu: Dentry, name: str) -> None:
        _fs(pu).create(pu, name, S_IFCHR, 0, 0, 0)

    def _purge_whiteouts(self, upper_dir: Dentry) -> None:
        fs = _fs(upper_dir)
        for name, _i, _t in fs.iterate(upper_dir):
            d = fs.lookup(upper_dir, name)
            if d is not None and is_whiteout(d.inode):
                fs.unlink(upper_dir, d)

    def _remove(self, dir_: Dentry, child: Dentry) -> None:
        self._need_upper()
        e: OvlEntry = child.fsdata
        pu = self.copy_up(dir_)
        needs_whiteout = self._lower_has(dir_, child.name)
        if e.upper is not None:
            if e.upper.inode.is_dir:
                self._purge_whiteouts(e.upper)
                _fs(pu).rmdir(pu, e.upper)
            else:
                _fs(pu).unlink(pu, e.upper)
        if needs_whiteout:
            self._whiteout(pu, child.name)
        dir_.children.pop(child.name, None)
        child.unlinked = True

    def unlink(self, dir_: Dentry, child: Dentry) -> None:
        self._remove(dir_, child)

    def rmdir(self, dir_: Dentry, child: Dentry, caller: Any = None) -> None:
        self._remove(dir_, child)

    def rename(self, old_dir: Dentry, old: Dentry, new_dir: Dentry, new_name: str, flags: int) -> None:
        self._need_upper()
        target = self.lookup(new_dir, new_name)
        for d in (old, target):
            if d is not None and d.inode.is_dir and d.fsdata.lowers and (d is old or flags & RENAME_EXCHANGE):
                raise KernelError(EXDEV, "overlay: renaming a directory with lower layers needs redirect_dir")
        old_name = old.name
        ou = self.copy_up(old)
        po, pn = self.copy_up(old_dir), self.copy_up(new_dir)
        if flags & RENAME_EXCHANGE:
            assert target is not None
            tu = self.copy_up(target)
            _fs(po).rename(po, ou, pn, new_name, RENAME_EXCHANGE)
            old_dir.children[old_name], new_dir.children[new_name] = target, old
            target.name, target.parent = old_name, old_dir
            old.name, old.parent = new_name, new_dir
            _ = tu
            return
        hides_lower = self._lower_has(new_dir, new_name)
        if target is not None:
            te: OvlEntry = target.fsdata
            if te.upper is not None and te.upper.inode.is_dir:
                self._purge_whiteouts(te.upper)
            new_dir.children.pop(new_name, None)
            target.unlinked = True
        leave_whiteout = self._lower_has(old_dir, old_name)
        _fs(po).rename(po, ou, pn, new_name, 0)  # replaces an upper target or whiteout
        if leave_whiteout:
            self._whiteout(po, old_name)  # RENAME_WHITEOUT
        opaque = False
        if ou.inode.is_dir and hides_lower:
            _fs(ou).setxattr(ou, OVL_OPAQUE_XATTR, b"y")
            opaque = True
        old_dir.children.pop(old_name, None)
        old.name, old.parent = new_name, new_dir
        old.fsdata = OvlEntry(ou, [], opaque)
        new_dir.children[new_name] = old

    def setxattr(self, dentry: Dentry, name: str, value: bytes) -> None:
        u = self.copy_up(dentry)
        _fs(u).setxattr(u, name, value)

    def show_options(self, sb: SuperBlock) -> str:
        return self.options
