"""The runtime's user-space programs: ``runc create``, ``runc init``, ``start``, ``exec``, ``kill``,
``delete`` and hooks, as scripted processes issuing real system calls on the simulated kernel.

As runc is a program using kernel mechanisms, so is this runtime: the host-side
:class:`~virtlevels_containers.runtime.Runtime` only spawns these programs (as a CLI spawns
``runc``) and reads their results. The create path follows runc's ``nsexec``/``runc init``:

1. ``runc create`` (host namespaces): state directory, stdio, the container's cgroup (mkdir,
   ``cgroup.subtree_control`` on the way down), sync pipes, then forks a *stage-1* child and
   puts it in the cgroup, so everything it forks is born there.
2. stage 1 joins the namespaces given by path (``setns``, user namespace first), then clones the
   container init with ``CLONE_PARENT | CLONE_NEW*`` (so init is runc's child) and, for a new user
   namespace, writes the child's ``/proc/PID/uid_map`` and ``gid_map``; it reports init's pid.
3. ``runc create`` writes the resource limits, runs the prestart/createRuntime hooks, and lets
   init go. Init becomes root of its user namespace, makes ``/`` private, bind-mounts the rootfs,
   mounts config mounts under it, runs createContainer hooks, ``pivot_root(".", ".")`` +
   ``umount2(".", MNT_DETACH)``, masks and read-only paths, hostname, rlimits, then reports
   "ready" and blocks opening ``exec.fifo`` for writing (runc's exec.fifo).
4. ``runc start`` opens the fifo for reading: init wakes, runs the startContainer hooks, drops
   capabilities, switches user, sets no_new_privs, chdirs and ``execve``s the process.

On any failure ``runc create`` kills and reaps what it made (init is its child thanks to
CLONE_PARENT), removes the cgroups it created and the state directory, so nothing is left.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Generator
from typing import Any

import attrs

from virtlevels.kernel import scripted as sys
from virtlevels.kernel.caps import ALL_CAPS, CAP_BY_NAME
from virtlevels.kernel.errno import EEXIST, ENOENT
from virtlevels.kernel.ns import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)
from virtlevels.kernel.vfs.constants import (
    AT_FDCWD,
    AT_REMOVEDIR,
    MNT_DETACH,
    MS_BIND,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_UNBINDABLE,
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    S_IFIFO,
)

Gen = Generator[Any, Any, Any]

SIGKILL = 9
SIGCHLD = 17
CLONE_PARENT = 0x00008000
# prctl(2) options the runtime uses (include/uapi/linux/prctl.h).
PR_SET_NO_NEW_PRIVS = 38
X_OK = 1
F_SETFD = 2

#: The CLONE_NEW* flag of each OCI namespace type (config-linux.md "Namespaces").
NS_FLAGS: dict[str, int] = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
#: /proc/PID/ns file names of the OCI types.
NS_PROC_NAME: dict[str, str] = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
    "cgroup": "cgroup", "time": "time",
}  # fmt: skip
#: setns order: the user namespace first (it decides the rights for the others), mount last
#: (after it the runtime's paths are gone), as runc's nsexec orders them.
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")

#: Mount option words (mount(8)) and the MS_* flag each sets or clears.
MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY), "nosuid": (False, 2), "suid": (True, 2),
    "nodev": (False, 4), "dev": (True, 4), "noexec": (False, 8), "exec": (True, 8),
    "sync": (False, 16), "async": (True, 16), "remount": (False, MS_REMOUNT), "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC), "noatime": (False, 1024), "atime": (True, 1024),
    "nodiratime": (False, 2048), "diratime": (True, 2048), "relatime": (False, 1 << 21),
    "norelatime": (True, 1 << 21), "strictatime": (False, 1 << 24), "nostrictatime": (True, 1 << 24),
    "mand": (False, 64), "nomand": (True, 64), "defaults": (False, 0),
}  # fmt: skip
PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC, "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}  # fmt: skip


def parse_mount_options(options: tuple[str, ...]) -> tuple[int, int, str]:
    """(flags, propagation flags, data) of a config mount's options, as runc's parseMountOptions."""
    flags = 0
    prop = 0
    data: list[str] = []
    for opt in options:
        if opt in MOUNT_FLAGS:
            clear, flag = MOUNT_FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION:
            prop |= PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, prop, ",".join(data)


@attrs.define
class MountStep:
    """One config mount, resolved: where in the rootfs, what, and how."""

    destination: str  # absolute, inside the container
    type: str | None
    source: str | None
    flags: int
    propagation: int
    data: str


@attrs.define
class HookCall:
    phase: str
    path: str
    args: tuple[str, ...]
    env: tuple[str, ...]


@attrs.define
class CreatePlan:
    """Everything ``runc create`` needs, computed from the spec by the runtime (the parsed config)."""

    id: str
    state_dir: str
    rootfs: str  # path of the root filesystem in the runtime's mount namespace
    rootfs_readonly: bool
    cgroup: str  # absolute cgroup path, e.g. /virtlevels/web
    cgroup_writes: list[tuple[str, str]]  # (file, text) in order
    new_flags: int
    joins: list[tuple[str, str]]  # (oci type, path), in JOIN_ORDER
    uid_map: str
    gid_map: str
    mounts: list[MountStep]
    masked: tuple[str, ...]
    readonly: tuple[str, ...]
    propagation: int
    hostname: str | None
    domainname: str | None
    rlimits: list[tuple[int, int, int]]
    process: ProcessPlan | None
    hooks: list[HookCall]  # prestart, createRuntime, createContainer (run by create)
    start_hooks: list[HookCall]  # startContainer
    state_json: Callable[[str], str]  # status -> the state document the hooks get on stdin
    # results, filled in by the programs
    init_pid: int = 0
    dirfd: int = -1  # init's descriptor of the state directory, kept across pivot_root
    error: str = ""
    created_cgroups: list[str] = attrs.field(factory=list)
    hook_log: list[tuple[str, str, str]] = attrs.field(factory=list)  # (phase, path, outcome)
    warnings: list[str] = attrs.field(factory=list)


@attrs.define
class ProcessPlan:
    """The container's (or an exec's) process: what ``runc init`` or exec finally execs."""

    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    umask: int | None
    caps: tuple[int, int, int, int, int] | None  # bounding, effective, inheritable, permitted, ambient
    no_new_privileges: bool
    additional_gids: tuple[int, ...] = ()
    #: linux.seccomp compiled to BPF by the sandbox plugin, and its seccomp(2) call builder.
    seccomp: tuple[Any, ...] | None = None
    seccomp_call: Callable[..., Any] | None = None


class Failure(Exception):
    """A create step failed; the message names the step and the errno."""


def _check(result: Any, what: str) -> Any:
    if isinstance(result, int) and result < 0:
        raise Failure(f"{what}: {_errname(-result)}")
    return result


def _errname(errno: int) -> str:
    from virtlevels.kernel import errno as e

    for name in dir(e):
        if name.isupper() and name.startswith("E") and getattr(e, name) == errno:
            return f"{name} (errno {errno})"
    return f"errno {errno}"


def write_path(path: str, text: str, what: str | None = None) -> Gen:
    """open(O_WRONLY) + write + close; raises Failure naming ``what`` (default the path)."""
    fd = yield sys.openat(AT_FDCWD, path, O_WRONLY | O_CLOEXEC)
    _check(fd, f"open {what or path}")
    r = yield sys.write(fd, text)
    yield sys.close(fd)
    _check(r, f"write {text.strip()!r} to {what or path}")


def mkdir_p(path: str, mode: int = 0o755) -> Gen:
    """mkdir -p; returns the directories it created (outermost first)."""
    made: list[str] = []
    cur = ""
    for part in [p for p in path.split("/") if p]:
        cur += "/" + part
        r = yield sys.mkdirat(AT_FDCWD, cur, mode)
        if r == 0:
            made.append(cur)
        elif r != -EEXIST:
            raise Failure(f"mkdir {cur}: {_errname(-r)}")
    return made


def _read_exact(fd: int, n: int) -> Gen:
    data = b""
    while len(data) < n:
        chunk = yield sys.read(fd, n - len(data))
        if isinstance(chunk, int) or not chunk:
            return data
        data += chunk
    return data


def _read_msg(fd: int) -> Gen:
    """A length-prefixed message on a sync pipe ('' on EOF: the other side died)."""
    head = yield from _read_exact(fd, 4)
    if len(head) < 4:
        return ""
    (n,) = struct.unpack("<I", head)
    body = yield from _read_exact(fd, n)
    return body.decode()


def _send(fd: int, msg: str) -> sys.Syscall:
    raw = msg.encode()
    return sys.write(fd, struct.pack("<I", len(raw)) + raw)


# -- hooks --------------------------------------------------------------------------------------------
def _hook_child(path: str, args: tuple[str, ...], env: tuple[str, ...], stdin_fd: int) -> Gen:
    if stdin_fd == 0:
        yield sys.fcntl(0, F_SETFD, 0)  # keep it across execve
    else:
        yield sys.dup3(stdin_fd, 0)
    r = yield sys.execve(path, list(args) or [path], list(env))
    return 127 if r < 0 else 0


def run_hook(hook: HookCall, state: str, log: list[tuple[str, str, str]]) -> Gen:
    """config.md "POSIX-platform Hooks": run ``hook`` with the state JSON on its stdin.

    A hook whose path names no file in this mount namespace is recorded, not run (the simulated
    world has no host binaries). Returns the hook's exit status (0 when only recorded)."""
    r = yield sys.faccessat(AT_FDCWD, hook.path, X_OK)
    if r < 0:
        log.append((hook.phase, hook.path, "recorded" + (" (not found)" if r == -ENOENT else f" ({-r})")))
        return 0
    fds = yield sys.pipe2(O_CLOEXEC)
    rfd, wfd = _check(fds, f"{hook.phase} hook pipe")
    pid = yield sys.fork(_hook_child, hook.path, hook.args, hook.env, rfd)
    yield sys.close(rfd)
    if pid < 0:
        yield sys.close(wfd)
        raise Failure(f"{hook.phase} hook {hook.path}: fork: {_errname(-pid)}")
    yield sys.write(wfd, state)
    yield sys.close(wfd)
    res = yield sys.wait4(pid)
    status = res[1] if isinstance(res, tuple) else -1
    code = (status >> 8) & 0xFF if status & 0x7F == 0 else 128 + (status & 0x7F)
    log.append((hook.phase, hook.path, f"exit {code}"))
    return code


