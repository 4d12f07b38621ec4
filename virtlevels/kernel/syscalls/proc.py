"""Process system calls: ids, credentials, clone/execve/exit/wait4, signals, prctl, capabilities, rlimits."""

from __future__ import annotations

import struct
from typing import Any

from virtlevels.kernel import signals
from virtlevels.kernel.caps import (
    ALL_CAPS,
    CAP_LAST_CAP,
    CAP_SETGID,
    CAP_SETPCAP,
    CAP_SETUID,
    CAP_SYS_RESOURCE,
)
from virtlevels.kernel.errno import ECHILD, EFAULT, EINVAL, EPERM, ESRCH, KernelError
from virtlevels.kernel.ns.user import has_cap
from virtlevels.kernel.process import RLIM_INFINITY, RLIM_NLIMITS, RLIMIT_NOFILE
from virtlevels.kernel.syscalls import numbers as nr
from virtlevels.kernel.syscalls.table import syscall
from virtlevels.kernel.syscalls.util import mem, s32, to_kgid, to_kuid
from virtlevels.kernel.usermem import read_cstr, read_path, read_ptr_array, write_i32, write_u32

# include/uapi/linux/wait.h
WNOHANG = 0x00000001
WUNTRACED = 0x00000002
WEXITED = 0x00000004
WCONTINUED = 0x00000008
WNOTHREAD = 0x20000000
WALL = 0x40000000
WCLONE = 0x80000000
# include/uapi/linux/prctl.h
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_GET_NAME = 16
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_LOWER = 3
PR_CAP_AMBIENT_CLEAR_ALL = 4
NGROUPS_MAX = 65536  # include/uapi/linux/limits.h
# include/uapi/linux/capability.h
LINUX_CAPABILITY_VERSION_1 = 0x19980330
LINUX_CAPABILITY_VERSION_2 = 0x20071026
LINUX_CAPABILITY_VERSION_3 = 0x20080522
NR_OPEN = 1024 * 1024  # sysctl_nr_open default
RLIM32_INFINITY = 0xFFFFFFFF


def _vpid(t: Any, pid: Any) -> int:
    return int(pid.nr_in(t.pid_ns))


# -- ids ----------------------------------------------------------------------------------------------
@syscall(nr.getpid, 0)
def sys_getpid(k: Any, t: Any) -> int:
    return _vpid(t, t.process.pid)


@syscall(nr.gettid, 0)
def sys_gettid(k: Any, t: Any) -> int:
    return _vpid(t, t.tid)


@syscall(nr.getppid, 0)
def sys_getppid(k: Any, t: Any) -> int:
    parent = t.process.parent
    # A parent outside the caller's pid namespace reads as 0 (pid_namespaces(7)).
    return 0 if parent is None else _vpid(t, parent.pid)


@syscall(nr.getuid, 0)
def sys_getuid(k: Any, t: Any) -> int:
    return int(t.nsproxy.user.from_kuid_munged(t.creds.uid))


@syscall(nr.geteuid, 0)
def sys_geteuid(k: Any, t: Any) -> int:
    return int(t.nsproxy.user.from_kuid_munged(t.creds.euid))


@syscall(nr.getgid, 0)
def sys_getgid(k: Any, t: Any) -> int:
    return int(t.nsproxy.user.from_kgid_munged(t.creds.gid))


@syscall(nr.getegid, 0)
def sys_getegid(k: Any, t: Any) -> int:
    return int(t.nsproxy.user.from_kgid_munged(t.creds.egid))


@syscall(nr.setuid, 1)
def sys_setuid(k: Any, t: Any, uid: int) -> int:
    """setuid(2) with cap_task_fix_setuid's capability effects (capabilities(7))."""
    kuid = to_kuid(t, uid)
    c = t.creds.copy()
    old = (c.uid, c.euid, c.suid)
    if has_cap(c, t.nsproxy.user, CAP_SETUID):
        c.uid = c.euid = c.suid = c.fsuid = kuid
    elif kuid in (c.uid, c.suid):
        c.euid = c.fsuid = kuid
    else:
        raise KernelError(EPERM, "setuid needs CAP_SETUID")
    if c.uid != old[0]:
        k.change_uid(t.process, old[0], c.uid)
    cap_emulate_setxuid(c, old, t.nsproxy.user)
    t.creds = c
    return 0


