"""The cgroup v2 hierarchy (Documentation/admin-guide/cgroup-v2.rst; kernel/cgroup/cgroup.c).

One tree of :class:`Cgroup`; every task is in exactly one cgroup. Controllers (cpu, io, memory,
pids) are enabled top-down through ``cgroup.subtree_control``; a cgroup has a controller's
interface files when its parent enables it (its ``cgroup.controllers``). The root has every
controller but none of the limit files.

Accounting design: usage counters (memory pages, pids, cpu time, io bytes) are kept on *every*
cgroup from a task's cgroup up to the root, whether or not the controller is enabled there, so
enabling or disabling a controller needs no migration of charges. Limits and events exist only
where the controller is enabled, and are reset to their defaults when it is disabled (Linux
destroys the css; a re-enabled one starts fresh). One visible difference: a cgroup that gets
the memory controller late shows pages charged before, where Linux would show them in the parent.

Tasks are opaque hashable objects supplied by the kernel core, registered with their Pid
(virtlevels.kernel.ns.pid.Pid, or a plain int) so cgroup.procs can show and resolve pids in a
reader's pid namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any

import attrs

from virtlevels.graph import ResourceGraph
from virtlevels.kernel.caps import CAP_DAC_OVERRIDE
from virtlevels.kernel.cgroup.cpu import CpuState
from virtlevels.kernel.cgroup.io import IoState
from virtlevels.kernel.cgroup.memory import MemState
from virtlevels.kernel.cgroup.pids import PidsState
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EACCES, EAGAIN, EBUSY, EEXIST, EINVAL, ENAMETOOLONG, ENOENT, KernelError
from virtlevels.kernel.ns.user import creds_user_ns, has_cap

#: Controllers this kernel implements, in Linux's subsystem order (what cgroup.controllers prints).
CONTROLLERS: tuple[str, ...] = ("cpu", "io", "memory", "pids")
INT_MAX = 2**31 - 1
NAME_MAX = 255

Task = Hashable


def _zero_clock() -> int:
    return 0


@attrs.define(eq=False)
class Cgroup:
    """One cgroup directory."""

    hierarchy: CgroupHierarchy
    name: str
    parent: Cgroup | None
    uid: int = 0  # owner of the directory (kernel ids)
    gid: int = 0
    files_uid: int = 0  # owner of its interface files unless chown'ed one by one
    files_gid: int = 0
    file_owners: dict[str, tuple[int, int]] = attrs.field(factory=dict)
    children: dict[str, Cgroup] = attrs.field(factory=dict)
    procs: dict[Task, None] = attrs.field(factory=dict)  # tasks directly here, in arrival order
    subtree_control: set[str] = attrs.field(factory=set)
    nr_tasks_subtree: int = 0  # for "populated"
    freeze: bool = False  # cgroup.freeze as written here
    max_descendants: int = INT_MAX
    max_depth: int = INT_MAX
    cpu: CpuState = attrs.field(factory=CpuState)
    mem: MemState = attrs.field(factory=MemState)
    pids: PidsState = attrs.field(factory=PidsState)
    io: IoState = attrs.field(factory=IoState)
    removed: bool = False

    @property
    def path(self) -> str:
        if self.parent is None:
            return "/"
        pp = self.parent.path
        return (pp if pp != "/" else "") + "/" + self.name

    @property
    def level(self) -> int:
        return 0 if self.parent is None else self.parent.level + 1

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def node_id(self) -> str:
        return f"{self.hierarchy.node_prefix}cgroup:{self.path}"

    def controllers(self) -> list[str]:
        """cgroup.controllers: what the parent's subtree_control enables here (all, at the root)."""
        if self.parent is None:
            return list(CONTROLLERS)
        return [c for c in CONTROLLERS if c in self.parent.subtree_control]

    def has(self, controller: str) -> bool:
        return self.parent is None or controller in self.parent.subtree_control

    def ancestors(self) -> Iterator[Cgroup]:
        """This cgroup, then its parent, up to the root."""
        cg: Cgroup | None = self
        while cg is not None:
            yield cg
            cg = cg.parent

    def walk(self) -> Iterator[Cgroup]:
        """This cgroup and its descendants, pre-order, children by name (deterministic)."""
        yield self
        for name in sorted(self.children):
            yield from self.children[name].walk()

    def is_descendant_of(self, other: Cgroup) -> bool:
        return any(a is other for a in self.ancestors())

    def populated(self) -> bool:
        return self.nr_tasks_subtree > 0

    def frozen(self) -> bool:
        """Effectively frozen: this cgroup or an ancestor has cgroup.freeze set."""
        return any(a.freeze for a in self.ancestors())

    def nr_descendants(self) -> int:
        return sum(1 for _ in self.walk()) - 1


