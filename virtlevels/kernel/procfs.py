"""procfs and the cgroup2 filesystem, built on the VFS's synthetic filesystems (proc(5), cgroups(7)).

Each proc mount belongs to a pid namespace (the mounter's, as Linux's proc_fill_super takes
task_active_pid_ns): it lists the processes visible there and shows pids in that namespace's
numbering. ``/proc/self`` is the reader. /proc/PID/ns/* are magic links whose text is ``type:[inode]``;
opening one gives a namespace file descriptor for setns(2) (the VFS's nsfs-like magic file).

The cgroup2 filesystem shows the hierarchy from the mounter's cgroup-namespace root; its files
read and write through the cgroup package's text interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.kernel.caps import capset_names  # noqa: F401 - documented helper for readers
from virtlevels.kernel.errno import EINVAL, KernelError
from virtlevels.kernel.vfs.inode import SuperBlock
from virtlevels.kernel.vfs.mount import render_mountinfo, render_mounts
from virtlevels.kernel.vfs.synthetic import SynDir, SynFile, SynSymlink

if TYPE_CHECKING:
    from virtlevels.kernel.cgroup.core import Cgroup
    from virtlevels.kernel.kernel import Kernel
    from virtlevels.kernel.process import Process, Task


def _const(obj: Any) -> Any:
    """A magic link's target function that always leads to ``obj``."""

    def magic(caller: Any) -> Any:
        return obj

    return magic


def _reader_user_ns(caller: Any, k: Kernel) -> Any:
    return caller.nsproxy.user if caller is not None else k.init_nsproxy.user


def register_filesystems(k: Kernel) -> None:
    def make_proc(vfs: Any, fs: Any, creds: Any, source: str, options: dict[str, str]
                  ) -> tuple[SuperBlock, tuple[SuperBlock, ...]]:
        task = fs.task if fs is not None else None
        pid_ns = task.pid_ns if task is not None else k.init_nsproxy.pid_for_children
        root = ProcFs(k, pid_ns).root()
        return vfs.new_synthetic(root, fstype="proc", source=source or "proc",
                                 user_ns=creds.user_ns), ()  # fmt: skip

    def make_cgroup(vfs: Any, fs: Any, creds: Any, source: str, options: dict[str, str]
                    ) -> tuple[SuperBlock, tuple[SuperBlock, ...]]:
        task = fs.task if fs is not None else None
        cgns = task.nsproxy.cgroup if task is not None else k.init_nsproxy.cgroup
        root_cg = cgns.root if cgns.root is not None else k.cgroups.root
        return vfs.new_synthetic(cgroup_dir(k, root_cg), fstype="cgroup2", source=source or "cgroup2",
                                 user_ns=creds.user_ns), ()  # fmt: skip

    k.vfs.register_fs_type("proc", make_proc, userns_mount=True)
    k.vfs.register_fs_type("cgroup2", make_cgroup, userns_mount=True)


# -- /proc --------------------------------------------------------------------------------------------
@attrs.define(eq=False)
class ProcFs:
    k: Kernel
    pid_ns: Any
    _dirs: dict[int, SynDir] = attrs.field(factory=dict)

    def root(self) -> SynDir:
        return SynDir(self._entries, mode=0o555)

    def _entries(self, caller: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "self": SynSymlink(self._self_link),
            "thread-self": SynSymlink(self._thread_self_link),
            "mounts": SynSymlink("self/mounts"),
            "uptime": SynFile(read=self._uptime),
            "version": SynFile(read=lambda c: b"Linux version 6.6.0-virtlevels (virtlevels) #1 SMP\n"),
            "sys": SynDir({"kernel": SynDir(self._sys_kernel)}),
        }
        live: set[int] = set()
        for nr in sorted(self.pid_ns.pids):
            pid = self.pid_ns.pids[nr]
            t = pid.task
            if t is None or t.process.pid is not pid or t.process.reaped:
                continue
            live.add(id(t.process))
            d = self._dirs.get(id(t.process))
            if d is None:
                d = self._dirs[id(t.process)] = pid_dir(self.k, t.process, self.pid_ns)
            out[str(nr)] = d
        for key in [k for k in self._dirs if k not in live]:
            del self._dirs[key]
        return out

    def _self_link(self, caller: Any) -> str:
        if caller is None:
            return "1"
        nr = caller.process.pid.nr_in(self.pid_ns)
        if nr == 0:
            raise KernelError(2, "the reader is not visible in this proc's pid namespace")  # ENOENT
        return str(nr)

    def _thread_self_link(self, caller: Any) -> str:
        if caller is None:
            return "1/task/1"
        return f"{caller.process.pid.nr_in(self.pid_ns)}/task/{caller.tid.nr_in(self.pid_ns)}"

    def _uptime(self, caller: Any) -> bytes:
        ns = self.k.now_ns()
        if caller is not None:
            ns = caller.nsproxy.time.to_ns_time(7, ns)  # CLOCK_BOOTTIME in the reader's time namespace
        cs = ns // 10_000_000
        return f"{cs // 100}.{cs % 100:02d} 0.00\n".encode()

    def _sys_kernel(self, caller: Any) -> dict[str, Any]:
        def uts(caller: Any) -> Any:
            return caller.nsproxy.uts if caller is not None else self.k.init_nsproxy.uts

        def write_hostname(caller: Any, data: bytes) -> None:
            creds = caller.creds if caller is not None else self.k.init_creds
            uts(caller).sethostname(data.rstrip(b"\n"), creds)

        return {
            "hostname": SynFile(read=lambda c: uts(c).nodename + b"\n", write=write_hostname),
            "ostype": SynFile(read=lambda c: uts(c).sysname + b"\n"),
            "osrelease": SynFile(read=lambda c: uts(c).release + b"\n"),
            "ns_last_pid": SynFile(read=lambda c: f"{self.pid_ns.last_pid}\n".encode()),
            "pid_max": SynFile(read=lambda c: f"{self.pid_ns.pid_max}\n".encode()),
        }