def cap_emulate_setxuid(c: Any, old: tuple[int, int, int], user_ns: Any) -> None:
    """security/commoncap.c cap_emulate_setxuid: "root" is uid 0 *of the caller's user namespace*
    (make_kuid(user_ns, 0)), so root in a new user namespace keeps its capabilities at setuid(0).

    capabilities(7) "Effect of user ID changes on capabilities": leaving root for all of the real,
    effective and saved uids clears permitted, effective and ambient (unless SECBIT_KEEP_CAPS
    keeps permitted); the effective uid leaving root clears effective; returning to root raises
    effective to permitted.
    """
    root = user_ns.make_kuid(0)
    if root is None:
        root = -1  # no mapping for 0: nobody is root here
    if root in old and root not in (c.uid, c.euid, c.suid):
        if not c.keep_caps:
            c.cap_permitted = c.cap_effective = 0
        c.cap_ambient = 0
    if old[1] == root and c.euid != root:
        c.cap_effective = 0
    elif old[1] != root and c.euid == root:
        c.cap_effective = c.cap_permitted


@syscall(nr.setgid, 1)
def sys_setgid(k: Any, t: Any, gid: int) -> int:
    kgid = to_kgid(t, gid)
    c = t.creds.copy()
    if has_cap(c, t.nsproxy.user, CAP_SETGID):
        c.gid = c.egid = c.sgid = c.fsgid = kgid
    elif kgid in (c.gid, c.sgid):
        c.egid = c.fsgid = kgid
    else:
        raise KernelError(EPERM, "setgid needs CAP_SETGID")
    t.creds = c
    return 0


@syscall(nr.getgroups, 2)
def sys_getgroups(k: Any, t: Any, size: int, listp: int) -> int:
    """getgroups(2): the supplementary gids as the caller's user namespace sees them."""
    size = s32(size)
    if size < 0:
        raise KernelError(EINVAL, "negative size")
    groups = t.creds.groups
    if size == 0:
        return len(groups)
    if size < len(groups):
        raise KernelError(EINVAL, "list too small for the supplementary groups")
    uns = t.nsproxy.user
    if groups:
        mem(t).write(listp, struct.pack(f"<{len(groups)}I", *(uns.from_kgid_munged(g) for g in groups)))
    return len(groups)


@syscall(nr.setgroups, 2)
def sys_setgroups(k: Any, t: Any, size: int, listp: int) -> int:
    """setgroups(2): CAP_SETGID in the caller's user namespace, which must allow it
    (user_namespaces(7): /proc/PID/setgroups "allow" and gid_map written); gids must be mapped."""
    size = s32(size)
    if size < 0 or size > NGROUPS_MAX:
        raise KernelError(EINVAL, f"setgroups size {size}")
    uns = t.nsproxy.user
    gids = struct.unpack(f"<{size}I", mem(t).read(listp, 4 * size)) if size else ()
    if not (has_cap(t.creds, uns, CAP_SETGID) and uns.may_setgroups()):
        raise KernelError(EPERM, "setgroups needs CAP_SETGID and setgroups allowed in the user namespace")
    kgids = [to_kgid(t, g) for g in gids]
    c = t.creds.copy()
    c.groups = tuple(sorted(set(kgids)))  # groups_sort: kept sorted for in_group_p's search
    t.creds = c
    return 0


# -- clone / execve / exit / wait ---------------------------------------------------------------------
@syscall(nr.clone, 5)
def sys_clone(k: Any, t: Any, flags: int, newsp: int, ptid: int, tls: int, ctid: int) -> int:
    from virtlevels.kernel.kernel import CLONE_CHILD_CLEARTID, CLONE_PARENT_SETTID

    entry: Any = None
    if t.kind == "scripted":
        if newsp == 0:
            raise KernelError(EINVAL, "a scripted clone needs the child's entry function (scripted.clone)")
        entry = mem(t).object_at(newsp)  # type: ignore[attr-defined]
    k.charge_extra(k.c_fork)
    child = k._copy_process(t, flags, entry)
    if t.kind == "isa":
        k.isa.clone_context(t, child, newsp, tls, flags)
    vtid = _vpid(t, child.tid)
    if flags & CLONE_PARENT_SETTID and ptid:
        write_i32(mem(t), ptid, vtid)
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = ctid
    k._wake_new(child)
    return vtid