def _hooks(plan: CreatePlan, phases: tuple[str, ...], status: str) -> Gen:
    for hook in plan.hooks:
        if hook.phase in phases:
            code = yield from run_hook(hook, plan.state_json(status), plan.hook_log)
            if code != 0:
                # runtime.md: a failing prestart/createRuntime/createContainer hook fails create.
                raise Failure(f"{hook.phase} hook {hook.path} exited with status {code}")


# -- runc create --------------------------------------------------------------------------------------
def runc_create(plan: CreatePlan) -> Gen:
    """``runc create``: build the container; 0 when init waits on exec.fifo, 1 (plan.error) if not."""
    made_state = False
    init_pid = 0
    stage1 = 0
    try:
        made = yield from mkdir_p(plan.state_dir, 0o711)
        made_state = bool(made)
        # runc: umask 0, mkfifo(exec.fifo, 0622), so init (maybe another uid) can open it to write.
        old_mask = yield sys.umask(0)
        r = yield sys.mknodat(AT_FDCWD, plan.state_dir + "/exec.fifo", S_IFIFO | 0o622)
        yield sys.umask(old_mask)
        _check(r, f"mkfifo {plan.state_dir}/exec.fifo")
        # The container's stdio (terminal: false): what runc passes through, here its log file.
        yield from setup_stdio(plan.state_dir + "/stdout")
        # cgroup-v2.rst "Organizing Processes": create the cgroup, controllers enabled top-down.
        parts = [p for p in plan.cgroup.split("/") if p]
        cur = "/sys/fs/cgroup"
        for part in parts:
            yield from write_path(cur + "/cgroup.subtree_control", "+cpu +io +memory +pids",
                                  f"{cur}/cgroup.subtree_control")  # fmt: skip
            cur += "/" + part
            r = yield sys.mkdirat(AT_FDCWD, cur, 0o755)
            if r == 0:
                plan.created_cgroups.append(cur)
            elif r != -EEXIST or cur.endswith(plan.cgroup):
                raise Failure(f"mkdir cgroup {cur}: {_errname(-r)}")
        sync = _check((yield sys.pipe2(O_CLOEXEC)), "sync pipe")
        ready = _check((yield sys.pipe2(O_CLOEXEC)), "ready pipe")
        report = _check((yield sys.pipe2(O_CLOEXEC)), "pid pipe")
        stage1 = _check((yield sys.fork(_stage1, plan, sync, ready, report)), "fork stage-1")
        yield from write_path(f"{cur}/cgroup.procs", str(stage1), f"{cur}/cgroup.procs")
        yield _send(sync[1], "cgroup")
        msg = yield from _read_msg(report[0])
        yield sys.wait4(stage1)
        stage1 = 0
        if not msg.startswith("pid "):
            raise Failure(msg or "stage-1 died")
        init_pid = plan.init_pid = int(msg[4:])
        for name, text in plan.cgroup_writes:
            yield from write_path(f"{cur}/{name}", text, f"{plan.cgroup}/{name}")
        yield from _hooks(plan, ("prestart", "createRuntime"), "creating")
        yield _send(sync[1], "go")
        msg = yield from _read_msg(ready[0])
        if msg != "ready":
            raise Failure(msg or "container init died during setup")
        for fd in (*sync, *ready, *report):
            yield sys.close(fd)
        return 0
    except Failure as exc:
        plan.error = str(exc)
        # Nothing half-done: kill and reap what was made, remove cgroups and the state directory.
        for pid in (stage1, init_pid):
            if pid:
                yield sys.kill(pid, SIGKILL)
                yield sys.wait4(pid)
        plan.init_pid = 0
        for path in reversed(plan.created_cgroups):
            yield sys.unlinkat(AT_FDCWD, path, AT_REMOVEDIR)
        if made_state:
            yield from remove_state_dir(plan.state_dir)
        return 1