def _caps_hex(v: int) -> str:
    return f"{v:016x}"


def status_text(k: Kernel, p: Process, pid_ns: Any, reader: Any) -> str:
    """/proc/PID/status (fs/proc/array.c, proc_pid_status), the lines modelled."""
    t = p.leader
    assert t is not None
    uns = _reader_user_ns(reader, k)
    c = t.creds
    u = [uns.from_kuid_munged(x) for x in (c.uid, c.euid, c.suid, c.fsuid)]
    g = [uns.from_kgid_munged(x) for x in (c.gid, c.egid, c.sgid, c.fsgid)]
    ppid = 0
    if p.parent is not None and p.pid.nr_in(pid_ns) != 1:
        ppid = p.parent.pid.nr_in(pid_ns)
    nspid = p.pid.nspid_from(pid_ns)
    state = {"R": "R (running)", "S": "S (sleeping)", "Z": "Z (zombie)", "X": "X (dead)"}
    st = "Z (zombie)" if p.zombie else state.get(t.state, "R (running)")
    ns_text = "\t".join(str(n) for n in nspid)
    lines = [
        f"Name:\t{t.comm}",
        f"Umask:\t{t.fs.umask:04o}",
        f"State:\t{st}",
        f"Tgid:\t{p.pid.nr_in(pid_ns)}",
        "Ngid:\t0",
        f"Pid:\t{p.pid.nr_in(pid_ns)}",
        f"PPid:\t{ppid}",
        "TracerPid:\t0",
        "Uid:\t" + "\t".join(map(str, u)),
        "Gid:\t" + "\t".join(map(str, g)),
        f"FDSize:\t{max(64, len(t.files.fds))}",
        "Groups:\t" + " ".join(str(uns.from_kgid_munged(x)) for x in c.groups),
        f"NStgid:\t{ns_text}",
        f"NSpid:\t{ns_text}",
        f"NSpgid:\t{ns_text}",
        f"NSsid:\t{ns_text}",
        f"VmRSS:\t{len(t.mm.resident) * 4} kB",
        f"Threads:\t{len(p.threads)}",
        f"CapInh:\t{_caps_hex(c.cap_inheritable)}",
        f"CapPrm:\t{_caps_hex(c.cap_permitted)}",
        f"CapEff:\t{_caps_hex(c.cap_effective)}",
        f"CapBnd:\t{_caps_hex(c.cap_bounding)}",
        f"CapAmb:\t{_caps_hex(c.cap_ambient)}",
        f"NoNewPrivs:\t{int(c.no_new_privs)}",
        f"Seccomp:\t{getattr(t.seccomp, 'mode', 0) if t.seccomp is not None else 0}",
    ]
    return "\n".join(lines) + "\n"


