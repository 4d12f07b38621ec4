"""uname and host names, namespaces (unshare, setns), time (clock_gettime, nanosleep), System V messages."""

from __future__ import annotations

import struct
from typing import Any

from virtlevels.kernel.errno import EBADF, EINVAL, KernelError
from virtlevels.kernel.ns import CLONE_NEWNS, CLONE_NEWUSER, MsqidDs, unshare_namespaces
from virtlevels.kernel.ns import setns as ns_setns
from virtlevels.kernel.ns.common import CLONE_NS_FLAGS
from virtlevels.kernel.ns.time import (
    CLOCK_BOOTTIME,
    CLOCK_MONOTONIC,
    CLOCK_MONOTONIC_COARSE,
    CLOCK_MONOTONIC_RAW,
    CLOCK_PROCESS_CPUTIME_ID,
    CLOCK_REALTIME,
    CLOCK_REALTIME_COARSE,
    CLOCK_THREAD_CPUTIME_ID,
)
from virtlevels.kernel.syscalls import numbers as nr
from virtlevels.kernel.syscalls.table import syscall
from virtlevels.kernel.syscalls.util import mem, s32
from virtlevels.kernel.wait import WaitQueue, WouldBlock

NSEC_PER_SEC = 1_000_000_000
#: CLOCK_REALTIME at boot: a fixed epoch (2024-01-01T00:00:00Z) so runs are reproducible.
REALTIME_AT_BOOT_NS = 1_704_067_200 * NSEC_PER_SEC
UTS_FIELD = 65
_TIMESPEC = struct.Struct("<iI")  # RV32 struct timespec: 32-bit tv_sec, 32-bit tv_nsec


# -- uname ------------------------------------------------------------------------------------------
@syscall(nr.uname, 1)
def sys_uname(k: Any, t: Any, buf: int) -> int:
    u = t.nsproxy.uts.uname()
    fields = (u.sysname, u.nodename, u.release, u.version, u.machine, u.domainname)
    raw = b"".join(f[:UTS_FIELD - 1].ljust(UTS_FIELD, b"\0") for f in fields)
    mem(t).write(buf, raw)
    return 0


def _name_arg(t: Any, p: int, n: int) -> bytes:
    if s32(n) < 0:
        raise KernelError(EINVAL, "negative length")
    if n > 64:
        raise KernelError(EINVAL, "name longer than 64 bytes")
    return mem(t).read(p, n) if n else b""


@syscall(nr.sethostname, 2)
def sys_sethostname(k: Any, t: Any, p: int, n: int) -> int:
    uts = t.nsproxy.uts
    name = _name_arg(t, p, n) if s32(n) <= 64 else b"x" * 65
    uts.sethostname(name, t.creds)
    return 0


@syscall(nr.setdomainname, 2)
def sys_setdomainname(k: Any, t: Any, p: int, n: int) -> int:
    uts = t.nsproxy.uts
    name = _name_arg(t, p, n) if s32(n) <= 64 else b"x" * 65
    uts.setdomainname(name, t.creds)
    return 0


# -- namespaces -----------------------------------------------------------------------------------------
_UNSHARE_OK = CLONE_NS_FLAGS | 0x00000100 | 0x00000200 | 0x00000400 | 0x00000800 | 0x00010000 | 0x00040000


def _install(k: Any, t: Any, creds: Any, nsp: Any, *, new_fs: Any = None) -> None:
    old = t.nsproxy
    t.creds = creds
    t.nsproxy = nsp
    if new_fs is not None:
        _replace_fs(k, t, new_fs)
    k._put_nsproxy(old)
    k._graph_relink(t.process, t)


def _replace_fs(k: Any, t: Any, fs: Any) -> None:
    old = t.fs
    n = k._fs_users.get(id(old), 1) - 1
    k._fs_users[id(old)] = n
    if n <= 0:
        old.release()
        k._fs_users.pop(id(old), None)
    t.fs = fs
    fs.task = t
    k._fs_users[id(fs)] = 1


