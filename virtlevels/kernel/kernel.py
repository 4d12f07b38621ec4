"""The kernel: boot, processes (fork/exec/exit/wait/kill), the CPU loop and system call entry.

A :class:`Kernel` runs on the World's clock (``world.events``, in cycles). Each CPU is driven
by events: at each event the CPU runs one step of its current task (one system call, a chunk of
user computation, or, for ISA processes, a stretch of instructions on the hart), charges its
cycles, and schedules its next event that many cycles later. :meth:`Kernel.run` runs the event
queue, so several kernels, machines and networks in one World interleave deterministically.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

from virtlevels.cost import CostModel, load_profile
from virtlevels.errors import VirtlevelsError
from virtlevels.kernel import signals
from virtlevels.kernel.block import (
    BLOCK_DRIVER_PC,
    DISK_NAME,
    VIRTIO_BLK_MAJOR,
    BlockDevice,
    MemDisk,
    VlblkDriver,
)
from virtlevels.kernel.caps import CAP_KILL, CAP_SYS_ADMIN, CAP_SYS_RESOURCE
from virtlevels.kernel.cgroup import cpu as cgcpu
from virtlevels.kernel.cgroup import io as cgio
from virtlevels.kernel.cgroup import memory as cgmem
from virtlevels.kernel.cgroup import pids as cgpids
from virtlevels.kernel.cgroup.core import Cgroup, CgroupHierarchy
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EAGAIN, EINVAL, ENOEXEC, KernelError
from virtlevels.kernel.mm import PAGE_SHIFT, AddressSpace
from virtlevels.kernel.ns import (
    CLONE_NEWNS,
    NsContext,
    NsProxy,
    copy_namespaces,
    create_initial,
    free_pid,
    init_exited,
    orphan_reaper,
)
from virtlevels.kernel.ns.user import has_cap
from virtlevels.kernel.process import (
    DEAD,
    RLIMIT_CPU,
    RLIMIT_NOFILE,
    RLIMIT_NPROC,
    RUNNING,
    SLEEPING,
    ZOMBIE,
    Process,
    Task,
)
from virtlevels.kernel.sched import Cpu, Scheduler
from virtlevels.kernel.scripted import Burn, Obj, Out, Program, Syscall, Touch
from virtlevels.kernel.scripted import IoVec as _IoVec
from virtlevels.kernel.syscalls.table import FilterVerdict, SyscallFilter, default_table
from virtlevels.kernel.usermem import ScriptedMemory
from virtlevels.kernel.vfs.constants import MAY_EXEC, O_RDONLY
from virtlevels.kernel.vfs.file import FdTable
from virtlevels.kernel.vfs.ops import Vfs
from virtlevels.kernel.wait import WaitQueue, WouldBlock
from virtlevels.world import World

# include/uapi/linux/sched.h
CSIGNAL = 0x000000FF
CLONE_VM = 0x00000100
CLONE_FS = 0x00000200
CLONE_FILES = 0x00000400
CLONE_SIGHAND = 0x00000800
CLONE_PIDFD = 0x00001000
CLONE_VFORK = 0x00004000
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_SYSVSEM = 0x00040000
CLONE_SETTLS = 0x00080000
CLONE_PARENT_SETTID = 0x00100000
CLONE_CHILD_CLEARTID = 0x00200000
CLONE_CHILD_SETTID = 0x01000000

#: The cost keys the kernel reads, from the profile's [kernel] section (defaults in virtlevels.cost).
KERNEL_COST_KEYS: tuple[str, ...] = ("syscall", "context_switch", "page_fault", "fork", "exec")

SCRIPT_MAGIC = b"#!scripted "
ELF_MAGIC = b"\x7fELF"


def exec_creds(old: Credentials, user_ns: Any) -> Credentials:
    """The capability transformation of execve (capabilities(7) "Transformation of capabilities
    during execve()"; security/commoncap.c cap_bprm_creds_from_file) for a file without file
    capabilities or set-user-ID bits, which is every file here:

        P'(ambient) = P(ambient);  P'(permitted) = P'(ambient);  P'(effective) = P'(ambient)

    except for root (uid 0 of the user namespace, handle_privileged_root): its file sets are
    taken as full, so P'(permitted) = P(inheritable) | P(bounding), and effective is all of
    permitted when the effective uid is root. SECBIT_KEEP_CAPS is cleared.
    """
    new = old.copy()
    root = user_ns.make_kuid(0)
    amb = old.cap_ambient
    if root is not None and root in (old.euid, old.uid):
        new.cap_permitted = (old.cap_inheritable | old.cap_bounding) | amb
        new.cap_effective = new.cap_permitted if old.euid == root else amb
    else:
        new.cap_permitted = amb
        new.cap_effective = amb
    new.keep_caps = False
    return new


class KernelPanic(VirtlevelsError):
    """Something a scripted program did is a bug in the program (it raised an exception)."""


#: What ``Cpu.tick`` holds while the CPU runs a step (no event is pending, but one will be).
_BUSY: Any = object()


class Kernel:
    """A Linux-like kernel on a World (and optionally a Machine, whose harts are its CPUs)."""

    def __init__(
        self,
        world: World | None = None,
        machine: Any = None,
        *,
        cost: CostModel | None = None,
        ncpus: int | None = None,
        hostname: str | None = None,
        hz: int = 1_000_000_000,
        slice_ns: int = 3_000_000,
        raise_on_crash: bool = True,
        engine: str = "interp",
        disk_size: int | None = 64 << 20,
    ) -> None:
        if world is None and machine is not None:
            world = machine.world
        if machine is not None and (world is None or machine.events is not world.events):
            raise VirtlevelsError("a kernel runs on its machine's World: create the machine with world=")
        self.world = world if world is not None else World(entry_points=False)
        self.machine = machine
        #: The ISA-process support (user mode on a Machine's harts); None for a machine-less kernel.
        self.isa: Any = None
        if cost is None:
            cost = getattr(machine, "cost", None) or load_profile("default")
        self.cost = cost
        self.hz = hz
        self.raise_on_crash = raise_on_crash
        self.c_syscall = self._cost("syscall")
        self.c_switch = self._cost("context_switch")
        self.c_fault = self._cost("page_fault")
        self.c_fork = self._cost("fork")
        self.c_exec = self._cost("exec")
        g = self.world.graph
        self.node_id = self.world.new_id("kernel")
        below = getattr(machine, "node_id", None) or "world"
        g.add(self.node_id, "kernel")
        if below in g:
            g.link(self.node_id, below, "runs_on")
        self.syscalls = default_table()
        #: The syscall-entry filter chain (seccomp lives here, as a plugin).
        self.syscall_filters: list[SyscallFilter] = []
        #: prctl(PR_SET_SECCOMP)/seccomp(2) provider: ``f(kernel, task, op, flags, args) -> int``.
        self.seccomp_provider: Callable[..., int] | None = None
        #: The symbol-resolver seam (a dynamic linker lives here, as a plugin): each hook is called
        #: as ``hook(task, path, program)`` once execve has replaced the program, where
        #: ``program`` is the scripted program function or the ELF image's bytes.
        self.exec_hooks: list[Callable[[Task, str, Any], None]] = []
        #: ISA host calls: ``f(task, addr) -> bool`` is asked about a user instruction fetch fault
        #: at ``addr`` before demand paging; True means it was a call it has served (PLT stubs
        #: that jump into the linker's host-call window).
        self.hostcalls: list[Callable[[Task, int], bool]] = []
        self._sys_obs = self.world.observer("syscall")
        self._proc_obs = self.world.observer("process")
        self.programs: dict[str, Program] = {}
        self.trace: list[tuple[int, int, str, int]] = []  # (time, host tid, syscall name, result)
        self.tracing = False
        self.console = bytearray()
        self.processes: list[Process] = []
        self.uid_procs: dict[int, int] = {}
        self._fs_users: dict[int, int] = {}
        self._files_users: dict[int, int] = {}
        #: Cycles charged with a category other than "kernel" (``charge_extra``), over the kernel's life.
        self.charged_by_category: dict[str, int] = {}
        self.exit_status: dict[int, int] = {}  # host pid -> wait status, for processes nobody waits for
        # -- subsystems ------------------------------------------------------------------------
        prefix = self.node_id + "/"
        self.nsctx = NsContext(graph=g, node_prefix=prefix, clock=self.now_ns, parent_node=self.node_id)
        self.vfs = Vfs(self.now_ns, g, prefix + "vfs", self.node_id, console=self._console_write)
        self.cgroups = CgroupHierarchy(
            graph=g, node_prefix=prefix, clock=self.now_ns, schedule=self._schedule_ns,
            parent_node=self.node_id, on_kill=self._cgroup_kill, on_unthrottle=self._on_unthrottle,
            on_migrate=self._on_migrate,
        )  # fmt: skip
        ncpu = ncpus if ncpus is not None else len(getattr(machine, "harts", ())) or 1
        self.sched = Scheduler([Cpu(i) for i in range(ncpu)], slice_ns=slice_ns)
        self.c_block_sector = int(self.cost.get("device", "block_sector"))
        #: The disk /dev/vda (254:0): the machine's vlblk controller, else an in-memory disk.
        self.disk: BlockDevice | None = None
        self._io_delay_ns = 0
        self._attach_disk(machine, disk_size)
        self._boot(hostname)
        if machine is not None:
            from virtlevels.kernel.hw import HwKernel

            self.isa = HwKernel(self, machine, engine)

    # -- time and cost -----------------------------------------------------------------------------
    def _cost(self, key: str) -> int:
        return int(self.cost.get("kernel", key))

    def now_ns(self) -> int:
        """Simulated time in ns (CLOCK_MONOTONIC of the initial time namespace)."""
        return self.world.now * 1_000_000_000 // self.hz

    def ns_to_cycles(self, ns: int) -> int:
        return -(-ns * self.hz // 1_000_000_000)

    def cycles_to_ns(self, cycles: int) -> int:
        return cycles * 1_000_000_000 // self.hz

    def _schedule_ns(self, delay_ns: int, callback: Callable[[], None]) -> Any:
        return self.world.events.schedule(self.world.now + self.ns_to_cycles(max(0, delay_ns)), callback)

    def _console_write(self, data: bytes) -> None:
        self.console += data

    # -- the block device ------------------------------------------------------------------------------
    def _attach_disk(self, machine: Any, disk_size: int | None) -> None:
        from virtlevels.machine.memmap import BLOCK_BASE

        blk = None
        for base, dev in getattr(machine, "devices", {}).values():
            if base == BLOCK_BASE:
                blk = dev
        if blk is not None:
            driver: Any = VlblkDriver(machine, BLOCK_BASE, self._io_hart, self._dma_frame, BLOCK_DRIVER_PC,
                                      self._satp_cleared)
        elif disk_size is not None:
            driver = MemDisk(disk_size)
        else:
            return
        self.disk = self.vfs.register_blkdev(VIRTIO_BLK_MAJOR, 0, BlockDevice(DISK_NAME, VIRTIO_BLK_MAJOR, 0,
                                                                              driver, self._account_io))
        self.cgroups.block_devices.append((VIRTIO_BLK_MAJOR, 0))

    def _io_hart(self) -> Any:
        t = self.current
        return self.isa.harts[t.cpu if t is not None else 0]

    def _dma_frame(self) -> int:
        return int(self.isa.frames.alloc())

    def _satp_cleared(self, h: Any) -> None:
        self.isa.loaded.pop(h.id, None)

    def _account_io(self, read: bool, nbytes: int, sectors: int) -> None:
        """One IO on the disk by the current task: the device's time ([device] block_sector per
        sector; a vlblk controller charges its own) and the io cgroup's throttle
        (``charge_io``). The task sleeps both off after the call completes (io_schedule)."""
        t = self.current
        p = t.process if t is not None else None
        cg = self.cgroups.cgroup_of(p) if p is not None else self.cgroups.root
        delay = cgio.charge_io(cg, (VIRTIO_BLK_MAJOR, 0), read, nbytes, self.now_ns())
        if self.disk is not None and isinstance(self.disk.driver, MemDisk):
            delay += self.cycles_to_ns(self.c_block_sector * sectors)
        if t is not None:
            self._io_delay_ns += delay

    # -- boot ----------------------------------------------------------------------------------------
    def _boot(self, hostname: str | None) -> None:
        from virtlevels.kernel import procfs

        vfs = self.vfs
        root_sb = vfs.new_tmpfs(mode=0o755, source="rootfs")
        vfs_ns = vfs.new_namespace(root_sb)
        self.init_creds, self.init_nsproxy = create_initial(
            self.nsctx, mount_tree=vfs_ns, root_cgroup=self.cgroups.root
        )
        if hostname is not None:
            self.init_nsproxy.uts.nodename = hostname.encode()
        procfs.register_filesystems(self)
        fs = vfs.root_context(vfs_ns)
        self._boot_fs = fs
        cr = self.init_creds
        for d in ("/proc", "/sys", "/sys/fs", "/sys/fs/cgroup", "/dev", "/tmp", "/etc", "/bin", "/root"):
            vfs.mkdirat(fs, cr, d, 0o755)
        vfs.mount(fs, cr, "proc", "/proc", "proc", 0, None)
        vfs.mount(fs, cr, "cgroup2", "/sys/fs/cgroup", "cgroup2", 0, None)
        vfs.mount(fs, cr, "devtmpfs", "/dev", "devtmpfs", 0, None)

    # -- programs ------------------------------------------------------------------------------------
    def register_program(self, name: str, program: Program) -> None:
        """Make a scripted program available to execve under ``name``."""
        self.programs[name] = program

    def install_program(self, path: str, name: str | None = None, program: Program | None = None,
                        mode: int = 0o755) -> None:
        """Create an executable file at ``path`` naming a registered program (``#!scripted NAME``)."""
        name = name or posixpath.basename(path)
        if program is not None:
            self.register_program(name, program)
        self.write_file(path, SCRIPT_MAGIC + name.encode() + b"\n", mode)

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Create or replace a file from the host side (as root, in the initial mount namespace)."""
        from virtlevels.kernel.vfs.constants import O_CREAT, O_TRUNC, O_WRONLY

        raw = data.encode() if isinstance(data, str) else data
        parent = posixpath.dirname(path)
        self._mkdir_p(parent)
        f = self.vfs.openat(self._boot_fs, self.init_creds, path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        try:
            self.vfs.write(f, raw)
        finally:
            f.put()
        self.vfs.fchmod(self.init_creds, f, mode)

    def read_file(self, path: str, task: Task | None = None) -> bytes:
        """Read a whole file, as ``task`` sees it (default: root in the initial namespaces)."""
        fs = task.fs if task is not None else self._boot_fs
        creds = task.creds if task is not None else self.init_creds
        if task is not None:
            fs.task = task
        f = self.vfs.openat(fs, creds, path, O_RDONLY)
        try:
            out = bytearray()
            while True:
                chunk = self.vfs.read(f, 65536)
                if not chunk:
                    return bytes(out)
                out += chunk
        finally:
            f.put()

    def _mkdir_p(self, path: str) -> None:
        cur = ""
        for part in [p for p in path.split("/") if p]:
            cur += "/" + part
            try:
                self.vfs.mkdirat(self._boot_fs, self.init_creds, cur, 0o755)
            except KernelError:
                pass

    # -- graph ---------------------------------------------------------------------------------------
    def _proc_node(self, p: Process) -> str:
        return f"{self.node_id}/process:{p.host_pid}"

    def _graph_process(self, p: Process, task: Task) -> None:
        g = self.world.graph
        nid = self._proc_node(p)
        g.add(nid, "process", pid=p.host_pid, comm=task.comm)
        g.link(nid, self.node_id, "runs_on")
        p.graph_id = nid
        self._graph_relink(p, task)

    def _graph_relink(self, p: Process, task: Task) -> None:
        g = self.world.graph
        nid = p.graph_id
        if nid is None or nid not in g:
            return
        for _a, b, data in list(g.g.out_edges(nid, data=True)):
            if data["kind"] in ("member_of", "limited_by"):
                g.unlink(nid, b, data["kind"])
        seen: set[str] = set()
        for ns in [*task.nsproxy.namespaces(), task.pid_ns]:
            if ns.node_id not in seen and ns.node_id in g:
                seen.add(ns.node_id)
                g.link(nid, ns.node_id, "member_of")
        cg = self.cgroups.task_cgroup.get(p)
        if cg is not None and cg.node_id in g:
            g.link(nid, cg.node_id, "limited_by")

    def _observe(self, p: Process, event: str) -> None:
        obs = self._proc_obs
        if obs is not None:
            obs(kernel=self, pid=p.host_pid, event=event)

    # -- creating processes ----------------------------------------------------------------------------
    def spawn(
        self,
        program: Program | str,
        argv: list[str] | tuple[str, ...] = (),
        *,
        creds: Credentials | None = None,
        cgroup: Cgroup | str | None = None,
        parent: Task | None = None,
        name: str | None = None,
        nice: int = 0,
        stdio: bool = False,
        envp: list[str] | tuple[str, ...] = (),
    ) -> Task:
        """Start a process from the host side (as the kernel starts init, or as a runtime does).

        ``program`` is a scripted program (function) or a path to exec. The first process becomes
        pid 1; later ones are children of ``parent`` (default: init). With ``stdio``, fds 0, 1 and 2
        are /dev/console (as init gets them). Returns its main task.
        """
        if parent is None:
            parent = self.init_task if self.processes else None
        if isinstance(cgroup, str):
            found = self.cgroups.lookup(cgroup)
            if found is None:
                raise VirtlevelsError(f"no cgroup {cgroup!r}")
            cgroup = found
        if parent is None:
            t = self._first_task(creds)
        else:
            t = self._copy_process(parent, 0x11, None, spawn=True)  # SIGCHLD as exit signal
            if creds is not None:
                t.creds = creds
        t.nice = nice
        if cgroup is not None:
            self.cgroups.migrate(t.process, cgroup)
        if stdio:
            from virtlevels.kernel.vfs.constants import O_RDWR

            t.fs.task = t
            con = self.vfs.openat(t.fs, t.creds, "/dev/console", O_RDWR)
            for _fd in range(3):
                t.files.install(con.get())
            con.put()
        if isinstance(program, str):
            self._exec_path(t, program, list(argv) or [program], list(envp))
        else:
            t.comm = name or getattr(program, "__name__", "prog")[:15]
            t.argv = list(argv)
            t.gen = program(*argv) if argv else program()
        self._wake_new(t)
        return t

    def _first_task(self, creds: Credentials | None) -> Task:
        nsp = self.init_nsproxy.get()
        pid = nsp.pid_for_children.alloc_pid()
        mm = AddressSpace()
        p = Process(pid, start_time=self.now_ns())
        cr = creds if creds is not None else self.init_creds.copy()
        fs = self._boot_fs.copy()
        t = Task(pid, p, cr, nsp, fs, FdTable(), mm, comm="init")
        self._fs_users[id(fs)] = 1
        self._files_users[id(t.files)] = 1
        self._attach(t, p, pid)
        self.cgroups.attach_task(p, self.cgroups.root, pid)
        p.cgroup_attached = True
        self.init_task = t
        self._graph_process(p, t)
        self._observe(p, "created")
        return t

    def _attach(self, t: Task, p: Process, pid: Any) -> None:
        pid.ns.set_task(pid, t)
        t.se = self.sched.new_entity(t)
        p.threads.append(t)
        if p.leader is None:
            p.leader = t
            self.processes.append(p)
            self.uid_procs[t.creds.uid] = self.uid_procs.get(t.creds.uid, 0) + 1

    def _copy_process(self, parent: Task, flags: int, entry: Any, *, spawn: bool = False) -> Task:
        """copy_process: the checks and copies of clone(2), undone completely on any failure."""
        if flags & CLONE_NEWNS and flags & CLONE_FS:
            raise KernelError(EINVAL, "CLONE_NEWNS with CLONE_FS")
        if flags & CLONE_THREAD and not flags & CLONE_SIGHAND:
            raise KernelError(EINVAL, "CLONE_THREAD needs CLONE_SIGHAND")
        if flags & CLONE_SIGHAND and not flags & CLONE_VM:
            raise KernelError(EINVAL, "CLONE_SIGHAND needs CLONE_VM")
        pproc = parent.process
        thread = bool(flags & CLONE_THREAD)
        if not thread:
            # RLIMIT_NPROC counts the processes of the real uid (kernel/fork.c, copy_process).
            limit = pproc.rlimit(RLIMIT_NPROC)
            if self.uid_procs.get(parent.creds.uid, 0) >= limit and not (
                has_cap(parent.creds, self.init_nsproxy.user, CAP_SYS_RESOURCE)
                or has_cap(parent.creds, self.init_nsproxy.user, CAP_SYS_ADMIN)
            ):
                raise KernelError(EAGAIN, "RLIMIT_NPROC reached")
        undo: list[Callable[[], None]] = []
        try:
            cg = self.cgroups.cgroup_of(pproc)
            creds, nsp = copy_namespaces(
                flags, parent.creds.copy(), parent.nsproxy, for_clone=True, active_pid_ns=parent.pid_ns,
                cgroup=cg, chrooted=self.chrooted(parent),
            )  # fmt: skip
            undo.append(nsp.put)
            pid_ns = parent.pid_ns if thread else nsp.pid_for_children
            pid = pid_ns.alloc_pid()
            undo.append(lambda: free_pid(pid))
            cgpids.try_charge_pid(cg, 1)
            undo.append(lambda: cgpids.cancel_charge_pid(cg, 1))
        except BaseException:
            for u in reversed(undo):
                u()
            raise
        # -- nothing below fails ------------------------------------------------------------------
        if flags & CLONE_FS:
            fs = parent.fs
            self._fs_users[id(fs)] += 1
        else:
            fs = parent.fs.copy()
            self._fs_users[id(fs)] = 1
            if nsp.mnt is not parent.nsproxy.mnt:
                fs.translate(nsp.mnt.take_mapping(), nsp.mnt.tree)
        if flags & CLONE_FILES:
            files = parent.files
            self._files_users[id(files)] += 1
        else:
            files = parent.files.fork()
            self._files_users[id(files)] = 1
        if flags & CLONE_VM:
            mm = parent.mm
            mm.users += 1
        else:
            mm = parent.mm.fork()
        if thread:
            proc = pproc
        else:
            proc = Process(pid, rlimits=list(pproc.rlimits), exit_signal=flags & CSIGNAL,
                           start_time=self.now_ns())  # fmt: skip
            proc.parent = pproc.parent if flags & CLONE_PARENT and pproc.parent is not None else pproc
            proc.parent.children.append(proc)
        t = Task(pid, proc, creds, nsp, fs, files, mm, comm=parent.comm, kind=parent.kind, nice=parent.nice)
        t.argv = list(parent.argv)
        t.envp = parent.envp
        t.seccomp = parent.seccomp  # copy_seccomp (kernel/fork.c): filters are inherited, never dropped
        fs.task = t
        self._attach(t, proc, pid)
        if thread:
            t.pids_cg = cg  # type: ignore[attr-defined]
        else:
            self.cgroups.attach_task(proc, cg, pid, pid_charged=True)
            proc.cgroup_attached = True
            self._graph_process(proc, t)
            self._observe(proc, "created")
        if entry is not None:
            fn, args = entry
            t.gen = fn(*args)
        return t

    def _put_nsproxy(self, nsp: NsProxy) -> None:
        nsp.put()  # a mount namespace's last reference unmounts its tree (MntNamespace._release)

    def clone(self, parent: Task, flags: int, entry: Any = None) -> Task:
        """clone(2) for kernel callers: returns the new task, already runnable."""
        t = self._copy_process(parent, flags, entry)
        self._wake_new(t)
        return t

    # -- exec ----------------------------------------------------------------------------------------
    def _exec_path(self, t: Task, path: str, argv: list[str], envp: list[str]) -> None:
        """execve: resolve and check the file, then replace the program (kernel/exec.c)."""
        from virtlevels.kernel.vfs import perm

        t.fs.task = t
        f = self.vfs.openat(t.fs, t.creds, path, O_RDONLY)
        try:
            inode = f.inode
            if not inode.is_reg:
                raise KernelError(13, f"{path}: not a regular file")  # EACCES
            perm.check(t.creds, inode, MAY_EXEC, path)
            if self.vfs.security_hooks and f.path is not None:
                self.vfs.security_check(t.creds, "exec", f.path, 0)  # security_bprm_check / FMODE_EXEC
            head = self.vfs.read(f, 256)
            loaded: Any = None
            if head.startswith(SCRIPT_MAGIC):
                name = head[len(SCRIPT_MAGIC):].split(b"\n", 1)[0].strip().decode()
                prog = self.programs.get(name)
                if prog is None:
                    raise KernelError(ENOEXEC, f"{path}: no scripted program {name!r}")
                loader: Callable[[], None] = lambda: self._exec_scripted(t, prog, argv, envp)  # noqa: E731
                loaded = prog
            elif head.startswith(ELF_MAGIC):
                self.vfs.lseek(f, 0, 0)
                image = b"".join(iter(lambda: self.vfs.read(f, 65536), b""))
                loader = self._isa_loader(t, image, path, argv, envp)
                loaded = image
            else:
                raise KernelError(ENOEXEC, f"{path}: unknown executable format")
        finally:
            f.put()
        self._de_thread(t)
        loader()
        t.files.exec()
        t.creds = exec_creds(t.creds, t.nsproxy.user)
        t.comm = posixpath.basename(path)[:15]
        t.argv = list(argv)
        t.envp = list(envp)
        for hook in self.exec_hooks:
            hook(t, path, loaded)
        self._observe(t.process, "exec")

    def _exec_scripted(self, t: Task, prog: Program, argv: list[str], envp: list[str]) -> None:
        self._release_mm(t)
        t.mm = AddressSpace()
        t.kind = "scripted"
        old = t.gen
        # The environment reaches a program that asks for it by an ``envp`` parameter (as
        # main(argc, argv, envp)); any program can also read /proc/self/environ.
        kw = {"envp": list(envp)} if getattr(prog, "wants_envp", False) else {}
        t.gen = prog(*argv[1:], **kw)
        t.started = False
        t.resume = None
        t.pending = None
        if old is not None and old is not t.gen:
            self._close_gen(old)

    def _isa_loader(
        self, t: Task, image: bytes, path: str, argv: list[str], envp: list[str]
    ) -> Callable[[], None]:
        isa = self.isa
        if isa is None:
            raise KernelError(ENOEXEC, f"{path}: ELF programs need a kernel running on a machine")
        return isa.prepare_exec(t, image, path, argv, envp)  # type: ignore[no-any-return]

    def _de_thread(self, t: Task) -> None:
        """execve kills the other threads of the group (de_thread)."""
        for other in list(t.process.threads):
            if other is not t:
                self._exit_thread(other, 0)
        if t.process.leader is not t:
            t.process.leader = t

    @staticmethod
    def _close_gen(gen: Any) -> None:
        try:
            gen.close()
        except Exception:  # noqa: BLE001 - a program's cleanup cannot stop the kernel
            pass

    # -- exit and wait ----------------------------------------------------------------------------------
    def _release_mm(self, t: Task) -> None:
        mm = t.mm
        mm.users -= 1
        if mm.users > 0:
            return
        by: dict[tuple[Any, Any], int] = {}
        for _page, who in mm.resident.items():
            by[who] = by.get(who, 0) + 1
        for (proc, cg), n in by.items():
            cgmem.uncharge_pages(cg, n, "anon", task=proc)
        mm.resident.clear()
        for v in mm.vmas:
            if v.file is not None:
                v.file.put()
        mm.vmas.clear()
        if mm.hw is not None and self.isa is not None:
            self.isa.release_mm(mm)

    def _exit_thread(self, t: Task, status: int) -> None:
        """do_exit for one thread: release what it holds; the last thread ends the process."""
        if t.dead:
            return
        t.dead = True
        t.state = DEAD
        self._leave_cpu(t)
        if t.gen is not None:
            gen, t.gen = t.gen, None
            self._close_gen(gen)
        self._release_mm(t)
        n = self._files_users.get(id(t.files), 1) - 1
        self._files_users[id(t.files)] = n
        if n <= 0:
            t.files.close_all()
            self._files_users.pop(id(t.files), None)
        n = self._fs_users.get(id(t.fs), 1) - 1
        self._fs_users[id(t.fs)] = n
        if n <= 0:
            t.fs.release()
            self._fs_users.pop(id(t.fs), None)
        p = t.process
        p.threads.remove(t)
        if t is not p.leader:
            free_pid(t.tid)
            cgpids.uncharge(getattr(t, "pids_cg", self.cgroups.root), 1)
            self._put_nsproxy(t.nsproxy)
        if not p.threads:
            self._exit_process(p, status, t)

    def _exit_process(self, p: Process, status: int, last: Task) -> None:
        p.exiting = True
        p.exit_code = status
        leader = p.leader
        assert leader is not None
        pid_ns = p.pid.ns
        if p.pid.nr == 1 and pid_ns.child_reaper is leader:
            # pid_namespaces(7): init died; SIGKILL everything else in the namespace.
            for victim in init_exited(pid_ns):
                if victim is not None and not victim.dead:
                    self._kill_process(victim.process, signals.SIGKILL)
            for child in list(p.children):
                if child.zombie:
                    self._reap(child)
        reaper_task = orphan_reaper(p.pid, leader)
        for child in list(p.children):
            p.children.remove(child)
            if reaper_task is None or reaper_task.dead:
                child.parent = None
                if child.zombie:
                    self._reap(child)
                continue
            rp = reaper_task.process
            child.parent = rp
            rp.children.append(child)
            if child.zombie:
                rp.child_wait.wake_all()
        self.cgroups.exit_task(p)
        p.zombie = True
        leader.state = ZOMBIE
        self._observe(p, "exited")
        self._put_nsproxy(leader.nsproxy)
        parent = p.parent
        if parent is None or parent.zombie:
            self.exit_status[p.host_pid] = status
            self._reap(p)
        else:
            parent.child_wait.wake_all()

    def _reap(self, p: Process) -> None:
        """release_task: the zombie is gone; its pid, pid charge and graph node with it."""
        if p.reaped:
            return
        p.reaped = True
        self.exit_status.setdefault(p.host_pid, p.exit_code)
        if p.parent is not None and p in p.parent.children:
            p.parent.children.remove(p)
        leader = p.leader
        assert leader is not None
        free_pid(p.pid)
        self.cgroups.release_task(p)
        uid = leader.creds.uid
        self.uid_procs[uid] = self.uid_procs.get(uid, 1) - 1
        if p in self.processes:
            self.processes.remove(p)
        g = self.world.graph
        if p.graph_id is not None and p.graph_id in g:
            g.remove(p.graph_id)
        leader.state = DEAD

    def do_exit(self, t: Task, code: int) -> None:
        """exit(2) of one thread with an exit code."""
        self._exit_thread(t, (code & 0xFF) << 8)

    def do_exit_group(self, t: Task, status: int) -> None:
        """exit_group(2) / a fatal signal: every thread of the group exits with ``status``."""
        for other in list(t.process.threads):
            if other is not t:
                self._exit_thread(other, status)
        self._exit_thread(t, status)

    def _kill_process(self, p: Process, sig: int) -> None:
        """A fatal signal's default action for the whole thread group."""
        # The core-dump bit (0x80) is never set: RLIMIT_CORE is 0 by default and no core is written.
        status = sig
        for t in list(p.threads):
            if t is self.current and not t.dead:
                t.pending_kill = sig  # acted on when the current system call returns
            else:
                self._exit_thread(t, status)

    def send_signal(self, p: Process, sig: int) -> None:
        if sig == 0 or not signals.terminates(sig) or p.zombie:
            return
        self._kill_process(p, sig)

    def _cgroup_kill(self, proc: Any) -> None:
        if isinstance(proc, Process):
            self.send_signal(proc, signals.SIGKILL)

    def may_signal(self, sender: Task, target: Process) -> bool:
        """kill_ok_by_cred: matching uids, or CAP_KILL in the target's user namespace."""
        tl = target.leader
        if tl is None:
            return False
        s, c = sender.creds, tl.creds
        if s.euid in (c.suid, c.uid) or s.uid in (c.suid, c.uid):
            return True
        return has_cap(s, tl.nsproxy.user, CAP_KILL)

    # -- CPU loop --------------------------------------------------------------------------------------
    current: Task | None = None

    def _wake_new(self, t: Task) -> None:
        cpu = self.sched.least_loaded()
        self.sched.enqueue(cpu, t, self.cgroups.cgroup_of(t.process), wakeup=False, new=True)
        self._kick(cpu)

    def wake(self, t: Task) -> None:
        """A sleeping task becomes runnable (try_to_wake_up)."""
        if t.dead or t.state != SLEEPING:
            return
        t.state = RUNNING
        t.wait_cancel = None
        cpu = self.sched.cpus[t.cpu]
        if cpu.curr is not None and cpu.curr is not t and any(c.curr is None for c in self.sched.cpus):
            cpu = next(c for c in self.sched.cpus if c.curr is None)
        self.sched.enqueue(cpu, t, self.cgroups.cgroup_of(t.process), wakeup=True)
        self._kick(cpu)

    def sleep_on(self, t: Task, queue: WaitQueue) -> None:
        t.state = SLEEPING
        self.sched.dequeue(t)

        def waker() -> None:
            self.wake(t)

        queue.add(waker)
        t.wait_cancel = lambda: queue.remove(waker)

    def change_uid(self, p: Process, old: int, new: int) -> None:
        """The real uid changed: move the process between per-user counts (RLIMIT_NPROC)."""
        if p.leader is None or p.reaped:
            return
        self.uid_procs[old] = self.uid_procs.get(old, 1) - 1
        self.uid_procs[new] = self.uid_procs.get(new, 0) + 1

    def chrooted(self, t: Task) -> bool:
        """Whether the task's root is not its mount namespace's root (create_user_ns refuses then)."""
        from virtlevels.kernel.syscalls.misc import _ns_root

        ns = t.fs.ns
        return ns is not None and t.fs.root.dentry is not _ns_root(ns)

    def _leave_cpu(self, t: Task) -> None:
        if t.sleep_timer is not None:
            self.world.events.cancel(t.sleep_timer)
            t.sleep_timer = None
        if t.wait_cancel is not None:
            t.wait_cancel()
            t.wait_cancel = None
        self.sched.dequeue(t)

    def _kick(self, cpu: Cpu) -> None:
        # A CPU in the middle of its step (tick is _BUSY) schedules its own next event when the
        # step ends: starting a second chain here would run two steps at the same instant.
        if cpu.tick is None:
            cpu.tick = self.world.events.schedule(self.world.now, lambda: self._cpu_tick(cpu))

    def _on_unthrottle(self, cg: Cgroup) -> None:
        for cpu in self.sched.cpus:
            self._kick(cpu)

    def _on_migrate(self, task: Any, src: Cgroup | None, dst: Cgroup) -> None:
        if isinstance(task, Process):
            for t in task.threads:
                self.sched.migrate_cgroup(t, dst)
            if task.leader is not None:
                self._graph_relink(task, task.leader)

    def _cpu_tick(self, cpu: Cpu) -> None:
        cpu.tick = _BUSY
        try:
            self._cpu_step(cpu)
        finally:
            if cpu.tick is _BUSY:
                cpu.tick = None  # idle (or a program crashed): the next wake-up starts a new chain

    def _cpu_step(self, cpu: Cpu) -> None:
        now_ns = self.now_ns()
        t = cpu.curr
        if t is not None and (
            t.dead or t.state != RUNNING or cpu.slice_used >= self.sched.slice_ns or cpu.resched
            or not cgcpu.cpu_runnable(self.cgroups.cgroup_of(t.process), now_ns)
        ):
            cpu.curr = None
            cpu.resched = False
        if cpu.curr is None:
            nxt = self.sched.pick(cpu, now_ns)
            if nxt is None:
                return  # idle until a wake-up or an unthrottle kicks us
            switch = t is not None and nxt is not t
            cpu.curr = nxt
            cpu.slice_used = 0
            if switch:
                self._switch_to(cpu, nxt)
                cpu.tick = self.world.events.schedule(
                    self.world.now + self.c_switch, lambda: self._cpu_tick(cpu)
                )
                return
        t = cpu.curr
        assert t is not None
        cg = self.cgroups.cgroup_of(t.process)
        budget = self.sched.slice_ns - cpu.slice_used
        left = cgcpu.cpu_runtime_left(cg, now_ns)
        if left is not None:
            budget = min(budget, max(left, 1))
        self.current = t
        try:
            cycles, user = self._run_task(t, self.ns_to_cycles(budget))
        finally:
            self.current = None
        if t.pending_kill and not t.dead:
            self.do_exit_group(t, t.pending_kill)
        elif t.exit_after_syscall is not None and not t.dead:
            self._exit_thread(t, t.exit_after_syscall)
        ns = self.cycles_to_ns(cycles)
        cpu.slice_used += ns
        cpu.busy_ns += ns
        p = t.process
        p.cpu_ns += ns
        if user:
            t.user_ns_cycles += cycles
        else:
            t.sys_ns_cycles += cycles
        cgcpu.charge_cpu(cg, ns, user, now_ns)
        if not t.dead:
            self.sched.charge(t, ns)
            soft, hard = p.rlimits[RLIMIT_CPU]
            if p.cpu_ns // 1_000_000_000 >= min(soft, hard):
                # RLIMIT_CPU: SIGXCPU at the soft limit (fatal by default), SIGKILL at the hard one.
                self.send_signal(p, signals.SIGKILL if p.cpu_ns // 1_000_000_000 >= hard else signals.SIGXCPU)
        cpu.tick = self.world.events.schedule(self.world.now + max(cycles, 1), lambda: self._cpu_tick(cpu))

    def _switch_to(self, cpu: Cpu, t: Task) -> None:
        isa = self.isa
        if isa is not None and t.kind == "isa":
            isa.switch_mm(cpu, t)

    def _run_task(self, t: Task, budget: int) -> tuple[int, bool]:
        """Run one step of ``t`` for at most ``budget`` cycles: (cycles used, was it user mode)."""
        if t.kind == "isa":
            return self.isa.run(t, budget)  # type: ignore[no-any-return]
        if t.burn_left:
            n = min(t.burn_left, budget)
            t.burn_left -= n
            return n, True
        op = t.pending
        if op is None:
            gen = t.gen
            if gen is None:
                self.do_exit(t, 0)
                return self.c_syscall, False
            try:
                op = gen.send(t.resume) if t.started else next(gen)
            except StopIteration as stop:
                code = stop.value if isinstance(stop.value, int) else 0
                self.do_exit_group(t, (code & 0xFF) << 8)
                return self.c_syscall, False
            except Exception as exc:
                if self.raise_on_crash:
                    msg = f"scripted program {t.comm!r} (pid {t.host_tid}) raised {exc!r}"
                    raise KernelPanic(msg) from exc
                self.do_exit_group(t, signals.SIGSEGV)
                return self.c_syscall, False
            t.started = True
            t.resume = None
        if isinstance(op, Syscall):
            t.pending = op
            result = self.scripted_syscall(t, op)
            if t.state == SLEEPING and t.pending is not None:
                return self.c_syscall, False  # blocked: the call is retried on wake-up
            t.pending = None
            if t.gen is not None and not t.started:
                return self.c_syscall + self.c_exec, False  # execve succeeded: a new program starts
            t.resume = result
            return self.c_syscall + self._extra, False
        if isinstance(op, Burn):
            t.burn_left = max(0, op.cycles)
            n = min(t.burn_left, budget)
            t.burn_left -= n
            return max(n, 1), True
        if isinstance(op, Touch):
            cycles = self.touch(t, op.addr, op.length, op.write)
            return max(cycles, 1), True
        raise KernelPanic(f"scripted program {t.comm!r} yielded {op!r}, not a system call")

    _extra = 0
    _extra_split: dict[str, int] | None = None

    # -- system call entry -----------------------------------------------------------------------------
    def scripted_syscall(self, t: Task, call: Syscall) -> Any:
        """Marshal a scripted call into the task's user-memory shim, dispatch it, decode the result."""
        mem = ScriptedMemory()
        t.umem = mem  # type: ignore[attr-defined]
        args: list[int] = []
        outs: list[int] = []
        for a in call.args:
            args.append(self._marshal(mem, a, outs))
        try:
            result = self.syscall(t, call.nr, tuple(args), 0)
        except WouldBlock as wb:
            self.sleep_on(t, wb.queue)
            return None
        if call.decode is None:
            return result
        return call.decode(result, [mem.block(o) for o in outs])

    def _marshal(self, mem: ScriptedMemory, a: Any, outs: list[int]) -> int:
        if isinstance(a, bool):
            return int(a)
        if isinstance(a, int):
            return a
        if isinstance(a, (bytes, bytearray)):
            return mem.alloc(bytes(a))
        if isinstance(a, str):
            return mem.alloc(a.encode("utf-8", errors="surrogateescape") + b"\0")
        if isinstance(a, Out):
            addr = mem.alloc(bytes(a.size))
            outs.append(addr)
            return addr
        if isinstance(a, (list, tuple)):
            ptrs = [self._marshal(mem, x, outs) for x in a] + [0]
            return mem.alloc(b"".join(p.to_bytes(4, "little") for p in ptrs))
        if isinstance(a, _IoVec):
            vec = bytearray()
            for b in a.bufs:
                addr = self._marshal(mem, b, outs)
                size = b.size if isinstance(b, Out) else len(b)
                vec += addr.to_bytes(4, "little") + size.to_bytes(4, "little")
            return mem.alloc(bytes(vec))
        if isinstance(a, Obj):
            return mem.put_object(a.value)
        if a is None:
            return 0
        raise KernelPanic(f"cannot pass {a!r} to a system call")

    def syscall(self, t: Task, nr: int, args: tuple[int, ...], ip: int) -> int:
        """System call entry for both kinds of process: filters, handler, accounting, observers.

        Raises WouldBlock when the task must sleep (the caller parks it and retries the call).
        """
        self._extra = 0
        self._extra_split = None
        self._io_delay_ns = 0
        filters = self.syscall_filters
        if filters:
            for f in filters:
                v = f(t, nr, args, ip)
                if v is not None and v.action != "allow":
                    return self._verdict(t, nr, args, v)
        entry = self.syscalls.get(nr)
        if entry is None:
            result = -38  # ENOSYS
        else:
            t.fs.task = t
            try:
                result = entry.handler(self, t, *args[:entry.nargs])
            except KernelError as e:
                result = -e.errno
        if self._io_delay_ns:
            # The IO is done; the caller waits for the device and the io.max throttle, and the
            # call returns when it wakes (blk-throttle holds the bio, io_schedule sleeps).
            delay, self._io_delay_ns = self._io_delay_ns, 0
            if not t.dead:
                self._throttle(t, delay)
        if self.tracing:
            self.trace.append((self.world.now, t.host_tid, entry.name if entry else f"syscall_{nr}", result))
        obs = self._sys_obs
        if obs is not None:
            # The initial pid namespace's pid, as for the process observer.
            obs(kernel=self, pid=t.process.host_pid, nr=nr, args=tuple(args), result=result)
        return result

    def _verdict(self, t: Task, nr: int, args: tuple[int, ...], v: FilterVerdict) -> int:
        if v.action == "log":
            return self._run_unfiltered(t, nr, args)
        if v.action == "kill_thread":
            # seccomp(2) SECCOMP_RET_KILL_THREAD: only the calling thread ends, as if by SIGSYS;
            # the other threads go on (the last thread's status is the process's).
            self.kill_thread(t, signals.SIGSYS)
            return -38
        if v.action in ("kill_process", "trap"):
            self.send_signal(t.process, signals.SIGSYS)
            return -38
        if v.action == "trace":
            return -38
        return -v.errno

    def _run_unfiltered(self, t: Task, nr: int, args: tuple[int, ...]) -> int:
        saved, self.syscall_filters = self.syscall_filters, []
        try:
            return self.syscall(t, nr, args, 0)
        finally:
            self.syscall_filters = saved

    def charge_extra(self, cycles: int, category: str = "kernel") -> None:
        """A handler's cost beyond the syscall round trip (fork, exec, page faults). A
        ``category`` other than "kernel" (the sandbox's "filters") is the same time, reported
        apart in the cycle breakdown (``syscall_charges``) and in ``charged_by_category``."""
        self._extra += cycles
        if category != "kernel":
            split = self._extra_split
            if split is None:
                split = self._extra_split = {}
            split[category] = split.get(category, 0) + cycles
            self.charged_by_category[category] = self.charged_by_category.get(category, 0) + cycles

    def syscall_charges(self) -> list[tuple[str, int]]:
        """The system call just made, in cycles by category: the round trip and the extras in
        "kernel", categorized extras apart. The sum is ``c_syscall + _extra``."""
        split = self._extra_split
        if not split:
            return [("kernel", self.c_syscall + self._extra)]
        return [("kernel", self.c_syscall + self._extra - sum(split.values())), *split.items()]

    def kill_thread(self, t: Task, sig: int) -> None:
        """A fatal signal for one thread only (seccomp's KILL_THREAD): it exits with ``sig`` as its
        status; the last thread's exit ends the process with it."""
        if t.dead:
            return
        if t is self.current:
            t.exit_after_syscall = sig  # acted on when the current system call returns
        else:
            self._exit_thread(t, sig)

    # -- memory ----------------------------------------------------------------------------------------
    def touch(self, t: Task, addr: int, length: int, write: bool) -> int:
        """User access to [addr, addr+length): fault pages in, charging the memory cgroup.

        An access outside a VMA or against its protection kills the process with SIGSEGV; a charge
        over memory.max runs the OOM killer (which may pick this process). Returns cycles spent."""
        from virtlevels.kernel.mm import PROT_READ, PROT_WRITE

        mm = t.mm
        cycles = 0
        if length <= 0:
            return 0
        first, last = addr >> PAGE_SHIFT, (addr + length - 1) >> PAGE_SHIFT
        for page in range(first, last + 1):
            vma = mm.find(page << PAGE_SHIFT)
            need = PROT_WRITE if write else PROT_READ
            if vma is None or not vma.prot & need:
                self.send_signal(t.process, signals.SIGSEGV)
                return cycles
            if page in mm.resident or (page in mm.cow and not write):
                continue
            if not self._fault_in(t, page):
                return cycles
            cycles += self.c_fault
        return cycles

    def _fault_in(self, t: Task, page: int) -> bool:
        """Charge and map one page; False if the task died (OOM) instead."""
        p = t.process
        while True:
            cg = self.cgroups.cgroup_of(p)
            res = cgmem.charge_pages(cg, 1, "anon", task=p)
            if res.ok:
                cgmem.count_fault(cg)
                t.mm.resident[page] = (p, cg)
                t.mm.cow.discard(page)
                if res.delay_ns:
                    # memory.high: the task is throttled (mem_cgroup_handle_over_high sleeps it).
                    self._throttle(t, res.delay_ns)
                return True
            if not res.victims:
                self.send_signal(p, signals.SIGKILL)
                return False
            for v in res.victims:
                if isinstance(v, Process):
                    self._oom_kill(v)
            if t.dead or t.pending_kill:
                return False

    def _oom_kill(self, p: Process) -> None:
        """The OOM killer's SIGKILL. Other victims exit (and free their pages) at once; the
        faulting task itself dies when its access returns."""
        self._kill_process(p, signals.SIGKILL)

    def _throttle(self, t: Task, delay_ns: int) -> None:
        q = WaitQueue()
        self._schedule_ns(delay_ns, q.wake_all)
        t.pending = None
        self.sleep_on(t, q)

    # -- lookups ---------------------------------------------------------------------------------------
    def task_by_vpid(self, viewer: Task, nr: int) -> Task | None:
        return viewer.pid_ns.find_task(nr)  # type: ignore[no-any-return]

    def run(self, until: int | None = None) -> int:
        """Run the World's events (every kernel, machine and device in it) up to cycle ``until``."""
        return self.world.run(until)

    def nofile(self, t: Task) -> int:
        return min(t.process.rlimit(RLIMIT_NOFILE), 1 << 20)

    @property
    def live_processes(self) -> list[Process]:
        return [p for p in self.processes if not p.zombie]