@syscall(nr.execve, 3)
def sys_execve(k: Any, t: Any, pathp: int, argvp: int, envpp: int) -> int:
    m = mem(t)
    path = read_path(m, pathp)
    argv = [a.decode(errors="surrogateescape") for a in read_ptr_array(m, argvp)]
    envp = [e.decode(errors="surrogateescape") for e in read_ptr_array(m, envpp)]
    k._exec_path(t, path, argv, envp)
    return 0


@syscall(nr.exit, 1)
def sys_exit(k: Any, t: Any, code: int) -> int:
    k.do_exit(t, code)
    return 0


@syscall(nr.exit_group, 1)
def sys_exit_group(k: Any, t: Any, code: int) -> int:
    k.do_exit_group(t, (code & 0xFF) << 8)
    return 0


@syscall(nr.set_tid_address, 1)
def sys_set_tid_address(k: Any, t: Any, addr: int) -> int:
    t.clear_child_tid = addr
    return _vpid(t, t.tid)


@syscall(nr.wait4, 4)
def sys_wait4(k: Any, t: Any, pid: int, statusp: int, options: int, rusage: int) -> int:
    """wait4(2): reap a zombie child; process groups are not modelled (0 and < -1 mean any child)."""
    pid = s32(pid)
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE):
        raise KernelError(EINVAL, f"wait4 options {options:#x}")
    me = t.process
    if pid > 0:
        target = t.pid_ns.find_pid(pid)
        kids = [c for c in me.children if target is not None and c.pid is target]
    else:
        kids = list(me.children)
    if not kids:
        raise KernelError(ECHILD, "no such child")
    for c in kids:
        if c.zombie and not c.reaped:
            status = c.exit_code
            vpid = _vpid(t, c.pid)
            if statusp:
                write_i32(mem(t), statusp, status)
            k._reap(c)
            return vpid
    if options & WNOHANG:
        return 0
    from virtlevels.kernel.wait import WouldBlock

    raise WouldBlock(me.child_wait)


# -- signals --------------------------------------------------------------------------------------------
def _deliver(k: Any, t: Any, target: Any, sig: int) -> None:
    if not k.may_signal(t, target):
        raise KernelError(EPERM, "not permitted to signal")
    # pid_namespaces(7): a namespace's init gets only the signals it has handlers for from inside
    # its namespace (and SIGKILL/SIGSTOP only from an ancestor namespace). No handlers here.
    leader = target.leader
    if target.pid.nr == 1 and leader is not None and leader.pid_ns.is_ancestor_of(t.pid_ns):
        return
    k.send_signal(target, sig)


@syscall(nr.kill, 2)
def sys_kill(k: Any, t: Any, pid: int, sig: int) -> int:
    pid, sig = s32(pid), s32(sig)
    if not signals.valid(sig):
        raise KernelError(EINVAL, f"signal {sig}")
    if pid == -1:
        # Every process the caller may signal, except init of its namespace and itself.
        hit = 0
        for task in t.pid_ns.tasks():
            p = task.process
            if task is not p.leader or p is t.process or p.zombie or p.pid.nr_in(t.pid_ns) == 1:
                continue
            if k.may_signal(t, p):
                k.send_signal(p, sig)
                hit += 1
        if not hit:
            raise KernelError(ESRCH, "no process to signal")
        return 0
    nr_ = abs(pid) if pid != 0 else _vpid(t, t.process.pid)
    target_task = t.pid_ns.find_task(nr_)
    if target_task is None or target_task.process.reaped:
        raise KernelError(ESRCH, f"no process {nr_}")
    _deliver(k, t, target_task.process, sig)
    return 0


@syscall(nr.tgkill, 3)
def sys_tgkill(k: Any, t: Any, tgid: int, tid: int, sig: int) -> int:
    tgid, tid, sig = s32(tgid), s32(tid), s32(sig)
    if tgid <= 0 or tid <= 0 or not signals.valid(sig):
        raise KernelError(EINVAL, "bad tgid, tid or signal")
    target = t.pid_ns.find_task(tid)
    if target is None or target.dead or _vpid(t, target.process.pid) != tgid:
        raise KernelError(ESRCH, f"no thread {tid} in {tgid}")
    _deliver(k, t, target.process, sig)
    return 0