def limits_text(p: Process) -> str:
    """/proc/PID/limits (fs/proc/base.c proc_pid_limits)."""
    from virtlevels.kernel.process import RLIM_INFINITY

    names = ("Max cpu time", "Max file size", "Max data size", "Max stack size", "Max core file size",
             "Max resident set", "Max processes", "Max open files", "Max locked memory", "Max address space",
             "Max file locks", "Max pending signals", "Max msgqueue size", "Max nice priority",
             "Max realtime priority", "Max realtime timeout")  # fmt: skip
    units = ("seconds", "bytes", "bytes", "bytes", "bytes", "bytes", "processes", "files", "bytes", "bytes",
             "locks", "signals", "bytes", "", "", "us")  # fmt: skip
    out = [f"{'Limit':<25} {'Soft Limit':<20} {'Hard Limit':<20} {'Units':<10}"]
    for i, (name, unit) in enumerate(zip(names, units, strict=True)):
        soft, hard = p.rlimits[i]
        s = "unlimited" if soft == RLIM_INFINITY else str(soft)
        h = "unlimited" if hard == RLIM_INFINITY else str(hard)
        out.append(f"{name:<25} {s:<20} {h:<20} {unit:<10}".rstrip() + " ")
    return "\n".join(out) + "\n"


def pid_dir(k: Kernel, p: Process, pid_ns: Any) -> SynDir:
    def leader() -> Task:
        assert p.leader is not None
        return p.leader

    def status(caller: Any) -> bytes:
        return status_text(k, p, pid_ns, caller).encode()

    def cgroup(caller: Any) -> bytes:
        cg = k.cgroups.task_cgroup.get(p)
        if cg is None:
            return b""
        cgns = caller.nsproxy.cgroup if caller is not None else k.init_nsproxy.cgroup
        return cgns.proc_cgroup_line(cg).encode()

    def mounts(caller: Any) -> bytes:
        fs = leader().fs
        if fs.ns is None:
            return b""
        return render_mounts(fs.ns, fs.root.mnt, fs.root.dentry).encode()

    def mountinfo(caller: Any) -> bytes:
        fs = leader().fs
        if fs.ns is None:
            return b""
        return render_mountinfo(fs.ns, fs.root.mnt, fs.root.dentry).encode()

    def cmdline(caller: Any) -> bytes:
        return b"".join(a.encode() + b"\0" for a in leader().argv)

    def environ(caller: Any) -> bytes:
        return b"".join(e.encode(errors="surrogateescape") + b"\0" for e in leader().envp)

    def uid_map(caller: Any) -> bytes:
        return leader().nsproxy.user.read_uid_map(_reader_user_ns(caller, k)).encode()

    def gid_map(caller: Any) -> bytes:
        return leader().nsproxy.user.read_gid_map(_reader_user_ns(caller, k)).encode()

    def creds_of(caller: Any) -> Any:
        return caller.creds if caller is not None else k.init_creds

    def write_uid_map(caller: Any, data: bytes) -> None:
        leader().nsproxy.user.write_uid_map(data.decode(), creds_of(caller))

    def write_gid_map(caller: Any, data: bytes) -> None:
        leader().nsproxy.user.write_gid_map(data.decode(), creds_of(caller))

    def setgroups(caller: Any) -> bytes:
        return leader().nsproxy.user.read_setgroups().encode()

    def write_setgroups(caller: Any, data: bytes) -> None:
        leader().nsproxy.user.write_setgroups(data.decode(), creds_of(caller))

    def timens(caller: Any) -> bytes:
        return leader().nsproxy.time_for_children.read_offsets().encode()

    def write_timens(caller: Any, data: bytes) -> None:
        now = k.now_ns()
        leader().nsproxy.time_for_children.write_offsets(data.decode(), creds_of(caller),
                                                          monotonic_now=now, boottime_now=now)  # fmt: skip

    def comm(caller: Any) -> bytes:
        return leader().comm.encode() + b"\n"

    def write_comm(caller: Any, data: bytes) -> None:
        leader().comm = data.rstrip(b"\n").decode(errors="replace")[:15]

    def ns_entries(caller: Any) -> dict[str, Any]:
        t = leader()
        if t.dead:
            return {}
        # proc(5)/nsfs magic links: readlink shows "type:[inode]", open gives the namespace itself.
        return {name: SynSymlink(ns.proc_link(), magic=_const(ns))
                for name, ns in t.nsproxy.proc_ns(t.pid_ns).items()}  # fmt: skip

    def fd_entries(caller: Any) -> dict[str, Any]:
        t = leader()
        out: dict[str, Any] = {}
        for fd, f in sorted(t.files.fds.items()):
            out[str(fd)] = SynSymlink(_fd_target(k, f))
        return out

    def entries(caller: Any) -> dict[str, Any]:
        # proc(5): the files of /proc/PID are owned by the process's effective uid and gid.
        c = leader().creds
        return {name: attrs.evolve(node, uid=c.euid, gid=c.egid) for name, node in files.items()}

    def get(caller: Any, name: str) -> Any:
        node = files.get(name)
        if node is None:
            return None
        c = leader().creds
        return attrs.evolve(node, uid=c.euid, gid=c.egid)

    files: dict[str, Any] = {
        "status": SynFile(read=status),
        "stat": SynFile(read=lambda c: _stat_line(k, p, pid_ns).encode()),
        "comm": SynFile(read=comm, write=write_comm),
        "cmdline": SynFile(read=cmdline),
        "environ": SynFile(read=environ, mode=0o400),  # proc(5): readable by the owner only
        "cgroup": SynFile(read=cgroup),
        "mounts": SynFile(read=mounts),
        "mountinfo": SynFile(read=mountinfo),
        "limits": SynFile(read=lambda c: limits_text(p).encode()),
        "uid_map": SynFile(read=uid_map, write=write_uid_map),
        "gid_map": SynFile(read=gid_map, write=write_gid_map),
        "setgroups": SynFile(read=setgroups, write=write_setgroups),
        "timens_offsets": SynFile(read=timens, write=write_timens),
        "ns": SynDir(ns_entries, mode=0o511),
        "fd": SynDir(fd_entries, mode=0o500),
    }
    return SynDir(entries, mode=0o555, get=get)


