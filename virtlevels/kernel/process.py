"""Processes and threads (include/linux/sched.h task_struct, signal_struct).

A :class:`Task` is a thread: the unit the scheduler runs, with its own tid and (possibly shared)
credentials, namespaces, filesystem context, descriptor table and address space. A
:class:`Process` is a thread group (what a pid names): the parent/child tree, exit status and
zombie state, rlimits, and cgroup membership (cgroup v2 puts whole processes in cgroups).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import attrs

from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.mm import AddressSpace
from virtlevels.kernel.ns.pid import Pid
from virtlevels.kernel.ns.proxy import NsProxy
from virtlevels.kernel.vfs.file import FdTable
from virtlevels.kernel.vfs.fscontext import FsContext
from virtlevels.kernel.wait import WaitQueue

# include/uapi/asm-generic/resource.h
RLIMIT_CPU = 0
RLIMIT_FSIZE = 1
RLIMIT_DATA = 2
RLIMIT_STACK = 3
RLIMIT_CORE = 4
RLIMIT_RSS = 5
RLIMIT_NPROC = 6
RLIMIT_NOFILE = 7
RLIMIT_MEMLOCK = 8
RLIMIT_AS = 9
RLIMIT_LOCKS = 10
RLIMIT_SIGPENDING = 11
RLIMIT_MSGQUEUE = 12
RLIMIT_NICE = 13
RLIMIT_RTPRIO = 14
RLIMIT_RTTIME = 15
RLIM_NLIMITS = 16
RLIM_INFINITY = 2**64 - 1  # RLIM64_INFINITY; the 32-bit getrlimit ABI shows it as 0xFFFFFFFF
RLIMIT_NAMES = (
    "cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile", "memlock", "as", "locks",
    "sigpending", "msgqueue", "nice", "rtprio", "rttime",
)  # fmt: skip


def default_rlimits() -> list[tuple[int, int]]:
    """What init gets (include/asm-generic/resource.h INIT_RLIMITS)."""
    inf = RLIM_INFINITY
    lims = [(inf, inf)] * RLIM_NLIMITS
    lims[RLIMIT_STACK] = (8 * 1024 * 1024, inf)  # _STK_LIM
    lims[RLIMIT_CORE] = (0, inf)
    lims[RLIMIT_NPROC] = (4096, 4096)  # set from max_threads/2 at boot; a fixed value here
    lims[RLIMIT_NOFILE] = (1024, 4096)  # INR_OPEN_CUR, INR_OPEN_MAX
    lims[RLIMIT_MEMLOCK] = (8 * 1024 * 1024, 8 * 1024 * 1024)
    lims[RLIMIT_SIGPENDING] = (4096, 4096)
    lims[RLIMIT_MSGQUEUE] = (819200, 819200)
    lims[RLIMIT_NICE] = (0, 0)
    lims[RLIMIT_RTPRIO] = (0, 0)
    return lims


# Task states
RUNNING = "R"  # runnable or on a CPU
SLEEPING = "S"  # parked on a wait queue (interruptible)
ZOMBIE = "Z"
DEAD = "X"


@attrs.define(eq=False)
class Process:
    """A thread group: what a pid names outside the thread."""

    pid: Pid  # the thread-group leader's Pid (tgid)
    leader: Task | None = None
    threads: list[Task] = attrs.field(factory=list)
    parent: Process | None = None
    children: list[Process] = attrs.field(factory=list)
    rlimits: list[tuple[int, int]] = attrs.field(factory=default_rlimits)
    exit_code: int = 0  # the wait status once it has exited
    exiting: bool = False
    zombie: bool = False
    reaped: bool = False
    #: woken when a child changes state (wait4 sleeps here: signal->wait_chldexit).
    child_wait: WaitQueue = attrs.field(factory=WaitQueue)
    cpu_ns: int = 0  # user+system time of all threads (for RLIMIT_CPU and times)
    graph_id: str | None = None
    exit_signal: int = 17  # what the parent is sent (SIGCHLD, or clone's low byte)
    start_time: int = 0
    cgroup_attached: bool = False

    def __hash__(self) -> int:
        return id(self)

    @property
    def host_pid(self) -> int:
        return self.pid.numbers[0][1]

    def rlimit(self, res: int) -> int:
        return self.rlimits[res][0]

    def __repr__(self) -> str:
        return f"<Process {self.host_pid} {self.leader.comm if self.leader else '?'}>"


@attrs.define(eq=False)
class Task:
    """A thread (task_struct)."""

    tid: Pid
    process: Process
    creds: Credentials
    nsproxy: NsProxy
    fs: FsContext
    files: FdTable
    mm: AddressSpace
    comm: str = ""
    kind: str = "scripted"  # or "isa"
    state: str = RUNNING
    # -- scripted execution ---------------------------------------------------------------------
    gen: Generator[Any, Any, Any] | None = None
    resume: Any = None  # what the next gen.send() delivers
    started: bool = False
    pending: Any = None  # the operation being (re)tried after a wake-up
    burn_left: int = 0
    # -- ISA execution --------------------------------------------------------------------------
    context: Any = None  # saved user registers/pc (virtlevels.kernel.isa)
    # -- scheduling -----------------------------------------------------------------------------
    se: Any = None  # the scheduler's entity
    cpu: int = 0
    nice: int = 0
    on_rq: bool = False
    wait_cancel: Any = None  # how to leave the wait queue we sleep on
    sleep_until: int | None = None  # nanosleep's deadline (ns)
    sleep_timer: Any = None  # the event that ends the sleep
    # -- signals / exit -------------------------------------------------------------------------
    pending_kill: int = 0  # a fatal signal to act on at the next return to user mode
    exit_after_syscall: int | None = None
    clear_child_tid: int = 0
    argv: list[str] = attrs.field(factory=list)
    envp: list[str] = attrs.field(factory=list)  # the environment given to the last execve
    seccomp: Any = None  # the sandbox plugin's per-task filter state
    umem: Any = None  # a scripted task's user-memory shim for the current call
    pids_cg: Any = None  # threads: the cgroup their pid is charged to
    dead: bool = False
    user_ns_cycles: int = 0
    sys_ns_cycles: int = 0

    def __hash__(self) -> int:
        return id(self)

    @property
    def host_tid(self) -> int:
        return self.tid.numbers[0][1]

    @property
    def pid_ns(self) -> Any:
        """The pid namespace the task lives in (task_active_pid_ns)."""
        return self.tid.ns

    @property
    def is_leader(self) -> bool:
        return self.process.leader is self

    def __repr__(self) -> str:
        return f"<Task {self.host_tid} {self.comm!r} {self.state}>"