def setup_stdio(log_path: str) -> Gen:
    """fd 0 = /dev/null, fds 1 and 2 = ``log_path`` (appending), whatever was open before."""
    null = _check((yield sys.openat(AT_FDCWD, "/dev/null", O_RDWR)), "open /dev/null")
    for fd in (0, 1, 2):
        if fd != null:
            _check((yield sys.dup3(null, fd)), "set up stdio")
    if null > 2:
        yield sys.close(null)
    log = yield sys.openat(AT_FDCWD, log_path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
    _check(log, f"open {log_path}")
    for fd in (1, 2):
        _check((yield sys.dup3(log, fd)), "set up stdio")
    yield sys.close(log)


def remove_state_dir(state_dir: str) -> Gen:
    for name in ("exec.fifo", "stdout", "state.json"):
        yield sys.unlinkat(AT_FDCWD, f"{state_dir}/{name}")
    names = yield from _list(state_dir)
    for name in names:
        yield sys.unlinkat(AT_FDCWD, f"{state_dir}/{name}")
    yield sys.unlinkat(AT_FDCWD, state_dir, AT_REMOVEDIR)


def _list(path: str) -> Gen:
    from virtlevels_containers.busybox import list_dir

    names = yield from list_dir(path)
    return [] if isinstance(names, int) else names


def _stage1(plan: CreatePlan, sync: tuple[int, int], ready: tuple[int, int], report: tuple[int, int]) -> Gen:
    """nsexec stage 1: join namespaces by path, clone init into new ones, write its id maps."""
    msg = yield from _read_msg(sync[0])
    if msg != "cgroup":
        return 1
    pid = 0
    try:
        for ns_type, path in plan.joins:
            fd = yield sys.openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC)
            _check(fd, f"open {path} ($.linux.namespaces {ns_type})")
            _check((yield sys.setns(fd, NS_FLAGS[ns_type])), f"setns {path} ($.linux.namespaces {ns_type})")
            yield sys.close(fd)
        pid = yield sys.clone(plan.new_flags | CLONE_PARENT | SIGCHLD, runc_init, plan, sync, ready)
        _check(pid, "clone the container init")
        if plan.new_flags & CLONE_NEWUSER:
            # user_namespaces(7): a privileged process in the parent namespace writes the maps once.
            yield from write_path(f"/proc/{pid}/uid_map", plan.uid_map, "uid_map ($.linux.uidMappings)")
            yield from write_path(f"/proc/{pid}/gid_map", plan.gid_map, "gid_map ($.linux.gidMappings)")
    except Failure as exc:
        if pid > 0:
            yield sys.kill(pid, SIGKILL)
        yield _send(report[1], str(exc))
        return 1
    yield _send(report[1], f"pid {pid}")
    return 0