@syscall(nr.unshare, 1)
def sys_unshare(k: Any, t: Any, flags: int) -> int:
    """unshare(2). CLONE_NEWUSER implies CLONE_THREAD|CLONE_FS, CLONE_NEWNS implies CLONE_FS."""
    if flags & ~_UNSHARE_OK:
        raise KernelError(EINVAL, f"unshare flags {flags:#x}")
    if flags & CLONE_NEWUSER and len(t.process.threads) > 1:
        raise KernelError(EINVAL, "CLONE_NEWUSER in a multithreaded process")
    cg = k.cgroups.cgroup_of(t.process)
    chrooted = t.fs.ns is not None and t.fs.root.dentry is not _ns_root(t.fs.ns)
    creds, nsp = unshare_namespaces(flags, t.creds, t.nsproxy, active_pid_ns=t.pid_ns, cgroup=cg,
                                    chrooted=chrooted)  # fmt: skip
    new_fs = None
    if flags & (CLONE_NEWNS | CLONE_NEWUSER | 0x200) and k._fs_users.get(id(t.fs), 1) > 1:
        new_fs = t.fs.copy()
    if nsp.mnt is not t.nsproxy.mnt:
        fs = new_fs if new_fs is not None else t.fs
        fs.translate(nsp.mnt.take_mapping(), nsp.mnt.tree)
    if flags & 0x400 and k._files_users.get(id(t.files), 1) > 1:
        k._files_users[id(t.files)] -= 1
        t.files = t.files.fork()
        k._files_users[id(t.files)] = 1
    if nsp is t.nsproxy and creds is t.creds:
        nsp.put()
        if new_fs is not None:
            _replace_fs(k, t, new_fs)
        return 0
    _install(k, t, creds, nsp, new_fs=new_fs)
    return 0


def _ns_root(vfs_ns: Any) -> Any:
    from virtlevels.kernel.vfs.mount import Path
    from virtlevels.kernel.vfs.namei import follow_mounts

    return follow_mounts(Path(vfs_ns.root, vfs_ns.root.root)).dentry


@syscall(nr.setns, 2)
def sys_setns(k: Any, t: Any, fd: int, nstype: int) -> int:
    from virtlevels.kernel.ns import MntNamespace, UserNamespace
    from virtlevels.kernel.ns.common import Namespace
    from virtlevels.kernel.vfs.synthetic import MagicObjectOps

    f = t.files.get(s32(fd))
    # An fd opened on /proc/PID/ns/* (the magic link leads to an nsfs-like file on the namespace).
    if not isinstance(f.ops, MagicObjectOps) or not isinstance(f.ops.obj, Namespace):
        raise KernelError(EINVAL, "fd does not refer to a namespace")
    ns = f.ops.obj
    if ns.dead:
        raise KernelError(EBADF, "namespace is gone")
    if isinstance(ns, UserNamespace) and len(t.process.threads) > 1:
        raise KernelError(EINVAL, "joining a user namespace from a multithreaded process")
    if isinstance(ns, MntNamespace) and k._fs_users.get(id(t.fs), 1) > 1:
        raise KernelError(EINVAL, "filesystem context is shared (CLONE_FS)")
    creds, nsp = ns_setns(ns, t.creds, t.nsproxy, nstype=nstype, active_pid_ns=t.pid_ns)
    new_fs = None
    if isinstance(ns, MntNamespace) and ns.tree is not None:
        # setns(2) to a mount namespace: root and cwd become that namespace's root.
        new_fs = k.vfs.root_context(ns.tree, task=t)
        new_fs.umask = t.fs.umask
    _install(k, t, creds, nsp, new_fs=new_fs)
    return 0


# -- time -------------------------------------------------------------------------------------------------
def clock_value(k: Any, t: Any, clockid: int) -> int:
    now = k.now_ns()
    if clockid in (CLOCK_REALTIME, CLOCK_REALTIME_COARSE, 8):
        return REALTIME_AT_BOOT_NS + now
    if clockid in (CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME, 9):
        return int(t.nsproxy.time.to_ns_time(clockid, now))
    if clockid == CLOCK_PROCESS_CPUTIME_ID:
        return int(t.process.cpu_ns)
    if clockid == CLOCK_THREAD_CPUTIME_ID:
        return k.cycles_to_ns(t.user_ns_cycles + t.sys_ns_cycles)  # type: ignore[no-any-return]
    raise KernelError(EINVAL, f"clock {clockid}")


@syscall(nr.clock_gettime, 2)
def sys_clock_gettime(k: Any, t: Any, clockid: int, tp: int) -> int:
    v = clock_value(k, t, s32(clockid))
    sec, nsec = divmod(v, NSEC_PER_SEC)
    mem(t).write(tp, _TIMESPEC.pack((sec + 2**31) % 2**32 - 2**31, nsec))
    return 0


