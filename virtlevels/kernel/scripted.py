"""Scripted processes: Python generators that issue the same system calls as ISA programs.

A scripted program is a function returning a generator; each ``yield`` hands the kernel one
operation and receives its result::

    def cat(argv):
        fd = yield sys.openat(AT_FDCWD, "/etc/hostname", O_RDONLY)
        data = yield sys.read(fd, 100)
        yield sys.write(1, data)
        return 0                      # the exit code (None means 0)

Every helper builds a :class:`Syscall` (number and arguments). Arguments may be ints, ``bytes``
(an input buffer), ``str`` (a NUL-terminated string), a list of ``str`` (argv/envp), an
:class:`Out` (an output buffer the call fills) or an :class:`Obj` (a Python object passed by
handle, e.g. a child's entry function). The dispatcher copies them into the process's user-memory
shim so the one syscall table serves scripted and ISA processes alike, with the same accounting.

Results are what the Linux call returns (``-errno`` on failure); calls that fill a buffer return
the decoded buffer on success instead (``read`` returns ``bytes``, ``fstat`` a VFS ``Stat``,
``pipe2`` a ``(rfd, wfd)`` pair, ``wait4`` a ``(pid, status)`` pair...), and still ``-errno`` on
failure. Two operations are not system calls: :func:`burn` runs user-mode code for some cycles,
:func:`touch` reads or writes user memory (so pages fault in and are charged to the memory cgroup).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator, Sequence
from typing import Any

import attrs

from virtlevels.kernel.syscalls import numbers as nr
from virtlevels.kernel.vfs.stat import STAT_SIZE, unpack_stat

#: What a scripted program is: a callable returning a generator of operations.
Program = Callable[..., Generator[Any, Any, Any]]


@attrs.frozen
class Out:
    """An output buffer of ``size`` bytes, returned to the decoder after the call."""

    size: int


@attrs.frozen
class Obj:
    """A Python object passed by handle (the dispatcher stores it; handlers fetch it)."""

    value: Any


Decoder = Callable[[int, list[bytes]], Any]


@attrs.frozen
class Syscall:
    nr: int
    args: tuple[Any, ...] = ()
    decode: Decoder | None = None

    @property
    def name(self) -> str:
        return nr.name_of(self.nr)


@attrs.frozen
class Burn:
    """Run ``cycles`` of user-mode computation (preemptible; the scheduler charges it)."""

    cycles: int


@attrs.frozen
class Touch:
    """Access ``length`` bytes of user memory at ``addr`` (``write`` or read): pages fault in.

    The result is 0, or the process is killed by SIGSEGV (unmapped/protected) or the OOM killer.
    """

    addr: int
    length: int
    write: bool = True


def with_envp(program: Program) -> Program:
    """Mark a program as taking its environment: execve calls it as ``program(*argv[1:],
    envp=[...])`` (the strings given to execve, as main's third argument)."""
    program.wants_envp = True  # type: ignore[attr-defined]
    return program


def burn(cycles: int) -> Burn:
    return Burn(cycles)


def touch(addr: int, length: int, write: bool = True) -> Touch:
    return Touch(addr, length, write)


def _ok_then(f: Callable[[int, list[bytes]], Any]) -> Decoder:
    def dec(result: int, outs: list[bytes]) -> Any:
        return result if result < 0 else f(result, outs)

    return dec


def _first_n(result: int, outs: list[bytes]) -> bytes:
    return outs[0][:result]


def _call(number: int, *args: Any, decode: Decoder | None = None) -> Syscall:
    return Syscall(number, tuple(args), decode)


UTS_FIELD = 65


# -- files -----------------------------------------------------------------------------------------
def openat(dirfd: int, path: str, flags: int, mode: int = 0o666) -> Syscall:
    return _call(nr.openat, dirfd, path, flags, mode)


def close(fd: int) -> Syscall:
    return _call(nr.close, fd)


def read(fd: int, count: int) -> Syscall:
    return _call(nr.read, fd, Out(count), count, decode=_ok_then(_first_n))


def write(fd: int, data: bytes | str) -> Syscall:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return _call(nr.write, fd, raw, len(raw))


def _iov(bufs: Sequence[bytes | Out]) -> tuple[Any, ...]:
    return tuple(bufs)


def readv(fd: int, sizes: Sequence[int]) -> Syscall:
    """The iovec array is built by the dispatcher from the list (see ``IoVec``)."""

    def dec(result: int, outs: list[bytes]) -> Any:
        if result < 0:
            return result
        got, left = [], result
        for o in outs[1:]:
            got.append(o[:left])
            left -= min(left, len(o))
        return got

    return _call(nr.readv, fd, IoVec(tuple(Out(s) for s in sizes)), len(sizes), decode=dec)


def writev(fd: int, bufs: Sequence[bytes]) -> Syscall:
    return _call(nr.writev, fd, IoVec(tuple(bytes(b) for b in bufs)), len(bufs))


@attrs.frozen
class IoVec:
    """An array of ``struct iovec`` over the given buffers (inputs or :class:`Out`)."""

    bufs: tuple[Any, ...]


def lseek(fd: int, offset: int, whence: int) -> Syscall:
    return _call(nr.lseek, fd, offset, whence)


def getdents64(fd: int, count: int = 4096) -> Syscall:
    return _call(nr.getdents64, fd, Out(count), count, decode=_ok_then(_first_n))


def mkdirat(dirfd: int, path: str, mode: int = 0o777) -> Syscall:
    return _call(nr.mkdirat, dirfd, path, mode)


def mknodat(dirfd: int, path: str, mode: int, dev: int = 0) -> Syscall:
    """``mode`` includes the file type (S_IFIFO, S_IFCHR...); ``dev`` is a makedev() number."""
    return _call(nr.mknodat, dirfd, path, mode, dev)


def unlinkat(dirfd: int, path: str, flags: int = 0) -> Syscall:
    return _call(nr.unlinkat, dirfd, path, flags)


def symlinkat(target: str, dirfd: int, path: str) -> Syscall:
    return _call(nr.symlinkat, target, dirfd, path)


def readlinkat(dirfd: int, path: str, size: int = 4096) -> Syscall:
    return _call(nr.readlinkat, dirfd, path, Out(size), size,
                 decode=_ok_then(lambda r, o: o[0][:r].decode()))  # fmt: skip


def renameat2(olddirfd: int, old: str, newdirfd: int, new: str, flags: int = 0) -> Syscall:
    return _call(nr.renameat2, olddirfd, old, newdirfd, new, flags)


def newfstatat(dirfd: int, path: str, flags: int = 0) -> Syscall:
    return _call(nr.newfstatat, dirfd, path, Out(STAT_SIZE), flags,
                 decode=_ok_then(lambda r, o: unpack_stat(o[0])))  # fmt: skip


def fstat(fd: int) -> Syscall:
    return _call(nr.fstat, fd, Out(STAT_SIZE), decode=_ok_then(lambda r, o: unpack_stat(o[0])))


def faccessat(dirfd: int, path: str, mode: int, flags: int = 0) -> Syscall:
    return _call(nr.faccessat, dirfd, path, mode, flags)


def getcwd(size: int = 4096) -> Syscall:
    return _call(nr.getcwd, Out(size), size, decode=_ok_then(lambda r, o: o[0][:r - 1].decode()))


def chdir(path: str) -> Syscall:
    return _call(nr.chdir, path)


def fchdir(fd: int) -> Syscall:
    return _call(nr.fchdir, fd)


def chroot(path: str) -> Syscall:
    return _call(nr.chroot, path)


def dup(fd: int) -> Syscall:
    return _call(nr.dup, fd)


def dup3(old: int, new: int, flags: int = 0) -> Syscall:
    return _call(nr.dup3, old, new, flags)


def pipe2(flags: int = 0) -> Syscall:
    return _call(nr.pipe2, Out(8), flags, decode=_ok_then(lambda r, o: struct.unpack("<ii", o[0])))


def fcntl(fd: int, cmd: int, arg: int = 0) -> Syscall:
    return _call(nr.fcntl, fd, cmd, arg)


def ioctl(fd: int, request: int, arg: int = 0) -> Syscall:
    return _call(nr.ioctl, fd, request, arg)


def ftruncate(fd: int, length: int) -> Syscall:
    return _call(nr.ftruncate, fd, length)


def umask(mask: int) -> Syscall:
    return _call(nr.umask, mask)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> Syscall:
    return _call(nr.mount, source if source is not None else 0, target,
                 fstype if fstype is not None else 0, flags, data if data is not None else 0)  # fmt: skip


def umount2(target: str, flags: int = 0) -> Syscall:
    return _call(nr.umount2, target, flags)


def pivot_root(new_root: str, put_old: str) -> Syscall:
    return _call(nr.pivot_root, new_root, put_old)


# -- processes -------------------------------------------------------------------------------------
def getpid() -> Syscall:
    return _call(nr.getpid)


def getppid() -> Syscall:
    return _call(nr.getppid)


def gettid() -> Syscall:
    return _call(nr.gettid)


def getuid() -> Syscall:
    return _call(nr.getuid)


def geteuid() -> Syscall:
    return _call(nr.geteuid)


def getgid() -> Syscall:
    return _call(nr.getgid)


def getegid() -> Syscall:
    return _call(nr.getegid)


def setuid(uid: int) -> Syscall:
    return _call(nr.setuid, uid)


def setgid(gid: int) -> Syscall:
    return _call(nr.setgid, gid)


def getgroups(size: int = 64) -> Syscall:
    """The supplementary gids as a tuple (size 0: just their number)."""
    if size == 0:
        return _call(nr.getgroups, 0, 0)

    def dec(result: int, outs: list[bytes]) -> Any:
        return result if result < 0 else struct.unpack(f"<{result}I", outs[0][: 4 * result])

    return _call(nr.getgroups, size, Out(4 * size), decode=dec)


def setgroups(gids: Sequence[int]) -> Syscall:
    return _call(nr.setgroups, len(gids), struct.pack(f"<{len(gids)}I", *gids) if gids else None)


SIGCHLD = 17


def clone(flags: int, fn: Program | None = None, *args: Any) -> Syscall:
    """clone(2). A scripted child cannot continue the parent's generator, so, as glibc's
    ``clone(fn, stack, ...)`` wrapper does, it starts in ``fn(*args)``; the stack argument
    carries ``fn`` by handle. The parent gets the child's tid; the child's exit code is ``fn``'s."""
    entry = Obj((fn, args)) if fn is not None else 0
    return _call(nr.clone, flags, entry, 0, 0, 0)


def fork(fn: Program, *args: Any) -> Syscall:
    return clone(SIGCHLD, fn, *args)


def execve(path: str, argv: Sequence[str] = (), envp: Sequence[str] = ()) -> Syscall:
    return _call(nr.execve, path, list(argv), list(envp))


def exit(code: int = 0) -> Syscall:  # noqa: A001 - the system call's name
    return _call(nr.exit, code)


def exit_group(code: int = 0) -> Syscall:
    return _call(nr.exit_group, code)


def wait4(pid: int = -1, options: int = 0) -> Syscall:
    """Returns ``(pid, status)`` (pid 0 with WNOHANG and nothing to reap) or ``-errno``."""
    return _call(nr.wait4, pid, Out(4), options, 0,
                 decode=lambda r, o: r if r <= 0 else (r, struct.unpack("<i", o[0])[0]))  # fmt: skip


def kill(pid: int, sig: int) -> Syscall:
    return _call(nr.kill, pid, sig)


def tgkill(tgid: int, tid: int, sig: int) -> Syscall:
    return _call(nr.tgkill, tgid, tid, sig)


def prctl(option: int, arg2: Any = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> Syscall:
    return _call(nr.prctl, option, arg2, arg3, arg4, arg5)


def capbset_read(cap: int) -> Syscall:
    """prctl(PR_CAPBSET_READ): 1 if ``cap`` is in the bounding set."""
    return _call(nr.prctl, 23, cap, 0, 0, 0)


def capbset_drop(cap: int) -> Syscall:
    """prctl(PR_CAPBSET_DROP): remove ``cap`` from the bounding set (needs CAP_SETPCAP)."""
    return _call(nr.prctl, 24, cap, 0, 0, 0)


#: prctl(PR_CAP_AMBIENT) operations.
CAP_AMBIENT_IS_SET, CAP_AMBIENT_RAISE, CAP_AMBIENT_LOWER, CAP_AMBIENT_CLEAR_ALL = 1, 2, 3, 4


def cap_ambient(op: int, cap: int = 0) -> Syscall:
    """prctl(PR_CAP_AMBIENT, op, cap): IS_SET, RAISE (permitted and inheritable), LOWER, CLEAR_ALL."""
    return _call(nr.prctl, 47, op, cap, 0, 0)


def set_keepcaps(keep: bool) -> Syscall:
    """prctl(PR_SET_KEEPCAPS): keep the permitted set when leaving uid 0 (cleared by execve)."""
    return _call(nr.prctl, 8, int(keep), 0, 0, 0)


def get_keepcaps() -> Syscall:
    return _call(nr.prctl, 7, 0, 0, 0, 0)


def prctl_get_name() -> Syscall:
    return _call(nr.prctl, 16, Out(16), 0, 0, 0,
                 decode=_ok_then(lambda r, o: o[0].split(b"\0", 1)[0].decode()))  # fmt: skip


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capget(pid: int = 0) -> Syscall:
    """Returns ``(effective, permitted, inheritable)`` as 64-bit masks."""

    def dec(r: int, o: list[bytes]) -> Any:
        e0, p0, i0, e1, p1, i1 = struct.unpack("<6I", o[0])
        return (e0 | e1 << 32, p0 | p1 << 32, i0 | i1 << 32)

    header = struct.pack("<Ii", _LINUX_CAPABILITY_VERSION_3, pid)
    return _call(nr.capget, header, Out(24), decode=_ok_then(dec))


def capset(effective: int, permitted: int, inheritable: int = 0, pid: int = 0) -> Syscall:
    header = struct.pack("<Ii", _LINUX_CAPABILITY_VERSION_3, pid)
    m = 0xFFFFFFFF
    data = struct.pack("<6I", effective & m, permitted & m, inheritable & m,
                       effective >> 32, permitted >> 32, inheritable >> 32)  # fmt: skip
    return _call(nr.capset, header, data)


def getrlimit(resource: int) -> Syscall:
    return _call(nr.getrlimit, resource, Out(8), decode=_ok_then(lambda r, o: struct.unpack("<II", o[0])))


def setrlimit(resource: int, soft: int, hard: int) -> Syscall:
    return _call(nr.setrlimit, resource, struct.pack("<II", soft & 0xFFFFFFFF, hard & 0xFFFFFFFF))


def prlimit64(pid: int, resource: int, new: tuple[int, int] | None = None) -> Syscall:
    """Returns the old ``(soft, hard)`` (64-bit, RLIM64_INFINITY = 2**64-1)."""
    newbuf: Any = struct.pack("<QQ", *new) if new is not None else 0
    return _call(nr.prlimit64, pid, resource, newbuf, Out(16),
                 decode=_ok_then(lambda r, o: struct.unpack("<QQ", o[0])))  # fmt: skip


def sched_yield() -> Syscall:
    return _call(nr.sched_yield)


def set_tid_address(addr: int = 0) -> Syscall:
    return _call(nr.set_tid_address, addr)


# -- memory ----------------------------------------------------------------------------------------
def brk(addr: int) -> Syscall:
    return _call(nr.brk, addr)


def mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> Syscall:
    return _call(nr.mmap, addr, length, prot, flags, fd, offset)


def munmap(addr: int, length: int) -> Syscall:
    return _call(nr.munmap, addr, length)


def mprotect(addr: int, length: int, prot: int) -> Syscall:
    return _call(nr.mprotect, addr, length, prot)


# -- namespaces, uts, time, ipc --------------------------------------------------------------------
def uname() -> Syscall:
    """Returns a dict of the six fields (sysname, nodename, release, version, machine, domainname)."""

    def dec(r: int, o: list[bytes]) -> Any:
        keys = ("sysname", "nodename", "release", "version", "machine", "domainname")
        raw = o[0]
        return {k: raw[i * UTS_FIELD:(i + 1) * UTS_FIELD].split(b"\0", 1)[0].decode()
                for i, k in enumerate(keys)}  # fmt: skip

    return _call(nr.uname, Out(6 * UTS_FIELD), decode=_ok_then(dec))


def sethostname(name: str | bytes) -> Syscall:
    raw = name.encode() if isinstance(name, str) else bytes(name)
    return _call(nr.sethostname, raw or b"\0", len(raw))


def setdomainname(name: str | bytes) -> Syscall:
    raw = name.encode() if isinstance(name, str) else bytes(name)
    return _call(nr.setdomainname, raw or b"\0", len(raw))


def unshare(flags: int) -> Syscall:
    return _call(nr.unshare, flags)


def setns(fd: int, nstype: int = 0) -> Syscall:
    return _call(nr.setns, fd, nstype)


def clock_gettime(clockid: int) -> Syscall:
    """Returns nanoseconds (an int) or ``-errno``."""
    return _call(nr.clock_gettime, clockid, Out(8),
                 decode=_ok_then(lambda r, o: _timespec_ns(o[0])))  # fmt: skip


def _timespec_ns(raw: bytes) -> int:
    sec, nsec = struct.unpack("<iI", raw)
    return int(sec) * 1_000_000_000 + int(nsec)


def nanosleep(ns: int) -> Syscall:
    sec, nsec = divmod(ns, 1_000_000_000)
    return _call(nr.nanosleep, struct.pack("<iI", sec, nsec), 0)


def msgget(key: int, flags: int) -> Syscall:
    return _call(nr.msgget, key, flags)


def msgsnd(msqid: int, mtype: int, data: bytes, flags: int = 0) -> Syscall:
    return _call(nr.msgsnd, msqid, struct.pack("<i", mtype) + bytes(data), len(data), flags)


def msgrcv(msqid: int, size: int, msgtyp: int = 0, flags: int = 0) -> Syscall:
    """Returns ``(mtype, data)`` or ``-errno``."""
    return _call(nr.msgrcv, msqid, Out(4 + size), size, msgtyp, flags,
                 decode=_ok_then(lambda r, o: (struct.unpack("<i", o[0][:4])[0], o[0][4:4 + r])))  # fmt: skip


def msgctl(msqid: int, cmd: int) -> Syscall:
    """IPC_RMID and friends; IPC_STAT's buffer is returned raw (see the kernel's msqid64_ds layout)."""
    return _call(nr.msgctl, msqid, cmd, Out(96), decode=None)


def seccomp(op: int, flags: int = 0, args: Any = 0) -> Syscall:
    return _call(nr.seccomp, op, flags, args)


def raw(number: int, *args: Any) -> Syscall:
    """Any system call by number (unknown numbers return -ENOSYS)."""
    return _call(number, *args)