@syscall(nr.tkill, 2)
def sys_tkill(k: Any, t: Any, tid: int, sig: int) -> int:
    tid, sig = s32(tid), s32(sig)
    if tid <= 0 or not signals.valid(sig):
        raise KernelError(EINVAL, "bad tid or signal")
    target = t.pid_ns.find_task(tid)
    if target is None or target.dead:
        raise KernelError(ESRCH, f"no thread {tid}")
    _deliver(k, t, target.process, sig)
    return 0


# -- prctl, capabilities ----------------------------------------------------------------------------------
@syscall(nr.prctl, 5)
def sys_prctl(k: Any, t: Any, option: int, a2: int, a3: int, a4: int, a5: int) -> int:
    if option == PR_SET_NAME:
        try:
            raw = read_cstr(mem(t), a2, 16)
        except KernelError:
            raw = mem(t).read(a2, 16)  # no NUL within 16 bytes: the name is truncated to 15
        t.comm = raw[:15].decode(errors="replace")
        return 0
    if option == PR_GET_NAME:
        name = t.comm.encode()[:15]
        mem(t).write(a2, name + bytes(16 - len(name)))
        return 0
    if option == PR_SET_NO_NEW_PRIVS:
        if a2 != 1 or a3 or a4 or a5:
            raise KernelError(EINVAL, "PR_SET_NO_NEW_PRIVS takes 1")
        c = t.creds.copy()
        c.no_new_privs = True
        t.creds = c
        return 0
    if option == PR_GET_NO_NEW_PRIVS:
        if a2 or a3 or a4 or a5:
            raise KernelError(EINVAL, "PR_GET_NO_NEW_PRIVS takes no arguments")
        return int(t.creds.no_new_privs)
    if option in (PR_SET_SECCOMP, PR_GET_SECCOMP):
        provider = k.seccomp_provider
        if provider is None:
            raise KernelError(EINVAL, "seccomp is provided by the sandbox plugin, which is not loaded")
        return int(provider(k, t, "prctl", option, (a2, a3, a4, a5)))
    if option in (PR_CAPBSET_READ, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_SET_KEEPCAPS, PR_GET_KEEPCAPS):
        return _prctl_caps(t, option, a2, a3, a4, a5)
    if option == PR_GET_DUMPABLE:
        return 1
    if option in (PR_SET_DUMPABLE, PR_SET_PDEATHSIG):
        return 0
    raise KernelError(EINVAL, f"prctl option {option}")


def _cap_valid(cap: int) -> bool:
    return 0 <= cap <= CAP_LAST_CAP


def _prctl_caps(t: Any, option: int, a2: int, a3: int, a4: int, a5: int) -> int:
    """cap_task_prctl (security/commoncap.c) for the bounding and ambient sets and keep-caps."""
    c = t.creds
    if option == PR_CAPBSET_READ:
        if not _cap_valid(a2):
            raise KernelError(EINVAL, f"capability {a2}")
        return c.cap_bounding >> a2 & 1
    if option == PR_CAPBSET_DROP:
        # cap_prctl_drop: CAP_SETPCAP in the caller's user namespace.
        if not has_cap(c, t.nsproxy.user, CAP_SETPCAP):
            raise KernelError(EPERM, "PR_CAPBSET_DROP needs CAP_SETPCAP")
        if not _cap_valid(a2):
            raise KernelError(EINVAL, f"capability {a2}")
        n = c.copy()
        n.cap_bounding &= ~(1 << a2)
        t.creds = n
        return 0
    if option == PR_GET_KEEPCAPS:
        return int(c.keep_caps)
    if option == PR_SET_KEEPCAPS:
        if a2 > 1:
            raise KernelError(EINVAL, "PR_SET_KEEPCAPS takes 0 or 1")
        n = c.copy()
        n.keep_caps = bool(a2)
        t.creds = n
        return 0
    # PR_CAP_AMBIENT (capabilities(7) "Ambient capability set").
    if a4 or a5:
        raise KernelError(EINVAL, "PR_CAP_AMBIENT: unused arguments must be 0")
    if a2 == PR_CAP_AMBIENT_CLEAR_ALL:
        if a3:
            raise KernelError(EINVAL, "PR_CAP_AMBIENT_CLEAR_ALL takes no capability")
        n = c.copy()
        n.cap_ambient = 0
        t.creds = n
        return 0
    if not _cap_valid(a3):
        raise KernelError(EINVAL, f"capability {a3}")
    bit = 1 << a3
    if a2 == PR_CAP_AMBIENT_IS_SET:
        return int(bool(c.cap_ambient & bit))
    if a2 == PR_CAP_AMBIENT_LOWER:
        n = c.copy()
        n.cap_ambient &= ~bit
        t.creds = n
        return 0
    if a2 == PR_CAP_AMBIENT_RAISE:
        # Only a capability both permitted and inheritable may be raised.
        if not c.cap_permitted & bit or not c.cap_inheritable & bit:
            raise KernelError(EPERM, "ambient capability must be permitted and inheritable")
        n = c.copy()
        n.cap_ambient |= bit
        t.creds = n
        return 0
    raise KernelError(EINVAL, f"PR_CAP_AMBIENT operation {a2}")


