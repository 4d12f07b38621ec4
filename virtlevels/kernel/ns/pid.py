"""PID namespaces (pid_namespaces(7); kernel/pid.c, kernel/pid_namespace.c).

PID namespaces nest: a process has one pid number in its own namespace and one in every
ancestor, so the parent sees the host pid while the child sees 1. A :class:`Pid` holds those
numbers, one per level. A process can see only pids in its namespace and below
(:meth:`PidNamespace.find_pid` returns None for anything else, which the kernel turns into ESRCH).

The first process in a new namespace gets pid 1 and becomes the namespace's "init": orphans in
the namespace are reparented to it, and when it dies every other process in the namespace (and
in namespaces below) is killed and no new process may enter.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.graph import ResourceGraph
from virtlevels.kernel.errno import EAGAIN, ENOMEM, ENOSPC, EPERM, KernelError
from virtlevels.kernel.ns.common import NS_TYPES, Namespace, NsContext
from virtlevels.kernel.ns.user import UserNamespace, in_userns

MAX_PID_NS_LEVEL = 32  # include/linux/pid_namespace.h: ENOSPC beyond 32 nested levels
PID_MAX_DEFAULT = 0x8000  # include/linux/threads.h: RV32 has no 64-bit longs, so 32768 is also the limit
RESERVED_PIDS = 300  # kernel/pid.c: after the first wrap, allocation restarts above these


@attrs.define(eq=False)
class Pid:
    """struct pid: the numbers of one process at each level, from the root namespace down."""

    numbers: list[tuple[PidNamespace, int]]
    task: Any = None  # the kernel core's task object

    @property
    def level(self) -> int:
        return len(self.numbers) - 1

    @property
    def ns(self) -> PidNamespace:
        """The namespace the owning task lives in (task_active_pid_ns)."""
        return self.numbers[-1][0]

    @property
    def nr(self) -> int:
        """The number as the task itself sees it (pid_vnr from inside)."""
        return self.numbers[-1][1]

    def nr_in(self, ns: PidNamespace) -> int:
        """The number seen from ``ns`` (pid_nr_ns); 0 when not visible there, as getppid(2) shows."""
        if ns.level <= self.level:
            pns, nr = self.numbers[ns.level]
            if pns is ns:
                return nr
        return 0

    def nspid_from(self, ns: PidNamespace) -> list[int]:
        """The NSpid line of /proc/PID/status for a reader in ``ns`` (its level down to the task's)."""
        if self.nr_in(ns) == 0:
            return []
        return [nr for _ns, nr in self.numbers[ns.level :]]


@attrs.define(eq=False)
class PidNamespace(Namespace):
    TYPE = NS_TYPES["pid"]

    parent: PidNamespace | None = None
    level: int = 0
    pid_max: int = PID_MAX_DEFAULT
    pids: dict[int, Pid] = attrs.field(factory=dict)
    last_pid: int = 0  # /proc/sys/kernel/ns_last_pid
    child_reaper: Any = None  # the task with pid 1 here
    adding: bool = True  # PIDNS_ADDING: cleared when init dies, so no process may enter

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.parent is not None:
            self.parent.get()

    def _link_graph(self, g: ResourceGraph) -> None:
        super()._link_graph(g)
        if self.parent is not None:
            g.link(self.node_id, self.parent.node_id, "part_of")

    def _release(self) -> None:
        if self.parent is not None:
            self.parent.put()

    def is_ancestor_of(self, other: PidNamespace) -> bool:
        """Whether ``other`` is this namespace or nested below it."""
        ns: PidNamespace | None = other
        while ns is not None and ns.level >= self.level:
            if ns is self:
                return True
            ns = ns.parent
        return False

    # -- lookup ---------------------------------------------------------------------------------
    def find_pid(self, nr: int) -> Pid | None:
        """find_pid_ns: None if ``nr`` names no process visible from here."""
        return self.pids.get(nr)

    def find_task(self, nr: int) -> Any:
        pid = self.pids.get(nr)
        return None if pid is None else pid.task

    def tasks(self) -> list[Any]:
        """Every task visible here (including deeper namespaces), in pid order."""
        return [self.pids[nr].task for nr in sorted(self.pids) if self.pids[nr].task is not None]

    # -- allocation -----------------------------------------------------------------------------
    def _alloc_nr(self) -> int:
        # kernel/pid.c alloc_pid (idr_alloc_cyclic): the first free number at or after the cursor
        # (last_pid + 1) in [pid_min, pid_max), wrapping once; pid_min rises to RESERVED_PIDS once
        # the cursor has passed it. Only taken numbers are stepped over, so a fork costs O(1)
        # while the namespace is sparse.
        pids = self.pids
        pid_max = self.pid_max
        pid_min = RESERVED_PIDS if self.last_pid > RESERVED_PIDS else 1
        nr = max(self.last_pid + 1, pid_min)
        if nr >= pid_max:
            nr = pid_min
        for _ in range(max(0, pid_max - pid_min)):
            if nr not in pids:
                return nr
            nr += 1
            if nr >= pid_max:
                nr = pid_min
        raise KernelError(EAGAIN, f"no free pid in {self.proc_link()}")

    def alloc_pid(self, task: Any = None) -> Pid:
        """A new Pid with a number here and in every ancestor (alloc_pid).

        ENOMEM once this namespace's init has died (PIDNS_ADDING cleared); EAGAIN when full.
        The first pid allocated here is 1; its task becomes the namespace's child reaper.
        """
        if not self.adding:
            raise KernelError(ENOMEM, f"{self.proc_link()}: init has exited")
        chain: list[PidNamespace] = []
        ns: PidNamespace | None = self
        while ns is not None:
            chain.append(ns)
            ns = ns.parent
        nrs = [n._alloc_nr() for n in chain]
        numbers = list(zip(reversed(chain), reversed(nrs), strict=True))
        pid = Pid(numbers, task)
        for n, nr in zip(chain, nrs, strict=True):
            n.pids[nr] = pid
            n.last_pid = nr
        self.get()  # a Pid holds its namespace (get_pid_ns in alloc_pid)
        if pid.nr == 1:
            self.child_reaper = task
        return pid

    def set_task(self, pid: Pid, task: Any) -> None:
        """Attach the task once the core has built it (copy_process sets child_reaper for pid 1)."""
        pid.task = task
        if pid.nr == 1 and pid.ns is self:
            self.child_reaper = task


def free_pid(pid: Pid) -> None:
    """Release every number of ``pid`` (free_pid) and drop its namespace reference."""
    for ns, nr in pid.numbers:
        if ns.pids.get(nr) is pid:
            del ns.pids[nr]
    deepest = pid.ns
    if pid.nr == 1 and deepest.child_reaper is pid.task:
        deepest.adding = False
    deepest.put()


def reaper_for(ns: PidNamespace) -> Any:
    """The task orphans in ``ns`` are reparented to (its child_reaper, the pid-1 task)."""
    return ns.child_reaper


def orphan_reaper(father_pid: Pid, father_task: Any) -> Any:
    """Who adopts the children of exiting ``father_task`` (find_child_reaper, kernel/exit.c).

    The init of the father's namespace; None when the father *is* that init, because then the
    whole namespace is being killed (see :func:`init_exited`) and its children are reaped with it.
    (Linux first tries another live thread of the father and child subreapers; the core does
    that before calling here if it models them.)
    """
    reaper = father_pid.ns.child_reaper
    if reaper is father_task:
        return None
    return reaper


def init_exited(ns: PidNamespace) -> list[Any]:
    """The namespace's init is exiting (zap_pid_ns_processes): return the tasks to SIGKILL.

    pid_namespaces(7): "If the 'init' process of a PID namespace terminates, the kernel terminates
    all of the processes in the namespace via a SIGKILL signal" - including those in nested
    namespaces, which also have numbers here. No process may enter afterwards (fork -> ENOMEM).
    """
    ns.adding = False
    init = ns.child_reaper
    return [t for t in ns.tasks() if t is not init]


def initial_pid_ns(ctx: NsContext, user_ns: UserNamespace) -> PidNamespace:
    return PidNamespace(ctx, NS_TYPES["pid"].init_ino, user_ns)


def create_pid_ns(user_ns: UserNamespace, parent: PidNamespace) -> PidNamespace:
    """A child pid namespace (create_pid_namespace); the caller has checked CAP_SYS_ADMIN."""
    level = parent.level + 1
    if level > MAX_PID_NS_LEVEL:
        raise KernelError(ENOSPC, "pid namespaces nested too deeply")
    owner = parent.owner_ns
    if owner is not None and not in_userns(owner, user_ns):
        raise KernelError(EPERM, "the new owner must be below the parent pid namespace's owner")
    return PidNamespace(
        parent.ctx, parent.ctx.alloc_ino(), user_ns, parent=parent, level=level, pid_max=parent.pid_max
    )
