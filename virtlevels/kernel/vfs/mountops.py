"""mount(2), umount2(2), pivot_root(2) and unshare(CLONE_NEWNS) (fs/namespace.c path_mount,
do_loopback, do_change_type, do_move_mount, do_new_mount, do_umount, pivot_root, copy_mnt_ns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.kernel.caps import CAP_SYS_ADMIN
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import (
    EBUSY,
    EINVAL,
    ELOOP,
    ENODEV,
    ENOENT,
    ENOTDIR,
    EPERM,
    EROFS,
    KernelError,
)
from virtlevels.kernel.vfs import perm
from virtlevels.kernel.vfs.constants import (
    MNT_DETACH,
    MNT_EXPIRE,
    MNT_FORCE,
    MS_BIND,
    MS_MNT_FLAGS,
    MS_MOVE,
    MS_NOATIME,
    MS_NODIRATIME,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_PROPAGATION,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_UNBINDABLE,
    UMOUNT_NOFOLLOW,
)
from virtlevels.kernel.vfs.fscontext import FsContext
from virtlevels.kernel.vfs.inode import SuperBlock
from virtlevels.kernel.vfs.mount import (
    Mount,
    MountNamespace,
    Path,
    bind_propagation,
    copy_tree,
    detach,
    graft,
    new_mount,
    propagated_victims,
    reachable,
    rehang,
    set_propagation,
    umount_tree,
)
from virtlevels.kernel.vfs.namei import Walker, follow_mounts
from virtlevels.kernel.vfs.overlay import OverlayFS

if TYPE_CHECKING:
    from virtlevels.kernel.vfs.ops import Vfs

#: make(vfs, fs, creds, source, options) -> (superblock, the superblocks it is stacked on).
SbFactory = Callable[["Vfs", FsContext, Credentials, str, dict[str, str]],
                     tuple[SuperBlock, tuple[SuperBlock, ...]]]

#: MS_MGC_VAL in the top 16 bits is a pre-2.4 magic number, ignored (path_mount).
_MS_MGC_MSK = 0xFFFF0000
_MS_MGC_VAL = 0xC0ED0000
_ATIME = MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME
_LOCKABLE = MS_RDONLY | 2 | 4 | 8  # ro, nosuid, nodev, noexec


@attrs.frozen
class FsType:
    make: SbFactory
    #: FS_USERNS_MOUNT: may be mounted by a task whose user namespace is not the initial one.
    userns_mount: bool = False


def parse_options(data: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (data or "").split(","):
        if item:
            key, _eq, value = item.partition("=")
            out[key] = value
    return out


def _parse_size(text: str) -> int:
    """tmpfs size=: bytes with an optional k/m/g suffix (Documentation/filesystems/tmpfs.rst)."""
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:].lower(), 1)
    digits = text[:-1] if mult != 1 else text
    if not digits.isdigit():
        raise KernelError(EINVAL, f"tmpfs: bad size {text!r}")
    return int(digits) * mult


def _make_tmpfs(vfs: Vfs, fs: FsContext, creds: Credentials, source: str, opts: dict[str, str]
                ) -> tuple[SuperBlock, tuple[SuperBlock, ...]]:
    known = {"size", "mode", "uid", "gid", "nr_inodes", "inode64"}
    for k in opts:
        if k not in known:
            raise KernelError(EINVAL, f"tmpfs: unknown option {k!r}")
    try:
        mode = int(opts.get("mode", "1777"), 8)
        uid = int(opts.get("uid", "0"))
        gid = int(opts.get("gid", "0"))
    except ValueError:
        raise KernelError(EINVAL, f"tmpfs: bad option in {opts}") from None
    size = _parse_size(opts["size"]) if opts.get("size") else None
    sb = vfs.new_tmpfs(size=size, mode=mode, uid=uid, gid=gid, source=source or "tmpfs",
                       user_ns=creds.user_ns)
    return sb, ()


def _make_devtmpfs(vfs: Vfs, fs: FsContext, creds: Credentials, source: str, opts: dict[str, str]
                   ) -> tuple[SuperBlock, tuple[SuperBlock, ...]]:
    return vfs.new_devfs(user_ns=creds.user_ns), ()


def _make_overlay(vfs: Vfs, fs: FsContext, creds: Credentials, source: str, opts: dict[str, str]
                  ) -> tuple[SuperBlock, tuple[SuperBlock, ...]]:
    """overlayfs.rst "Multiple lower layers": lowerdir=top:...:bottom, upperdir and workdir together."""
    lowerdir = opts.get("lowerdir")
    if not lowerdir:
        raise KernelError(EINVAL, "overlay: missing 'lowerdir'")
    upperdir, workdir = opts.get("upperdir"), opts.get("workdir")
    if bool(upperdir) != bool(workdir):
        raise KernelError(EINVAL, "overlay: upperdir and workdir go together")
    w = Walker(fs, creds)

    def layer(path: str) -> Path:
        p = w.resolve(path)
        if not p.dentry.inode.is_dir:
            raise KernelError(ENOTDIR, f"overlay: {path!r} is not a directory")
        return p

    lowers = [layer(p) for p in lowerdir.split(":") if p]
    if not lowers:
        raise KernelError(EINVAL, "overlay: empty lowerdir")
    upper = work = None
    if upperdir and workdir:
        upper, work = layer(upperdir), layer(workdir)
        if upper.mnt.readonly:
            raise KernelError(EROFS, "overlay: upper layer is read-only")
        if upper.dentry.sb is not work.dentry.sb:
            raise KernelError(EINVAL, "overlay: workdir and upperdir must be on the same filesystem")
        if upper.dentry.is_ancestor_of(work.dentry) or work.dentry.is_ancestor_of(upper.dentry):
            raise KernelError(EINVAL, "overlay: workdir and upperdir must be separate subtrees")
    work_dentry = None
    if work is not None:
        # The kernel keeps its scratch space in workdir/work, emptied at mount time.
        wfs = work.dentry.sb.fs
        old = wfs.lookup(work.dentry, "work")
        if old is not None:
            if old.inode.is_dir:
                for name, _i, _t in list(wfs.iterate(old)):
                    child = wfs.lookup(old, name)
                    if child is not None:
                        (wfs.rmdir if child.inode.is_dir else wfs.unlink)(old, child)
                work_dentry = old
            else:
                wfs.unlink(work.dentry, old)
        if work_dentry is None:
            work_dentry = wfs.mkdir(work.dentry, "work", 0o000, 0, 0)
    options = "lowerdir=" + lowerdir
    if upperdir and workdir:
        options += f",upperdir={upperdir},workdir={workdir}"
    ofs = OverlayFS([p.dentry for p in lowers], upper.dentry if upper else None, work_dentry, options)
    sb = vfs.core.new_sb(ofs, "overlay", source=source or "overlay", user_ns=creds.user_ns)
    sb.ro = upper is None  # no upper layer: a read-only overlay (EROFS on every change)
    ofs.make_root(sb)
    layers = tuple(dict.fromkeys(p.dentry.sb for p in [*lowers, *([upper] if upper else [])]))
    for s in layers:
        vfs.core.register_sb(s)
        s.get()  # released with the overlay superblock (VfsCore._release_sb)
    return sb, layers


BUILTIN_FS_TYPES: dict[str, FsType] = {
    "tmpfs": FsType(_make_tmpfs, True),
    "devtmpfs": FsType(_make_devtmpfs, False),
    "overlay": FsType(_make_overlay, True),
}


# -- helpers ----------------------------------------------------------------------------------------
def _ns_of(fs: FsContext) -> MountNamespace:
    if fs.ns is None:
        raise KernelError(EINVAL, "caller has no mount namespace")
    return fs.ns


def _may_mount(creds: Credentials, ns: MountNamespace) -> None:
    """may_mount: CAP_SYS_ADMIN in the user namespace owning the mount namespace."""
    if not perm.capable_in(creds, ns.user_ns, CAP_SYS_ADMIN):
        raise KernelError(EPERM, "mounting needs CAP_SYS_ADMIN over the mount namespace")


def _check_mnt(m: Mount, ns: MountNamespace) -> None:
    if m.ns is not ns:
        raise KernelError(EINVAL, "mount is not in the caller's mount namespace")


def _mount_root(p: Path) -> None:
    if p.dentry is not p.mnt.root:
        raise KernelError(EINVAL, "not a mount point")


def _check_dir_match(tree: Mount, target: Path) -> None:
    """graft_tree: a directory goes on a directory, a file on a file."""
    if target.dentry.inode.is_dir != tree.root.inode.is_dir:
        raise KernelError(ENOTDIR, "mount source and target differ in being directories")
    if target.dentry.unlinked:
        raise KernelError(ENOENT, "mount point was removed")


def unshare(vfs: Vfs, fs: FsContext, creds: Credentials, user_ns: Any) -> MountNamespace:
    ns = _ns_of(fs)
    if not perm.capable_in(creds, creds.user_ns, CAP_SYS_ADMIN):
        raise KernelError(EPERM, "unshare(CLONE_NEWNS) needs CAP_SYS_ADMIN")
    owner = ns.user_ns if user_ns is None else user_ns
    new, mapping = ns.clone(less_privileged=owner is not ns.user_ns, user_ns=owner)
    fs.translate(mapping, new)
    return new


# -- mount(2) --------------------------------------------------------------------------------------
def do_mount(vfs: Vfs, fs: FsContext, creds: Credentials, source: str | None, target: str,
             fstype: str | None, flags: int, data: str | None) -> None:
    ns = _ns_of(fs)
    if flags & _MS_MGC_MSK == _MS_MGC_VAL:
        flags &= ~_MS_MGC_MSK
    flags &= ~MS_SILENT
    tp = Walker(fs, creds).resolve(target)
    _may_mount(creds, ns)
    if flags & MS_REMOUNT:
        _remount(tp, ns, flags)
    elif flags & MS_BIND:
        _bind(fs, creds, ns, source or "", tp, bool(flags & MS_REC))
    elif flags & MS_PROPAGATION:
        _change_type(ns, tp, flags)
    elif flags & MS_MOVE:
        _move(fs, creds, ns, source or "", tp)
    else:
        _new_mount(vfs, fs, creds, ns, source or "none", tp, fstype, flags, data)


def _mnt_flags(flags: int) -> int:
    out = flags & (MS_MNT_FLAGS | MS_NOSYMFOLLOW)
    out |= flags & (MS_NOATIME | MS_NODIRATIME)
    if not flags & (MS_NOATIME | MS_STRICTATIME):
        out |= MS_RELATIME  # the default since Linux 2.6.30
    return out


def _remount(tp: Path, ns: MountNamespace, flags: int) -> None:
    """MS_REMOUNT (superblock and mount flags) or MS_REMOUNT|MS_BIND (mount flags only)."""
    m = tp.mnt
    _check_mnt(m, ns)
    _mount_root(tp)
    new = _mnt_flags(flags)
    # mount_namespaces(7): locked flags of a mount from a more privileged namespace stay set.
    if m.locked_flags & ~new & _LOCKABLE:
        raise KernelError(EPERM, "cannot clear flags locked by a more privileged namespace")
    if not flags & MS_BIND:
        m.sb.ro = bool(flags & MS_RDONLY)
    m.flags = new


def _bind(fs: FsContext, creds: Credentials, ns: MountNamespace, source: str, tp: Path,
          recursive: bool) -> None:
    """do_loopback: show a subtree again at another place."""
    sp = Walker(fs, creds).resolve(source)
    _check_mnt(tp.mnt, ns)
    old = sp.mnt
    if old.unbindable:
        raise KernelError(EINVAL, "source mount is unbindable")
    if old.ns is not ns:
        raise KernelError(EINVAL, "bind source is in another mount namespace")
    if not recursive and any(c.locked and sp.dentry.is_ancestor_of(mp) for mp, c in old.children.items()):
        raise KernelError(EINVAL, "non-recursive bind would reveal what locked mounts cover")
    if sp.dentry.inode.is_dir != tp.dentry.inode.is_dir:
        raise KernelError(ENOTDIR, "bind source and target differ in being directories")
    tree, mapping = copy_tree(old, sp.dentry, recursive=recursive)
    tree.locked, tree.locked_flags = False, old.locked_flags
    bind_propagation(mapping)
    try:
        _check_dir_match(tree, tp)
    except KernelError:
        umount_tree(tree)
        raise
    graft(tree, tp.mnt, tp.dentry)


_KINDS = {MS_SHARED: "shared", MS_PRIVATE: "private", MS_SLAVE: "slave", MS_UNBINDABLE: "unbindable"}


def _change_type(ns: MountNamespace, tp: Path, flags: int) -> None:
    """do_change_type: exactly one of MS_SHARED/PRIVATE/SLAVE/UNBINDABLE, optionally with MS_REC."""
    m = tp.mnt
    _check_mnt(m, ns)
    _mount_root(tp)
    kind_bits = flags & MS_PROPAGATION
    if flags & ~(MS_PROPAGATION | MS_REC) or kind_bits & (kind_bits - 1):
        raise KernelError(EINVAL, "exactly one propagation type, optionally with MS_REC")
    kind = _KINDS[kind_bits]
    for x in (list(m.subtree()) if flags & MS_REC else [m]):
        set_propagation(x, kind)


def _move(fs: FsContext, creds: Credentials, ns: MountNamespace, source: str, tp: Path) -> None:
    """do_move_mount: detach a mount (with its subtree) and attach it elsewhere."""
    sp = Walker(fs, creds).resolve(source)
    old = sp.mnt
    _check_mnt(old, ns)
    _check_mnt(tp.mnt, ns)
    _mount_root(sp)
    if old.parent is None:
        raise KernelError(EINVAL, "cannot move the namespace root")
    if old.locked:
        raise KernelError(EINVAL, "mount is locked")
    if old.parent.shared:
        raise KernelError(EINVAL, "cannot move a mount from under a shared mount")
    if tp.mnt.shared and any(x.unbindable for x in old.subtree()):
        raise KernelError(EINVAL, "cannot move unbindable mounts under a shared mount")
    p: Mount | None = tp.mnt
    while p is not None:
        if p is old:
            raise KernelError(ELOOP, "cannot move a mount beneath itself")
        p = p.parent
    _check_dir_match(old, tp)
    order = {id(x): i for i, x in enumerate(ns.mounts)}
    detach(old)
    graft(old, tp.mnt, tp.dentry)
    ns.mounts.sort(key=lambda x: order.get(id(x), len(order)))


def _new_mount(vfs: Vfs, fs: FsContext, creds: Credentials, ns: MountNamespace, source: str, tp: Path,
               fstype: str | None, flags: int, data: str | None) -> None:
    if not fstype:
        raise KernelError(EINVAL, "no filesystem type")
    kind = vfs.fs_types.get(fstype)
    if kind is None:
        raise KernelError(ENODEV, f"unknown filesystem type {fstype!r}")
    if not perm._is_initial(creds.user_ns) and not kind.userns_mount:
        raise KernelError(EPERM, f"{fstype} cannot be mounted from a user namespace")
    _check_mnt(tp.mnt, ns)
    if not tp.dentry.inode.is_dir:
        raise KernelError(ENOTDIR, "mount point is not a directory")
    if tp.dentry.unlinked:
        raise KernelError(ENOENT, "mount point was removed")
    sb, layers = kind.make(vfs, fs, creds, source, parse_options(data))
    if flags & MS_RDONLY:
        sb.ro = True
    m = new_mount(vfs.core, sb, None, _mnt_flags(flags), layers)
    graft(m, tp.mnt, tp.dentry)


# -- umount2(2) ------------------------------------------------------------------------------------
def do_umount(vfs: Vfs, fs: FsContext, creds: Credentials, target: str, flags: int) -> None:
    if flags & ~(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW):
        raise KernelError(EINVAL, f"umount2 flags {flags:#x}")
    if flags & MNT_EXPIRE and flags & (MNT_FORCE | MNT_DETACH):
        raise KernelError(EINVAL, "MNT_EXPIRE with MNT_FORCE or MNT_DETACH")
    ns = _ns_of(fs)
    # LOOKUP_MOUNTPOINT: the last component leads into whatever is mounted there, even ".".
    p = follow_mounts(Walker(fs, creds).resolve(target, follow=not flags & UMOUNT_NOFOLLOW))
    _may_mount(creds, ns)
    m = p.mnt
    _mount_root(p)
    _check_mnt(m, ns)
    if m.locked:
        raise KernelError(EINVAL, "mount is locked by a more privileged namespace")
    if m.parent is None:
        raise KernelError(EINVAL, "cannot unmount the namespace root")
    victims = propagated_victims(m)
    if not flags & MNT_DETACH:
        # propagate_mount_busy: the mount and its propagated copies must be unused and childless.
        if m.children or m.users > 0 or any(v.users > 0 for v in victims):
            raise KernelError(EBUSY, "mount is busy")
    umount_tree(m)
    for v in victims:
        if v.parent is not None:
            umount_tree(v)


# -- pivot_root(2) ---------------------------------------------------------------------------------
def do_pivot_root(vfs: Vfs, fs: FsContext, creds: Credentials, new_root: str, put_old: str,
                  others: Iterable[FsContext]) -> None:
    """pivot_root(2): the EINVAL/EBUSY rules checked in the kernel's order."""
    ns = _ns_of(fs)
    _may_mount(creds, ns)
    w = Walker(fs, creds)
    new = w.resolve(new_root)
    if not new.dentry.inode.is_dir:
        raise KernelError(ENOTDIR, "new_root is not a directory")
    old = follow_mounts(w.resolve(put_old))
    if not old.dentry.inode.is_dir:
        raise KernelError(ENOTDIR, "put_old is not a directory")
    root = fs.root
    new_mnt, root_mnt, old_mnt = new.mnt, root.mnt, old.mnt
    ex_parent, root_parent = new_mnt.parent, root_mnt.parent
    if old_mnt.shared or (ex_parent is not None and ex_parent.shared) or (
            root_parent is not None and root_parent.shared):
        raise KernelError(EINVAL, "pivot_root: a mount involved is shared")
    if root_mnt.ns is not ns or new_mnt.ns is not ns:
        raise KernelError(EINVAL, "pivot_root: mounts not in the caller's namespace")
    if new_mnt.locked:
        raise KernelError(EINVAL, "pivot_root: new_root is locked")
    if new.dentry.unlinked:
        raise KernelError(ENOENT, "pivot_root: new_root was removed")
    if new_mnt is root_mnt or old_mnt is root_mnt:
        raise KernelError(EBUSY, "pivot_root: new_root or put_old is on the current root mount")
    if root.dentry is not root_mnt.root or root_parent is None:
        raise KernelError(EINVAL, "pivot_root: the current root is not a mount point")
    if new.dentry is not new_mnt.root or ex_parent is None:
        raise KernelError(EINVAL, "pivot_root: new_root is not a mount point")
    if not reachable(old_mnt, old.dentry, new_mnt, new.dentry):
        raise KernelError(EINVAL, "pivot_root: put_old is not at or under new_root")
    if not reachable(new_mnt, new.dentry, root_mnt, root.dentry):
        raise KernelError(EINVAL, "pivot_root: new_root is not under the current root")
    root_mp = root_mnt.mountpoint
    if new_mnt.locked or root_mnt.locked:
        new_mnt.locked, root_mnt.locked = root_mnt.locked, new_mnt.locked
    rehang(new_mnt, None, None)
    rehang(root_mnt, None, None)
    rehang(root_mnt, old_mnt, old.dentry)  # the old root goes on put_old
    rehang(new_mnt, root_parent, root_mp)  # the new root takes the old root's place
    target = Path(new_mnt, new_mnt.root)
    for ctx in (fs, *others):
        if ctx.root == root:
            ctx.set_root(target)
        if ctx.cwd == root:
            ctx.set_cwd(target)