@syscall(nr.seccomp, 3)
def sys_seccomp(k: Any, t: Any, op: int, flags: int, args: int) -> int:
    provider = k.seccomp_provider
    if provider is None:
        raise KernelError(EINVAL, "seccomp is provided by the sandbox plugin, which is not loaded")
    return int(provider(k, t, "seccomp", op, (flags, args)))


def _cap_header(t: Any, hdrp: int) -> tuple[int, int]:
    if hdrp == 0:
        raise KernelError(EFAULT, "NULL header")
    version, pid = struct.unpack("<Ii", mem(t).read(hdrp, 8))
    return version, pid


def _cap_words(version: int) -> int:
    return 1 if version == LINUX_CAPABILITY_VERSION_1 else 2


@syscall(nr.capget, 2)
def sys_capget(k: Any, t: Any, hdrp: int, datap: int) -> int:
    version, pid = _cap_header(t, hdrp)
    if version not in (LINUX_CAPABILITY_VERSION_1, LINUX_CAPABILITY_VERSION_2, LINUX_CAPABILITY_VERSION_3):
        # cap_validate_magic: tell the caller the preferred version.
        write_u32(mem(t), hdrp, LINUX_CAPABILITY_VERSION_3)
        if datap == 0:
            return 0
        raise KernelError(EINVAL, f"capability version {version:#x}")
    if pid < 0:
        raise KernelError(EINVAL, "negative pid")
    target = t if pid == 0 else t.pid_ns.find_task(pid)
    if target is None:
        raise KernelError(ESRCH, f"no process {pid}")
    c = target.creds
    out = b""
    for w in range(_cap_words(version)):
        sh = 32 * w
        out += struct.pack("<III", c.cap_effective >> sh & 0xFFFFFFFF, c.cap_permitted >> sh & 0xFFFFFFFF,
                           c.cap_inheritable >> sh & 0xFFFFFFFF)  # fmt: skip
    if datap:
        mem(t).write(datap, out)
    return 0


@syscall(nr.capset, 2)
def sys_capset(k: Any, t: Any, hdrp: int, datap: int) -> int:
    """capset(2) on the caller (cap_capset's rules; EPERM for another process, as since 2.6.24)."""
    version, pid = _cap_header(t, hdrp)
    if version not in (LINUX_CAPABILITY_VERSION_1, LINUX_CAPABILITY_VERSION_2, LINUX_CAPABILITY_VERSION_3):
        write_u32(mem(t), hdrp, LINUX_CAPABILITY_VERSION_3)
        raise KernelError(EINVAL, f"capability version {version:#x}")
    if pid != 0 and pid != _vpid(t, t.tid):
        raise KernelError(EPERM, "capset on another process")
    words = _cap_words(version)
    raw = mem(t).read(datap, 12 * words)
    eff = perm = inh = 0
    for w in range(words):
        e, p, i = struct.unpack_from("<III", raw, 12 * w)
        eff |= e << 32 * w
        perm |= p << 32 * w
        inh |= i << 32 * w
    eff, perm, inh = eff & ALL_CAPS, perm & ALL_CAPS, inh & ALL_CAPS
    c = t.creds
    setpcap = has_cap(c, t.nsproxy.user, CAP_SETPCAP)
    allowed_inh = c.cap_inheritable | (c.cap_bounding if setpcap else c.cap_permitted)
    if inh & ~allowed_inh or inh & ~(c.cap_inheritable | c.cap_bounding):
        raise KernelError(EPERM, "inheritable set not allowed")
    if perm & ~c.cap_permitted:
        raise KernelError(EPERM, "permitted set may only shrink")
    if eff & ~perm:
        raise KernelError(EPERM, "effective set must be within the permitted set")
    n = c.copy()
    n.cap_effective, n.cap_permitted, n.cap_inheritable = eff, perm, inh
    n.cap_ambient &= perm & inh
    t.creds = n
    return 0