@attrs.define(eq=False)
class CgroupHierarchy:
    """The cgroup2 hierarchy of one kernel: the tree, task membership and the controllers' APIs.

    ``clock`` returns simulated ns; ``schedule(delay_ns, callback)`` defers work (cpu bandwidth
    period timers). Callbacks the kernel core sets: ``on_kill(task)`` for cgroup.kill and the
    OOM kills of a memory.max write, ``on_unthrottle(cgroup)`` when cpu bandwidth is refilled,
    ``on_migrate(task, src, dst)`` after a move (to update graph edges).
    ``block_devices`` lists the (major, minor) of the disks io.max may name.
    """

    graph: ResourceGraph | None = None
    node_prefix: str = ""
    clock: Callable[[], int] = _zero_clock
    schedule: Callable[[int, Callable[[], None]], Any] | None = None
    block_devices: list[tuple[int, int]] = attrs.field(factory=list)
    ns_delegate: bool = True  # mounted with nsdelegate, as systemd does
    parent_node: str | None = None
    on_kill: Callable[[Task], None] | None = None
    on_unthrottle: Callable[[Cgroup], None] | None = None
    on_migrate: Callable[[Task, Cgroup | None, Cgroup], None] | None = None
    root: Cgroup = attrs.field(init=False)
    task_cgroup: dict[Task, Cgroup] = attrs.field(factory=dict)
    task_pid: dict[Task, Any] = attrs.field(factory=dict)
    pids_charged: dict[Task, Cgroup] = attrs.field(factory=dict)  # where each task's pid is charged
    #: Pages each task charged, by (cgroup, kind): what uncharge_task frees and OOM ranks by.
    mem_charges: dict[Task, dict[tuple[Cgroup, str], int]] = attrs.field(factory=dict)
    #: Optional OOM policy: (oom cgroup, candidate tasks) -> victim or None; default: most pages.
    oom_select: Callable[[Cgroup, list[Task]], Task | None] | None = None

    def __attrs_post_init__(self) -> None:
        self.root = Cgroup(self, "", None)
        self._register(self.root)

    # -- graph --------------------------------------------------------------------------------
    def _register(self, cg: Cgroup) -> None:
        g = self.graph
        if g is None:
            return
        g.add(cg.node_id, "cgroup", path=cg.path)
        if cg.parent is not None:
            g.link(cg.node_id, cg.parent.node_id, "part_of")
        elif self.parent_node is not None and self.parent_node in g:
            g.link(cg.node_id, self.parent_node, "runs_on")

    # -- lookup -------------------------------------------------------------------------------
    def lookup(self, path: str) -> Cgroup | None:
        cg = self.root
        for part in path.split("/"):
            if not part:
                continue
            nxt = cg.children.get(part)
            if nxt is None:
                return None
            cg = nxt
        return cg

    def cgroup_of(self, task: Task) -> Cgroup:
        return self.task_cgroup[task]

    def pid_of(self, task: Task, pid_ns: Any = None) -> int:
        """The task's pid as seen from ``pid_ns`` (the root namespace's number when None)."""
        pid = self.task_pid.get(task, 0)
        if hasattr(pid, "nr_in"):
            return int(pid.nr_in(pid_ns)) if pid_ns is not None else int(pid.numbers[0][1])
        return int(pid)

    def find_task(self, nr: int, pid_ns: Any = None) -> Task | None:
        if pid_ns is not None and hasattr(pid_ns, "find_pid"):
            pid = pid_ns.find_pid(nr)
            if pid is None:
                return None
            for task, p in self.task_pid.items():
                if p is pid:
                    return task
            return None
        for task in self.task_pid:
            if self.pid_of(task) == nr:
                return task
        return None

    # -- permission ---------------------------------------------------------------------------
    @staticmethod
    def may_access(creds: Credentials, uid: int, gid: int, mode: int, want: int) -> bool:
        """generic_permission for ``want`` (2 = write, 4 = read, 1 = exec) with CAP_DAC_OVERRIDE
        usable when the file's owner is mapped in the caller's user namespace
        (capable_wrt_inode_uidgid)."""
        if creds.fsuid == uid:
            bits = mode >> 6
        elif creds.fsgid == gid or gid in creds.groups:
            bits = mode >> 3
        else:
            bits = mode
        if bits & want == want:
            return True
        uns = creds_user_ns(creds)
        if uns is None:
            return bool(creds.cap_effective >> CAP_DAC_OVERRIDE & 1)
        return (
            has_cap(creds, uns, CAP_DAC_OVERRIDE) and uns.kuid_has_mapping(uid) and uns.kgid_has_mapping(gid)
        )

    def file_owner(self, cg: Cgroup, name: str) -> tuple[int, int]:
        return cg.file_owners.get(name, (cg.files_uid, cg.files_gid))

    def chown(self, cg: Cgroup, uid: int, gid: int, files: list[str] | tuple[str, ...] | None = None) -> None:
        """Delegate (cgroup-v2.rst "Delegation"): chown the directory, and ``files`` if given
        (typically cgroup.procs, cgroup.threads, cgroup.subtree_control)."""
        cg.uid, cg.gid = uid, gid
        for f in files or ():
            cg.file_owners[f] = (uid, gid)

    # -- mkdir / rmdir ------------------------------------------------------------------------
    def mkdir(self, parent: Cgroup, name: str, creds: Credentials | None = None) -> Cgroup:
        """Create a child cgroup (cgroup_mkdir). EEXIST, EINVAL (bad name), EACCES (no write
        permission on the parent directory), EAGAIN (cgroup.max.depth/descendants reached)."""
        if parent.removed:
            raise KernelError(ENOENT, "parent cgroup was removed")
        if not name or name in (".", "..") or "/" in name or "\n" in name or "\0" in name:
            raise KernelError(EINVAL, f"bad cgroup name {name!r}")
        if len(name.encode()) > NAME_MAX:
            raise KernelError(ENAMETOOLONG, "cgroup name too long")
        if creds is not None and not self.may_access(creds, parent.uid, parent.gid, 0o755, 3):
            raise KernelError(EACCES, f"no write permission on {parent.path}")
        if name in parent.children or name in self.list_files(parent):
            raise KernelError(EEXIST, f"{name!r} exists in {parent.path}")
        level = parent.level + 1
        for a in parent.ancestors():
            if a.nr_descendants() >= a.max_descendants or level - a.level > a.max_depth:
                raise KernelError(EAGAIN, f"cgroup limits of {a.path} reached")
        owner = (creds.fsuid, creds.fsgid) if creds is not None else (0, 0)
        cg = Cgroup(self, name, parent, uid=owner[0], gid=owner[1], files_uid=owner[0], files_gid=owner[1])
        parent.children[name] = cg
        self._register(cg)
        return cg

    def rmdir(self, cg: Cgroup, creds: Credentials | None = None) -> None:
        """Remove an empty cgroup: EBUSY if it has children or tasks (or is the root)."""
        parent = cg.parent
        if parent is None:
            raise KernelError(EBUSY, "cannot remove the root cgroup")
        if creds is not None and not self.may_access(creds, parent.uid, parent.gid, 0o755, 3):
            raise KernelError(EACCES, f"no write permission on {parent.path}")
        if cg.children or cg.procs or cg.nr_tasks_subtree:
            raise KernelError(EBUSY, f"{cg.path} is not empty")
        # Memory still charged here (page cache of exited tasks) moves to the parent, as on
        # css offline (mem_cgroup_css_offline reparents the LRU pages).
        cg.mem.reparent_into(cg, parent)
        g = self.graph
        if g is not None and cg.node_id in g:
            g.remove(cg.node_id)
        del parent.children[cg.name]
        cg.removed = True

    # -- controllers on/off -------------------------------------------------------------------
    def set_subtree_control(self, cg: Cgroup, enable: set[str], disable: set[str]) -> None:
        """cgroup_subtree_control_write after parsing: ENOENT for a controller not available
        here, EBUSY to disable one a child still distributes, EBUSY to enable any while the
        cgroup has processes (the no-internal-process rule; the root is exempt)."""
        enable = {c for c in enable if c not in cg.subtree_control}
        disable = {c for c in disable if c in cg.subtree_control}
        avail = set(cg.controllers())
        for c in CONTROLLERS:
            if c in enable and c not in avail:
                raise KernelError(ENOENT, f"controller {c} is not available in {cg.path}")
            if c in disable:
                for child in cg.children.values():
                    if c in child.subtree_control:
                        raise KernelError(EBUSY, f"{child.path} still enables {c}")
        if not enable and not disable:
            return
        if enable and not cg.is_root and cg.procs:
            # cgroup-v2.rst "No Internal Process Constraint".
            raise KernelError(EBUSY, f"{cg.path} has processes; move them to a leaf first")
        cg.subtree_control |= enable
        cg.subtree_control -= disable
        for child in cg.children.values():
            for c in disable:
                self._reset_controller(child, c)

    def _reset_controller(self, cg: Cgroup, controller: str) -> None:
        """The css is gone: limits and events go back to defaults (usage counters stay)."""
        if controller == "cpu":
            cg.cpu.reset_config()
        elif controller == "memory":
            cg.mem.reset_config()
        elif controller == "pids":
            cg.pids.reset_config()
        elif controller == "io":
            cg.io.reset_config()

    # -- tasks --------------------------------------------------------------------------------
    def attach_task(self, task: Task, cg: Cgroup, pid: Any = 0, *, pid_charged: bool = False) -> None:
        """Put a new task in ``cg`` (cgroup_post_fork; the first task goes in the root).

        ``pid_charged``: :meth:`try_charge_pid` was called for it (fork); otherwise the pid is
        charged now without a limit check, as for tasks that exist before the hierarchy.
        """
        if task in self.task_cgroup:
            raise ValueError(f"task {task!r} is already in a cgroup")
        if not pid_charged:
            from virtlevels.kernel.cgroup.pids import force_charge

            force_charge(cg, 1)
        self.pids_charged[task] = cg
        self.task_pid[task] = pid
        self._link(task, cg)
        if self.on_migrate is not None:
            self.on_migrate(task, None, cg)

    def _link(self, task: Task, cg: Cgroup) -> None:
        self.task_cgroup[task] = cg
        cg.procs[task] = None
        for a in cg.ancestors():
            a.nr_tasks_subtree += 1

    def _unlink(self, task: Task) -> Cgroup:
        cg = self.task_cgroup.pop(task)
        del cg.procs[task]
        for a in cg.ancestors():
            a.nr_tasks_subtree -= 1
        return cg

    def exit_task(self, task: Task) -> None:
        """The task exited (cgroup_exit): it leaves cgroup.procs and "populated". Its pid stays
        charged until :meth:`release_task` (a zombie still counts in pids.current)."""
        if task in self.task_cgroup:
            self._unlink(task)

    def release_task(self, task: Task) -> None:
        """The task was reaped (cgroup_release): uncharge its pid and forget it."""
        self.exit_task(task)
        cg = self.pids_charged.pop(task, None)
        if cg is not None:
            from virtlevels.kernel.cgroup.pids import uncharge

            uncharge(cg, 1)
        self.task_pid.pop(task, None)

    def migrate(self, task: Task, dst: Cgroup) -> None:
        """Move ``task`` to ``dst`` without permission checks (the checks are in
        :meth:`write_procs`). Memory charges stay where they were made (cgroup-v2.rst: "memory
        ... is not moved on migration"); the pid charge moves, even past pids.max."""
        if dst.removed:
            raise KernelError(ENOENT, "destination cgroup was removed")
        if not dst.is_root and dst.subtree_control:
            raise KernelError(EBUSY, f"{dst.path} distributes controllers; it cannot hold processes")
        src = self._unlink(task)
        self._link(task, dst)
        old = self.pids_charged.get(task)
        if old is not None and old is not dst:
            from virtlevels.kernel.cgroup.pids import force_charge, uncharge

            force_charge(dst, 1)
            uncharge(old, 1)
            self.pids_charged[task] = dst
        if self.on_migrate is not None:
            self.on_migrate(task, src, dst)

    def write_procs(
        self,
        dst: Cgroup,
        text: str,
        creds: Credentials,
        *,
        task: Task | None = None,
        pid_ns: Any = None,
        cgroup_ns: Any = None,
    ) -> None:
        """A write to ``dst/cgroup.procs`` (__cgroup_procs_write), in Linux's order of checks:
        EINVAL (not a number), ESRCH (no such pid in the writer's pid namespace), EACCES (no
        write access to cgroup.procs of the common ancestor of source and destination: the
        simplified form of cgroup-v2.rst "Delegation Containment"), ENOENT (with nsdelegate, the
        source or destination is outside the writer's cgroup namespace), EBUSY (destination
        distributes controllers)."""
        from virtlevels.kernel.cgroup.parse import kstrto
        from virtlevels.kernel.errno import ESRCH

        nr = kstrto(text.strip(), signed=True, bits=32)
        if nr < 0:
            raise KernelError(EINVAL, f"bad pid {text!r}")
        target = task if nr == 0 else self.find_task(nr, pid_ns)
        if target is None or target not in self.task_cgroup:
            raise KernelError(ESRCH, f"no process {nr}")
        src = self.task_cgroup[target]
        com = src
        while not dst.is_descendant_of(com):
            assert com.parent is not None
            com = com.parent
        uid, gid = self.file_owner(com, "cgroup.procs")
        if not self.may_access(creds, uid, gid, 0o644, 2):
            raise KernelError(EACCES, f"no write access to {com.path}/cgroup.procs")
        if self.ns_delegate and cgroup_ns is not None:
            ns_root = getattr(cgroup_ns, "root", None)
            if ns_root is not None and not (src.is_descendant_of(ns_root) and dst.is_descendant_of(ns_root)):
                raise KernelError(ENOENT, "source or destination outside the cgroup namespace")
        if src is dst:
            return
        self.migrate(target, dst)

    def kill(self, cg: Cgroup) -> list[Task]:
        """cgroup.kill: every task in the subtree, each passed to ``on_kill``."""
        victims = [t for c in cg.walk() for t in c.procs]
        if self.on_kill is not None:
            for t in victims:
                self.on_kill(t)
        return victims

    # -- the text interface -------------------------------------------------------------------
    def list_files(self, cg: Cgroup) -> list[str]:
        from virtlevels.kernel.cgroup.files import files_of

        return files_of(cg)

    def has_file(self, cg: Cgroup, name: str) -> bool:
        """Whether ``cg``'s directory shows the interface file ``name`` (one lookup, no listing)."""
        from virtlevels.kernel.cgroup.files import FILES, _present

        f = FILES.get(name)
        return f is not None and _present(cg, f)

    def read_file(self, cg: Cgroup, name: str, *, pid_ns: Any = None) -> str:
        from virtlevels.kernel.cgroup.files import read_file

        return read_file(cg, name, pid_ns=pid_ns)

    def write_file(
        self,
        cg: Cgroup,
        name: str,
        text: str,
        creds: Credentials,
        *,
        task: Task | None = None,
        pid_ns: Any = None,
        cgroup_ns: Any = None,
    ) -> None:
        from virtlevels.kernel.cgroup.files import write_file

        write_file(cg, name, text, creds, task=task, pid_ns=pid_ns, cgroup_ns=cgroup_ns)