@syscall(nr.nanosleep, 2)
def sys_nanosleep(k: Any, t: Any, req: int, rem: int) -> int:
    """nanosleep(2): sleep on a queue woken by an event on the World's queue; restarted on wake."""
    if t.sleep_until is None:
        sec, nsec = _TIMESPEC.unpack(mem(t).read(req, _TIMESPEC.size))
        if sec < 0 or nsec >= NSEC_PER_SEC:
            raise KernelError(EINVAL, "bad timespec")
        t.sleep_until = k.now_ns() + sec * NSEC_PER_SEC + nsec
    if k.now_ns() >= t.sleep_until:
        t.sleep_until = None
        t.sleep_timer = None
        return 0
    q = WaitQueue()
    t.sleep_timer = k._schedule_ns(t.sleep_until - k.now_ns(), q.wake_all)
    raise WouldBlock(q)


# -- System V message queues -----------------------------------------------------------------------------
IPC_64 = 0x0100
_PERM = struct.Struct("<6IHHII")  # key uid gid cuid cgid mode, seq, pad, unused1, unused2 (36 bytes)
# stime(+high) rtime(+high) ctime(+high) cbytes qnum qbytes lspid lrpid, two unused words
_MSQ = struct.Struct("<13I")


@syscall(nr.msgget, 2)
def sys_msgget(k: Any, t: Any, key: int, flags: int) -> int:
    return int(t.nsproxy.ipc.msgget(s32(key), flags, t.creds))


@syscall(nr.msgsnd, 4)
def sys_msgsnd(k: Any, t: Any, msqid: int, msgp: int, msgsz: int, flags: int) -> int:
    if s32(msgsz) < 0:
        raise KernelError(EINVAL, "negative msgsz")
    m = mem(t)
    mtype = s32(struct.unpack("<I", m.read(msgp, 4))[0])
    if mtype < 1:
        raise KernelError(EINVAL, "mtype must be > 0")
    data = m.read(msgp + 4, msgsz)
    t.nsproxy.ipc.msgsnd(s32(msqid), mtype, data, flags, t.creds, pid=t.process.pid)
    return 0


@syscall(nr.msgrcv, 5)
def sys_msgrcv(k: Any, t: Any, msqid: int, msgp: int, msgsz: int, msgtyp: int, flags: int) -> int:
    mtype, data = t.nsproxy.ipc.msgrcv(s32(msqid), s32(msgsz), s32(msgtyp), flags, t.creds,
                                       pid=t.process.pid)  # fmt: skip
    m = mem(t)
    m.write(msgp, struct.pack("<i", mtype) + data)
    return len(data)


@syscall(nr.msgctl, 3)
def sys_msgctl(k: Any, t: Any, msqid: int, cmd: int, buf: int) -> int:
    from virtlevels.kernel.ns.ipc import IPC_SET, IPC_STAT, MSG_STAT

    cmd &= ~IPC_64
    ipc = t.nsproxy.ipc
    setbuf = None
    if cmd == IPC_SET:
        raw = mem(t).read(buf, _PERM.size + _MSQ.size)
        p = _PERM.unpack_from(raw)
        q = _MSQ.unpack_from(raw, _PERM.size)
        setbuf = MsqidDs(p[0], p[1], p[2], p[3], p[4], p[5], p[6], 0, 0, 0, 0, 0, q[8], 0, 0)
    res = ipc.msgctl(s32(msqid), MSG_STAT if cmd == MSG_STAT else cmd, t.creds, setbuf, pid_ns=t.pid_ns)
    if isinstance(res, MsqidDs):
        out = _PERM.pack(res.key & 0xFFFFFFFF, res.uid, res.gid, res.cuid, res.cgid, res.mode, res.seq,
                         0, 0, 0)  # fmt: skip
        out += _MSQ.pack(res.msg_stime, 0, res.msg_rtime, 0, res.msg_ctime, 0, res.msg_cbytes, res.msg_qnum,
                         res.msg_qbytes, res.msg_lspid, res.msg_lrpid, 0, 0)  # fmt: skip
        if buf:
            mem(t).write(buf, out[:min(len(out), 96)])
        return 0 if cmd == IPC_STAT else int(msqid)
    if isinstance(res, int):
        return res
    # IPC_INFO / MSG_INFO: struct msginfo (8 ints); the result is the highest used index.
    if buf:
        mem(t).write(buf, struct.pack("<8i", res.msgpool, res.msgmap, res.msgmax, res.msgmnb, res.msgmni,
                                      res.msgssz, res.msgtql, res.msgseg))  # fmt: skip
    return max(ipc.queues, default=0)
