"""NsProxy: the set of namespaces a task points to, and how clone/unshare/setns change it.

kernel/nsproxy.c. A task's namespaces live in an NsProxy shared by tasks that have the same set;
clone(2) and unshare(2) with CLONE_NEW* flags give the task a copy with new namespaces
(:func:`copy_namespaces`), setns(2) one with a namespace replaced (:func:`setns`).

Unlike Linux, the NsProxy also holds the task's *user* namespace (Linux keeps it in the
credentials): a reference must be held somewhere, and the NsProxy is what the kernel core drops
when a task exits. :func:`copy_namespaces` and :func:`setns` return matching credentials.

Reference rules: the NsProxy returned by these functions is a new reference for the caller;
the kernel core ``put()``s an NsProxy when a task stops using it (exit, or after unshare/setns
replaced it).
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.kernel.caps import CAP_SYS_ADMIN, CAP_SYS_CHROOT
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EINVAL, EPERM, KernelError
from virtlevels.kernel.ns.cgroupns import CgroupNamespace, create_cgroup_ns, initial_cgroup_ns
from virtlevels.kernel.ns.common import (
    CLONE_FS,
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    CLONE_SYSVSEM,
    CLONE_THREAD,
    Namespace,
    NsContext,
)
from virtlevels.kernel.ns.ipc import IpcNamespace, create_ipc_ns, initial_ipc_ns
from virtlevels.kernel.ns.mnt import MntNamespace, create_mnt_ns, initial_mnt_ns
from virtlevels.kernel.ns.net import NetNamespace, create_net_ns, initial_net_ns
from virtlevels.kernel.ns.pid import PidNamespace, create_pid_ns, initial_pid_ns
from virtlevels.kernel.ns.time import TimeNamespace, create_time_ns, initial_time_ns
from virtlevels.kernel.ns.user import (
    UserNamespace,
    as_like,
    create_user_ns,
    creds_for_new_user_ns,
    creds_user_ns,
    has_cap,
    initial_user_ns,
)
from virtlevels.kernel.ns.uts import UtsNamespace, clone_uts_ns, initial_uts_ns

_FIELDS = ("user", "uts", "ipc", "mnt", "pid_for_children", "cgroup", "net", "time", "time_for_children")


@attrs.define(eq=False)
class NsProxy:
    """The namespaces of a task (struct nsproxy, plus the user namespace). Holds one reference each."""

    user: UserNamespace
    uts: UtsNamespace
    ipc: IpcNamespace
    mnt: MntNamespace
    pid_for_children: PidNamespace  # the task's own pid namespace is that of its Pid
    cgroup: CgroupNamespace
    net: NetNamespace
    time: TimeNamespace
    time_for_children: TimeNamespace
    refcount: int = 1

    def namespaces(self) -> list[Namespace]:
        return [getattr(self, f) for f in _FIELDS]

    def get(self) -> NsProxy:
        self.refcount += 1
        return self

    def put(self) -> None:
        self.refcount -= 1
        if self.refcount == 0:
            for ns in self.namespaces():
                ns.put()

    def proc_ns(self, active_pid_ns: PidNamespace) -> dict[str, Namespace]:
        """The entries of /proc/PID/ns (namespaces(7)), name -> namespace, in ls order."""
        return {
            "cgroup": self.cgroup, "ipc": self.ipc, "mnt": self.mnt, "net": self.net, "pid": active_pid_ns,
            "pid_for_children": self.pid_for_children, "time": self.time,
            "time_for_children": self.time_for_children, "user": self.user, "uts": self.uts,
        }  # fmt: skip


def _proxy_taking(fields: dict[str, Namespace], fresh: set[int]) -> NsProxy:
    """An NsProxy over ``fields``: takes over the creation reference of namespaces in ``fresh``
    (by id) and gets a new reference on the others."""
    seen: set[int] = set()
    for ns in fields.values():
        if id(ns) in fresh and id(ns) not in seen:
            seen.add(id(ns))  # the creation reference covers the first use
        else:
            ns.get()
    return NsProxy(**fields)  # type: ignore[arg-type]


def create_initial(
    ctx: NsContext, *, mount_tree: Any = None, root_cgroup: Any = None
) -> tuple[Credentials, NsProxy]:
    """The initial namespaces and root credentials for the first task of a kernel."""
    user = initial_user_ns(ctx)
    time = initial_time_ns(ctx, user)
    fields: dict[str, Namespace] = {
        "user": user, "uts": initial_uts_ns(ctx, user), "ipc": initial_ipc_ns(ctx, user),
        "mnt": initial_mnt_ns(ctx, user, mount_tree), "pid_for_children": initial_pid_ns(ctx, user),
        "cgroup": initial_cgroup_ns(ctx, user, root_cgroup), "net": initial_net_ns(ctx, user),
        "time": time, "time_for_children": time,
    }  # fmt: skip
    proxy = _proxy_taking(fields, {id(ns) for ns in fields.values()})
    return Credentials.root(as_like(user)), proxy


def check_clone_flags(flags: int) -> None:
    """The namespace-flag combinations clone(2) rejects with EINVAL (unshare(2) has none: there
    CLONE_NEWUSER implies CLONE_THREAD|CLONE_FS and CLONE_NEWIPC implies CLONE_SYSVSEM)."""
    if flags & CLONE_NEWUSER and flags & CLONE_FS:
        raise KernelError(EINVAL, "CLONE_NEWUSER cannot be combined with CLONE_FS")
    if flags & CLONE_THREAD and flags & (CLONE_NEWUSER | CLONE_NEWPID):
        raise KernelError(EINVAL, "CLONE_THREAD cannot be combined with CLONE_NEWUSER or CLONE_NEWPID")
    if flags & CLONE_NEWIPC and flags & CLONE_SYSVSEM:
        raise KernelError(EINVAL, "CLONE_NEWIPC cannot be combined with CLONE_SYSVSEM")


_NON_USER = (
    CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWCGROUP | CLONE_NEWNET | CLONE_NEWTIME
)


def copy_namespaces(
    flags: int,
    creds: Credentials,
    nsproxy: NsProxy,
    *,
    for_clone: bool = True,
    active_pid_ns: PidNamespace | None = None,
    cgroup: Any = None,
    chrooted: bool = False,
) -> tuple[Credentials, NsProxy]:
    """The credentials and namespaces of a task after clone (``for_clone``) or unshare with ``flags``.

    Linux order (kernel/fork.c copy_creds then copy_namespaces; unshare_userns then
    unshare_nsproxy_namespaces): CLONE_NEWUSER first creates the user namespace (no capability
    needed) and gives the caller full capabilities in it; every other CLONE_NEW* flag then needs
    CAP_SYS_ADMIN in the (possibly new) user namespace, and the new namespaces are owned by it.

    CLONE_NEWPID affects ``pid_for_children`` only (the kernel core allocates the child's Pid
    there); EINVAL if ``active_pid_ns`` (the caller's) is not the current pid_for_children, i.e.
    a second unshare(CLONE_NEWPID) before forking. CLONE_NEWTIME likewise sets
    ``time_for_children``; a clone moves the child into it and freezes its offsets.
    CLONE_NEWCGROUP roots the new cgroup namespace at ``cgroup`` (the caller's cgroup).
    Nothing is left behind on failure.
    """
    if for_clone:
        check_clone_flags(flags)
    new_creds = creds
    created: list[Namespace] = []
    try:
        user = creds_user_ns(creds) or nsproxy.user
        if flags & CLONE_NEWUSER:
            user = create_user_ns(creds, chrooted=chrooted)
            created.append(user)
            new_creds = creds_for_new_user_ns(creds, user)
        if not flags & _NON_USER and not flags & CLONE_NEWUSER:
            if not for_clone or nsproxy.time is nsproxy.time_for_children:
                return creds, nsproxy.get()
        if flags & _NON_USER and not has_cap(new_creds, user, CAP_SYS_ADMIN):
            raise KernelError(EPERM, "CAP_SYS_ADMIN needed in the user namespace to create namespaces")
        fields: dict[str, Namespace] = {f: getattr(nsproxy, f) for f in _FIELDS}
        fields["user"] = user

        def make(field: str, ns: Namespace) -> None:
            created.append(ns)
            fields[field] = ns

        # create_new_namespaces order: mnt, uts, ipc, pid, cgroup, net, time.
        if flags & CLONE_NEWNS:
            make("mnt", create_mnt_ns(user, nsproxy.mnt))
        if flags & CLONE_NEWUTS:
            make("uts", clone_uts_ns(user, nsproxy.uts))
        if flags & CLONE_NEWIPC:
            make("ipc", create_ipc_ns(user, nsproxy.ipc))
        if flags & CLONE_NEWPID:
            if active_pid_ns is not None and active_pid_ns is not nsproxy.pid_for_children:
                raise KernelError(EINVAL, "pid namespace for children already unshared")
            make("pid_for_children", create_pid_ns(user, nsproxy.pid_for_children))
        if flags & CLONE_NEWCGROUP:
            make("cgroup", create_cgroup_ns(user, nsproxy.cgroup, cgroup))
        if flags & CLONE_NEWNET:
            make("net", create_net_ns(user, nsproxy.net))
        if flags & CLONE_NEWTIME:
            make("time_for_children", create_time_ns(user, nsproxy.time_for_children))
        if for_clone and fields["time"] is not fields["time_for_children"]:
            # timens_on_fork: the child lives in time_for_children, whose offsets freeze now.
            fields["time"] = fields["time_for_children"]
            tns = fields["time"]
            assert isinstance(tns, TimeNamespace)
            tns.freeze()
    except BaseException:
        for ns in reversed(created):
            ns.put()
        raise
    return new_creds, _proxy_taking(fields, {id(ns) for ns in created})


def unshare_namespaces(
    flags: int, creds: Credentials, nsproxy: NsProxy, **kw: Any
) -> tuple[Credentials, NsProxy]:
    """unshare(2): :func:`copy_namespaces` with unshare's semantics (the caller stays where it is)."""
    return copy_namespaces(flags, creds, nsproxy, for_clone=False, **kw)


def setns(
    ns: Namespace,
    creds: Credentials,
    nsproxy: NsProxy,
    *,
    nstype: int = 0,
    active_pid_ns: PidNamespace | None = None,
) -> tuple[Credentials, NsProxy]:
    """setns(2) on a /proc/PID/ns file: the caller's credentials and NsProxy with ``ns`` joined.

    Checks per setns(2) and each type's ``install`` (kernel/*): EINVAL if ``nstype`` names a
    different type; CAP_SYS_ADMIN in the target's owning user namespace and (except for user
    namespaces) in the caller's own (EPERM); mnt also needs CAP_SYS_CHROOT. Joining a user
    namespace gives full capabilities there (EINVAL for the caller's own). A pid namespace must
    be the caller's or a descendant (EINVAL) and becomes pid_for_children.
    """
    if nstype and nstype != ns.TYPE.flag:
        raise KernelError(EINVAL, f"fd refers to a {ns.TYPE.name} namespace, not the requested type")
    own = creds_user_ns(creds) or nsproxy.user
    fields: dict[str, Namespace] = {f: getattr(nsproxy, f) for f in _FIELDS}
    new_creds = creds
    if isinstance(ns, UserNamespace):
        if ns is own:
            raise KernelError(EINVAL, "already in that user namespace")
        if not has_cap(creds, ns, CAP_SYS_ADMIN):
            raise KernelError(EPERM, "CAP_SYS_ADMIN needed in the target user namespace")
        new_creds = creds_for_new_user_ns(creds, ns)
        fields["user"] = ns
        return new_creds, _proxy_taking(fields, set())
    owner = ns.owner_ns
    assert owner is not None
    if not has_cap(creds, owner, CAP_SYS_ADMIN) or not has_cap(creds, own, CAP_SYS_ADMIN):
        raise KernelError(EPERM, f"CAP_SYS_ADMIN needed to join the {ns.TYPE.name} namespace")
    if isinstance(ns, MntNamespace):
        if not has_cap(creds, own, CAP_SYS_CHROOT):
            raise KernelError(EPERM, "CAP_SYS_CHROOT needed to join a mount namespace")
        fields["mnt"] = ns
    elif isinstance(ns, PidNamespace):
        active = active_pid_ns or nsproxy.pid_for_children
        if not active.is_ancestor_of(ns):
            raise KernelError(EINVAL, "can only join the current pid namespace or a descendant")
        fields["pid_for_children"] = ns
    elif isinstance(ns, TimeNamespace):
        fields["time"] = ns
        fields["time_for_children"] = ns
        ns.freeze()
    else:
        field = {UtsNamespace: "uts", IpcNamespace: "ipc", NetNamespace: "net", CgroupNamespace: "cgroup"}[
            type(ns)  # type: ignore[index]
        ]
        fields[field] = ns
    return new_creds, _proxy_taking(fields, set())