# -- rlimits ---------------------------------------------------------------------------------------------
def _rlimit_target(t: Any, pid: int) -> Any:
    if pid == 0:
        return t
    target = t.pid_ns.find_task(pid)
    if target is None:
        raise KernelError(ESRCH, f"no process {pid}")
    return target


def _may_prlimit(t: Any, target: Any) -> None:
    """check_prlimit_permission: same real/effective/saved ids, or CAP_SYS_RESOURCE over the target."""
    if target is t:
        return
    c, tc = t.creds, target.creds
    if c.uid == tc.euid == tc.suid == tc.uid and c.gid == tc.egid == tc.sgid == tc.gid:
        return
    if has_cap(c, target.nsproxy.user, CAP_SYS_RESOURCE):
        return
    raise KernelError(EPERM, "not permitted to change another process's limits")


def do_prlimit(k: Any, t: Any, target: Any, resource: int, new: tuple[int, int] | None) -> tuple[int, int]:
    if resource >= RLIM_NLIMITS:
        raise KernelError(EINVAL, f"resource {resource}")
    p = target.process
    old = p.rlimits[resource]
    if new is not None:
        soft, hard = new
        if soft > hard:
            raise KernelError(EINVAL, "soft limit above hard limit")
        if resource == RLIMIT_NOFILE and hard != RLIM_INFINITY and hard > NR_OPEN:
            raise KernelError(EPERM, "RLIMIT_NOFILE above nr_open")
        if resource == RLIMIT_NOFILE and hard == RLIM_INFINITY:
            raise KernelError(EPERM, "RLIMIT_NOFILE above nr_open")
        # Raising a hard limit needs CAP_SYS_RESOURCE in the initial user namespace (capable()).
        if hard > old[1] and not has_cap(t.creds, k.init_nsproxy.user, CAP_SYS_RESOURCE):
            raise KernelError(EPERM, "raising a hard limit needs CAP_SYS_RESOURCE")
        p.rlimits[resource] = (soft, hard)
    return old


def _to32(v: int) -> int:
    return RLIM32_INFINITY if v >= RLIM32_INFINITY else v


def _from32(v: int) -> int:
    return RLIM_INFINITY if v == RLIM32_INFINITY else v


@syscall(nr.getrlimit, 2)
def sys_getrlimit(k: Any, t: Any, resource: int, rlim: int) -> int:
    soft, hard = do_prlimit(k, t, t, resource, None)
    mem(t).write(rlim, struct.pack("<II", _to32(soft), _to32(hard)))
    return 0


@syscall(nr.setrlimit, 2)
def sys_setrlimit(k: Any, t: Any, resource: int, rlim: int) -> int:
    soft, hard = struct.unpack("<II", mem(t).read(rlim, 8))
    do_prlimit(k, t, t, resource, (_from32(soft), _from32(hard)))
    return 0


@syscall(nr.prlimit64, 4)
def sys_prlimit64(k: Any, t: Any, pid: int, resource: int, newp: int, oldp: int) -> int:
    target = _rlimit_target(t, s32(pid))
    _may_prlimit(t, target)
    new = struct.unpack("<QQ", mem(t).read(newp, 16)) if newp else None
    old = do_prlimit(k, t, target, resource, new)
    if oldp:
        mem(t).write(oldp, struct.pack("<QQ", *old))
    return 0


@syscall(nr.sched_yield, 0)
def sys_sched_yield(k: Any, t: Any) -> int:
    k.sched.yield_task(t)
    k.sched.cpus[t.cpu].resched = True
    return 0