def runc_init(plan: CreatePlan, sync: tuple[int, int], ready: tuple[int, int]) -> Gen:
    """``runc init``: inside the new namespaces, set the container up, then wait for start."""
    yield sys.close(sync[1])
    yield sys.close(ready[0])
    msg = yield from _read_msg(sync[0])
    if msg != "go":
        return 1
    try:
        dirfd = yield from _setup(plan)
    except Failure as exc:
        yield _send(ready[1], str(exc))
        return 1
    yield _send(ready[1], "ready")
    yield sys.close(ready[1])
    yield sys.close(sync[0])
    # runc's exec.fifo: opening it for writing blocks until `start` opens it for reading.
    fifo = yield sys.openat(dirfd, "exec.fifo", O_WRONLY | O_CLOEXEC)
    yield sys.close(dirfd)
    if fifo < 0:
        return 1
    yield sys.write(fifo, "0")
    yield sys.close(fifo)
    for hook in plan.start_hooks:
        code = yield from run_hook(hook, plan.state_json("running"), plan.hook_log)
        if code != 0:
            yield sys.write(2, f"startContainer hook {hook.path} exited with status {code}\n")
            return 1
    assert plan.process is not None
    return (yield from exec_process(plan.process, plan.warnings))


def _setup(plan: CreatePlan) -> Gen:
    # runc's nsexec becomes root of a new user namespace (setresuid(0)) before preparing the
    # rootfs, which must then be owned by the mapped root. Bundles here are imported as the
    # host's root, so setup keeps the clone's ids (the rootfs's owner) and the switch to the
    # process user happens in exec_process; setuid(0) there keeps the namespace root's
    # capabilities (the kernel compares with make_kuid(user_ns, 0), as cap_emulate_setxuid).
    if plan.new_flags & CLONE_NEWNS or any(t == "mount" for t, _p in plan.joins):
        yield from _setup_rootfs(plan)
    else:
        # No mount namespace (and so no mounts): chroot into the rootfs, as runc's no_pivot mode.
        yield from _hooks(plan, ("createContainer",), "created")
        dirfd = yield sys.openat(AT_FDCWD, plan.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        plan.dirfd = _check(dirfd, f"open {plan.state_dir}")
        _check((yield sys.chroot(plan.rootfs)), f"chroot {plan.rootfs} ($.root.path)")
        _check((yield sys.chdir("/")), "chdir /")
    if plan.new_flags & CLONE_NEWNET:
        yield from _loopback_up()
    if plan.hostname is not None:
        _check((yield sys.sethostname(plan.hostname)), "sethostname ($.hostname)")
    if plan.domainname is not None:
        _check((yield sys.setdomainname(plan.domainname)), "setdomainname ($.domainname)")
    for i, (res, soft, hard) in enumerate(plan.rlimits):
        _check((yield sys.prlimit64(0, res, (soft, hard))), f"prlimit64 ($.process.rlimits[{i}])")
    # The way back to the state directory (opened before pivot_root) for exec.fifo.
    return plan.dirfd


def _loopback_up() -> Gen:
    """A new network namespace's ``lo`` starts down (as on Linux); runc brings it up, here with
    netdevice(7)'s SIOCSIFFLAGS on a datagram socket. Without a network stack (no vnet plugin,
    socket() fails with EAFNOSUPPORT) there is nothing to bring up."""
    from virtlevels.kernel.syscalls.net import AF_INET, SIOCSIFFLAGS, SOCK_DGRAM, socket

    fd = yield socket(AF_INET, SOCK_DGRAM)
    if not isinstance(fd, int) or fd < 0:
        return
    ifreq = b"lo".ljust(16, b"\0") + (0x1 | 0x40).to_bytes(2, "little").ljust(16, b"\0")  # IFF_UP|IFF_RUNNING
    _check((yield sys.ioctl(fd, SIOCSIFFLAGS, ifreq)), "bring up lo in the new network namespace")  # type: ignore[arg-type]
    yield sys.close(fd)


def _setup_rootfs(plan: CreatePlan) -> Gen:
    """runc's prepareRootfs: private /, rootfs bind, config mounts, pivot_root, masks, ro paths."""
    # pivot_root(2) refuses shared mounts: make the whole tree private in our namespace first.
    _check((yield sys.mount(None, "/", None, MS_REC | MS_PRIVATE)), "make / private")
    _check(
        (yield sys.mount(plan.rootfs, plan.rootfs, None, MS_BIND | MS_REC)),
        f"bind {plan.rootfs} ($.root.path)",
    )
    for i, m in enumerate(plan.mounts):
        yield from _mount_one(plan, i, m)
    yield from _default_devices(plan.rootfs)
    yield from _hooks(plan, ("createContainer",), "created")
    dirfd = yield sys.openat(AT_FDCWD, plan.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    plan.dirfd = _check(dirfd, f"open {plan.state_dir}")
    # pivot_root(".", ".") then detach the old root stacked under the new one (runc's pivotRoot).
    _check((yield sys.chdir(plan.rootfs)), f"chdir {plan.rootfs}")
    _check((yield sys.pivot_root(".", ".")), "pivot_root")
    _check((yield sys.umount2(".", MNT_DETACH)), "detach the old root")
    _check((yield sys.chdir("/")), "chdir /")
    if plan.propagation:
        _check((yield sys.mount(None, "/", None, plan.propagation)), "set $.linux.rootfsPropagation")
    for i, path in enumerate(plan.masked):
        yield from _mask(path, i)
    for i, path in enumerate(plan.readonly):
        yield from _readonly(path, f"$.linux.readonlyPaths[{i}]")
    if plan.rootfs_readonly:
        r = yield sys.mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        _check(r, "remount / read-only ($.root.readonly)")


def _mount_one(plan: CreatePlan, i: int, m: MountStep) -> Gen:
    where = f"$.mounts[{i}]"
    target = plan.rootfs + m.destination
    st = yield sys.newfstatat(AT_FDCWD, target)
    if isinstance(st, int):
        # runc creates missing mount points: a directory, or a file when binding a file.
        src_st = None
        if m.flags & MS_BIND and m.source:
            src_st = yield sys.newfstatat(AT_FDCWD, m.source)
        if src_st is not None and not isinstance(src_st, int) and src_st.st_mode & 0o170000 != 0o040000:
            parent = target.rsplit("/", 1)[0]
            yield from _mkdir_checked(parent, where)
            fd = yield sys.openat(AT_FDCWD, target, O_WRONLY | O_CREAT, 0o644)
            _check(fd, f"create mount point {m.destination} ({where}.destination)")
            yield sys.close(fd)
        else:
            yield from _mkdir_checked(target, where)
    fstype = None if m.flags & MS_BIND else m.type
    source = m.source if m.source is not None else (m.type or "none")
    r = yield sys.mount(source, target, fstype, m.flags & ~MS_RDONLY if m.flags & MS_BIND else m.flags,
                        m.data or None)  # fmt: skip
    _check(r, f"mount {source} on {m.destination} ({where})")
    if m.flags & MS_BIND and m.flags & ~(MS_BIND | MS_REC):
        # A bind mount takes its flags only from a second, remounting call (mount(2) "MS_BIND").
        r = yield sys.mount(None, target, None, MS_REMOUNT | MS_BIND | (m.flags & ~MS_REC))
        _check(r, f"remount {m.destination} ({where}.options)")
    if m.propagation:
        _check(
            (yield sys.mount(None, target, None, m.propagation)), f"propagation of {m.destination} ({where})"
        )


def _default_devices(rootfs: str) -> Gen:
    """runc's default devices: bind the host's /dev/null, zero and full where the rootfs lacks
    them (what runc does in a user namespace, where mknod is not allowed)."""
    for name in ("null", "zero", "full"):
        target = f"{rootfs}/dev/{name}"
        st = yield sys.newfstatat(AT_FDCWD, target)
        if not isinstance(st, int):
            continue
        yield from mkdir_p(f"{rootfs}/dev")
        fd = yield sys.openat(AT_FDCWD, target, O_WRONLY | O_CREAT | O_CLOEXEC, 0o666)
        _check(fd, f"create {target}")
        yield sys.close(fd)
        _check((yield sys.mount(f"/dev/{name}", target, None, MS_BIND)), f"bind /dev/{name}")


def _mkdir_checked(path: str, where: str) -> Gen:
    try:
        yield from mkdir_p(path)
    except Failure as exc:
        raise Failure(f"{exc} ({where}.destination)") from None


def _mask(path: str, i: int) -> Gen:
    """config-linux.md "Masked Paths": /dev/null over files, an empty read-only tmpfs over dirs."""
    st = yield sys.newfstatat(AT_FDCWD, path)
    if isinstance(st, int):
        return  # runc skips paths that do not exist
    if st.st_mode & 0o170000 == 0o040000:
        r = yield sys.mount("tmpfs", path, "tmpfs", MS_RDONLY, None)
    else:
        r = yield sys.mount("/dev/null", path, None, MS_BIND)
    _check(r, f"mask {path} ($.linux.maskedPaths[{i}])")


def _readonly(path: str, where: str) -> Gen:
    """config-linux.md "Readonly Paths": bind the path on itself, then remount it read-only."""
    st = yield sys.newfstatat(AT_FDCWD, path)
    if isinstance(st, int):
        return
    _check((yield sys.mount(path, path, None, MS_BIND | MS_REC)), f"bind {path} ({where})")
    _check(
        (yield sys.mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)),
        f"remount {path} read-only ({where})",
    )


def caps_masks(names: Any) -> tuple[int, int, int, int, int] | None:
    """(bounding, effective, inheritable, permitted, ambient) masks of a spec's Capabilities."""
    if names is None:
        return None

    def mask(values: tuple[str, ...]) -> int:
        m = 0
        for n in values:
            m |= 1 << CAP_BY_NAME[n]
        return m

    return (mask(names.bounding), mask(names.effective), mask(names.inheritable), mask(names.permitted),
            mask(names.ambient))  # fmt: skip


def exec_process(p: ProcessPlan, warnings: list[str]) -> Gen:
    """The last steps before the user's program, in runc's finalizeNamespace order: bounding set,
    user (with PR_SET_KEEPCAPS around it so the permitted set survives), capabilities, ambient set,
    no_new_privs, umask, cwd, execve (whose capability rules then apply)."""
    caps = p.caps
    if p.seccomp is not None and p.seccomp_call is not None and not p.no_new_privileges:
        # Without no_new_privs the filter needs CAP_SYS_ADMIN: load it before the caps go (runc).
        r = yield p.seccomp_call(p.seccomp)
        if r < 0:
            yield sys.write(2, f"seccomp: errno {-r}\n")
            return 1
    if caps is not None:
        for cap in range(ALL_CAPS.bit_length()):
            if not caps[0] >> cap & 1:
                r = yield sys.capbset_drop(cap)
                if r < 0:
                    yield sys.write(2, f"drop capability {cap} from the bounding set: errno {-r}\n")
                    return 1
        yield sys.set_keepcaps(True)
    # Supplementary groups: the configured ones, or none (runc clears inherited groups; in a user
    # namespace whose setgroups is "deny" that fails harmlessly).
    r = yield sys.setgroups(list(p.additional_gids))
    if r < 0 and p.additional_gids:
        yield sys.write(2, f"setgroups {list(p.additional_gids)}: errno {-r}\n")
        return 1
    for call, value in ((sys.setgid, p.gid), (sys.setuid, p.uid)):
        r = yield call(value)
        if r < 0:
            yield sys.write(2, f"set user {p.uid}:{p.gid}: errno {-r}\n")
            return 1
    if caps is not None:
        _bounding, effective, inheritable, permitted, ambient = caps
        yield sys.set_keepcaps(False)
        r = yield sys.capset(effective, permitted, inheritable)
        if r < 0:
            yield sys.write(2, f"capset: errno {-r}\n")
            return 1
        for cap in range(ALL_CAPS.bit_length()):
            if ambient >> cap & 1:
                r = yield sys.cap_ambient(sys.CAP_AMBIENT_RAISE, cap)
                if r < 0:
                    # runc ignores this too: an ambient cap outside permitted/inheritable is skipped.
                    warnings.append(f"ambient capability {cap} not raised: errno {-r}")
    if p.no_new_privileges:
        yield sys.prctl(PR_SET_NO_NEW_PRIVS, 1)
    if p.umask is not None:
        yield sys.umask(p.umask)
    r = yield sys.chdir(p.cwd)
    if r < 0:
        yield sys.write(2, f"chdir {p.cwd}: errno {-r}\n")
        return 1
    path = yield from lookup_path(p.args[0], p.env)
    if p.seccomp is not None and p.seccomp_call is not None and p.no_new_privileges:
        # runc loads the filter as late as possible, just before execve.
        r = yield p.seccomp_call(p.seccomp)
        if r < 0:
            yield sys.write(2, f"seccomp: errno {-r}\n")
            return 1
    r = yield sys.execve(path, list(p.args), list(p.env))
    yield sys.write(2, f"exec {p.args[0]}: errno {-r}\n")
    return 127 if r == -ENOENT else 126


def lookup_path(name: str, env: tuple[str, ...]) -> Gen:
    """exec.LookPath as runc uses it: a name without '/' is searched in the container's PATH."""
    if "/" in name:
        return name
    path = next(
        (e[5:] for e in env if e.startswith("PATH=")),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    )
    for d in path.split(":"):
        cand = f"{d or '.'}/{name}"
        if (yield sys.faccessat(AT_FDCWD, cand, X_OK)) == 0:
            return cand
    return name


# -- start, kill, delete, exec -------------------------------------------------------------------------
@attrs.define
class OpResult:
    code: int = 0
    error: str = ""
    pid: int = 0
    status: int = 0
    hook_log: list[tuple[str, str, str]] = attrs.field(factory=list)


def runc_start(state_dir: str, poststart: list[HookCall], state: Callable[[str], str], out: OpResult) -> Gen:
    """``runc start``: open exec.fifo for reading, which releases init; then the poststart hooks."""
    fd = yield sys.openat(AT_FDCWD, state_dir + "/exec.fifo", O_RDONLY | O_CLOEXEC)
    if fd < 0:
        out.code, out.error = 1, f"open exec.fifo: {_errname(-fd)}"
        return 1
    data = yield sys.read(fd, 1)
    yield sys.close(fd)
    yield sys.unlinkat(AT_FDCWD, state_dir + "/exec.fifo")
    if data != b"0":
        out.code, out.error = 1, "container init exited before start"
        return 1
    for hook in poststart:
        code = yield from run_hook(hook, state("running"), out.hook_log)
        if code != 0:
            out.error = f"poststart hook {hook.path} exited with status {code}"  # a warning (runtime.md)
    return 0


def runc_kill(pid: int, sig: int, out: OpResult) -> Gen:
    r = yield sys.kill(pid, sig)
    if r < 0:
        out.code, out.error = 1, f"kill {pid}: {_errname(-r)}"
        return 1
    return 0


def runc_delete(state_dir: str, cgroups: list[str], poststop: list[HookCall], state: Callable[[str], str],
                out: OpResult) -> Gen:  # fmt: skip
    """``runc delete``: remove the cgroups the container made and its state; poststop hooks."""
    for i, path in enumerate(reversed(cgroups)):
        r = yield sys.unlinkat(AT_FDCWD, path, AT_REMOVEDIR)
        if r < 0 and r != -ENOENT and i == 0:
            out.code, out.error = 1, f"rmdir {path}: {_errname(-r)}"
            return 1
        # parents this container created go too, unless other containers still use them
    yield from remove_state_dir(state_dir)
    for hook in poststop:
        code = yield from run_hook(hook, state("stopped"), out.hook_log)
        if code != 0:
            out.error = f"poststop hook {hook.path} exited with status {code}"  # runtime.md: a warning
    return 0


def runc_exec(init_pid: int, namespaces: list[str], cgroup: str, log_path: str, p: ProcessPlan,
              warnings: list[str], out: OpResult) -> Gen:  # fmt: skip
    """``runc exec``: a new process in the container's namespaces and cgroup; waits for it."""
    try:
        yield from setup_stdio(log_path)
        report = _check((yield sys.pipe2(O_CLOEXEC)), "pipe")
        sync = _check((yield sys.pipe2(O_CLOEXEC)), "pipe")
        stage1 = _check(
            (yield sys.fork(_exec_stage1, init_pid, namespaces, p, warnings, report, sync)), "fork"
        )
        try:
            # Into the container's cgroup before anything runs there (runc: manager.Apply(pid)).
            yield from write_path(cgroup + "/cgroup.procs", str(stage1))
        except Failure:
            yield sys.kill(stage1, SIGKILL)
            yield sys.wait4(stage1)
            raise
    except Failure as exc:
        out.code, out.error = 1, str(exc)
        return 1
    yield _send(sync[1], "go")
    msg = yield from _read_msg(report[0])
    yield sys.wait4(stage1)
    if not msg.startswith("pid "):
        out.code, out.error = 1, msg or "exec stage-1 died"
        return 1
    out.pid = int(msg[4:])
    res = yield sys.wait4(out.pid)
    out.status = res[1] if isinstance(res, tuple) else 0
    return 0


def _exec_stage1(init_pid: int, namespaces: list[str], p: ProcessPlan, warnings: list[str],
                 report: tuple[int, int], sync: tuple[int, int]) -> Gen:  # fmt: skip
    if (yield from _read_msg(sync[0])) != "go":
        return 1
    fds = []
    try:
        for name in namespaces:
            fd = yield sys.openat(AT_FDCWD, f"/proc/{init_pid}/ns/{name}", O_RDONLY | O_CLOEXEC)
            fds.append((name, _check(fd, f"open /proc/{init_pid}/ns/{name}")))
        for name, fd in fds:
            _check((yield sys.setns(fd, 0)), f"setns {name}")
            yield sys.close(fd)
        pid = yield sys.clone(CLONE_PARENT | SIGCHLD, _exec_child, p, warnings)
        _check(pid, "clone")
    except Failure as exc:
        yield _send(report[1], str(exc))
        return 1
    yield _send(report[1], f"pid {pid}")
    return 0


def _exec_child(p: ProcessPlan, warnings: list[str]) -> Gen:
    return (yield from exec_process(p, warnings))


def state_text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2)
