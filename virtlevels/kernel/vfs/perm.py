"""Permission checks (fs/namei.c generic_permission, fs/attr.c; path_resolution(7) "Permissions").

Capabilities that override file permissions are asked relative to the user namespace of the
inode's superblock (``None`` stands for the initial user namespace).
"""

from __future__ import annotations

from virtlevels.kernel.caps import (
    CAP_CHOWN,
    CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH,
    CAP_FOWNER,
    CAP_FSETID,
    ns_capable,
)
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EACCES, EPERM, KernelError
from virtlevels.kernel.vfs.constants import MAY_EXEC, MAY_READ, MAY_WRITE, S_ISGID, S_ISUID, S_ISVTX
from virtlevels.kernel.vfs.inode import Inode, UserNs


def _is_initial(ns: UserNs) -> bool:
    return ns is None or ns.parent is None


def capable_in(creds: Credentials, user_ns: UserNs, cap: int) -> bool:
    """ns_capable that also accepts ``None`` (the initial user namespace) on either side."""
    mine = creds.user_ns
    if user_ns is not None and mine is not None:
        return ns_capable(creds, user_ns, cap)  # type: ignore[arg-type]
    # user_namespaces(7): a task has C in N if it holds C and lives in N or an ancestor of N, or
    # it lives in N's parent and owns N. The initial namespace is every namespace's ancestor.
    ns = user_ns
    while True:
        if ns is mine or (_is_initial(ns) and _is_initial(mine)):
            return bool(creds.cap_effective >> cap & 1)
        if ns is None or ns.parent is None:
            return False
        if (ns.parent is mine or (_is_initial(ns.parent) and _is_initial(mine))) and ns.owner == creds.euid:
            return True
        ns = ns.parent


def in_group(creds: Credentials, gid: int) -> bool:
    return gid == creds.fsgid or gid in creds.groups


def permission(creds: Credentials, inode: Inode, mask: int) -> bool:
    """Whether ``creds`` may access ``inode`` for ``mask`` (MAY_READ|MAY_WRITE|MAY_EXEC)."""
    mode = inode.mode
    # generic_permission / acl_permission_check: owner class, else group class, else other.
    if creds.fsuid == inode.uid:
        bits = mode >> 6
    elif in_group(creds, inode.gid):
        bits = mode >> 3
    else:
        bits = mode
    if mask & ~bits & 7 == 0:
        return True
    ns = inode.sb.user_ns
    if inode.is_dir:
        # Directories: CAP_DAC_READ_SEARCH grants read and search; CAP_DAC_OVERRIDE everything.
        if not mask & MAY_WRITE and capable_in(creds, ns, CAP_DAC_READ_SEARCH):
            return True
        return capable_in(creds, ns, CAP_DAC_OVERRIDE)
    if mask & ~MAY_READ & 7 == 0 and capable_in(creds, ns, CAP_DAC_READ_SEARCH):
        return True
    # capabilities(7): CAP_DAC_OVERRIDE gives execute only if some execute bit is set.
    if mask & MAY_EXEC and not mode & 0o111:
        return False
    return capable_in(creds, ns, CAP_DAC_OVERRIDE)


def check(creds: Credentials, inode: Inode, mask: int, what: str = "") -> None:
    if not permission(creds, inode, mask):
        raise KernelError(EACCES, what or f"inode {inode.ino}")


def is_owner_or_cap(creds: Credentials, inode: Inode) -> bool:
    """inode_owner_or_capable: the owner, or CAP_FOWNER over the inode's namespace."""
    return creds.fsuid == inode.uid or capable_in(creds, inode.sb.user_ns, CAP_FOWNER)


def may_delete_sticky(creds: Credentials, dir_: Inode, victim: Inode) -> bool:
    """check_sticky: in a sticky directory only the file's or directory's owner may remove it."""
    if not dir_.mode & S_ISVTX:
        return True
    if creds.fsuid in (victim.uid, dir_.uid):
        return True
    return capable_in(creds, victim.sb.user_ns, CAP_FOWNER)


def chmod_mode(creds: Credentials, inode: Inode, mode: int) -> int:
    """The mode chmod(2) stores, or EPERM: the owner or CAP_FOWNER may chmod; setgid is dropped
    unless the caller is in the file's group or has CAP_FSETID (inode_init_owner/setattr_prepare)."""
    if not is_owner_or_cap(creds, inode):
        raise KernelError(EPERM, "chmod: not the owner")
    mode &= 0o7777
    if mode & S_ISGID and not in_group(creds, inode.gid) and not capable_in(creds, inode.sb.user_ns,
                                                                             CAP_FSETID):
        mode &= ~S_ISGID
    return mode


def chown_allowed(creds: Credentials, inode: Inode, uid: int | None, gid: int | None) -> None:
    """chown(2): changing the owner needs CAP_CHOWN; the owner may change the group to one of
    their groups; anything else needs CAP_CHOWN (fs/attr.c chown_ok/chgrp_ok)."""
    ns = inode.sb.user_ns
    if uid is not None and uid != inode.uid and not capable_in(creds, ns, CAP_CHOWN):
        raise KernelError(EPERM, "chown: changing the owner needs CAP_CHOWN")
    if gid is not None and gid != inode.gid:
        owner_ok = creds.fsuid == inode.uid and (uid is None or uid == inode.uid) and in_group(creds, gid)
        if not owner_ok and not capable_in(creds, ns, CAP_CHOWN):
            raise KernelError(EPERM, "chown: not permitted to change the group")


def chown_clears(inode: Inode) -> int:
    """Mode bits after a chown of a regular file: setuid and (group-executable) setgid go."""
    mode = inode.mode
    if inode.is_reg:
        mode &= ~S_ISUID
        if mode & 0o010:
            mode &= ~S_ISGID
    return mode & 0o7777


__all__ = [
    "MAY_EXEC", "MAY_READ", "MAY_WRITE", "capable_in", "check", "chmod_mode", "chown_allowed",
    "chown_clears", "in_group", "is_owner_or_cap", "may_delete_sticky", "permission",
]  # fmt: skip