def _fd_target(k: Kernel, f: Any) -> str:
    if f.path is None:
        return f"pipe:[{f.inode.ino}]"
    from virtlevels.kernel.vfs.mount import d_path

    text, _ok = d_path(f.path.mnt, f.path.dentry, f.path.mnt, f.path.mnt.root)
    return text


def _stat_line(k: Kernel, p: Process, pid_ns: Any) -> str:
    """/proc/PID/stat, the first fields (pid, comm, state, ppid)."""
    t = p.leader
    assert t is not None
    ppid = p.parent.pid.nr_in(pid_ns) if p.parent is not None else 0
    st = "Z" if p.zombie else t.state
    return f"{p.pid.nr_in(pid_ns)} ({t.comm}) {st} {ppid}\n"


# -- cgroup2 ----------------------------------------------------------------------------------------------
def cgroup_dir(k: Kernel, cg: Cgroup) -> SynDir:
    h = k.cgroups

    def entries(caller: Any) -> dict[str, Any]:
        if cg.removed:
            return {}
        out: dict[str, Any] = {}
        for name in h.list_files(cg):
            out[name] = _cg_file(k, cg, name)
        for name in sorted(cg.children):
            out[name] = cgroup_dir(k, cg.children[name])
        return out

    def get(caller: Any, name: str) -> Any:
        if cg.removed:
            return None
        child = cg.children.get(name)
        if child is not None:
            return cgroup_dir(k, child)
        return _cg_file(k, cg, name) if h.has_file(cg, name) else None

    def mkdir(caller: Any, name: str, mode: int) -> None:
        h.mkdir(cg, name, creds=caller.creds if caller is not None else None)

    def rmdir(caller: Any, name: str) -> None:
        child = cg.children.get(name)
        if child is None:
            raise KernelError(2, name)
        h.rmdir(child, creds=caller.creds if caller is not None else None)

    return SynDir(entries, mode=0o755, uid=cg.uid, gid=cg.gid, mkdir=mkdir, rmdir=rmdir, get=get)


def _cg_file(k: Kernel, cg: Cgroup, name: str) -> SynFile:
    h = k.cgroups
    uid, gid = h.file_owner(cg, name)
    writable = not name.endswith((".current", ".stat", ".events", ".events.local", ".controllers",
                                  ".peak")) or name == "memory.peak"  # fmt: skip

    def read(caller: Any) -> bytes:
        pid_ns = caller.pid_ns if caller is not None else None
        return h.read_file(cg, name, pid_ns=pid_ns).encode()

    def write(caller: Any, data: bytes) -> None:
        if caller is None:
            creds, task, pid_ns, cgns = k.init_creds, None, None, None
        else:
            creds, task, pid_ns, cgns = caller.creds, caller.process, caller.pid_ns, caller.nsproxy.cgroup
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise KernelError(EINVAL, "not text") from None
        h.write_file(cg, name, text, creds, task=task, pid_ns=pid_ns, cgroup_ns=cgns)

    return SynFile(read=read, write=write if writable else None, mode=0o644 if writable else 0o444,
                   uid=uid, gid=gid)  # fmt: skip
