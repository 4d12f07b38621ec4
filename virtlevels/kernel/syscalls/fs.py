"""File system calls: thin adapters from registers and user memory to the VFS façade (vfs/ops.py)."""

from __future__ import annotations

import struct
from typing import Any

import attrs

from virtlevels.kernel import signals
from virtlevels.kernel.errno import EBADF, EFBIG, EINVAL, ENOTTY, ERANGE, KernelError
from virtlevels.kernel.process import RLIM_INFINITY, RLIMIT_FSIZE
from virtlevels.kernel.syscalls import numbers as nr
from virtlevels.kernel.syscalls.table import syscall
from virtlevels.kernel.syscalls.util import mem, s32
from virtlevels.kernel.usermem import read_cstr, read_path, read_u32
from virtlevels.kernel.vfs.constants import (
    AT_SYMLINK_NOFOLLOW,
    F_DUPFD,
    F_DUPFD_CLOEXEC,
    F_GETFD,
    F_GETFL,
    F_SETFD,
    F_SETFL,
    FD_CLOEXEC,
    O_CLOEXEC,
    O_PATH,
    SETFL_MASK,
)
from virtlevels.kernel.vfs.file import OpenFile
from virtlevels.kernel.vfs.pipe import BrokenPipe
from virtlevels.kernel.vfs.stat import Stat, pack_stat

IOV_MAX = 1024
MAX_RW_COUNT = 0x7FFFF000  # INT_MAX & PAGE_MASK (fs/read_write.c)


def _fds(k: Any, t: Any) -> Any:
    files = t.files
    files.max_fds = k.nofile(t)
    return files


def _dirfd(t: Any, dirfd: int, path: str) -> OpenFile | None:
    return t.files.dirfd(s32(dirfd), path)  # type: ignore[no-any-return]


def _opt_str(t: Any, addr: int) -> str | None:
    return None if addr == 0 else read_path(mem(t), addr)


@syscall(nr.openat, 4)
def sys_openat(k: Any, t: Any, dirfd: int, pathp: int, flags: int, mode: int) -> int:
    path = read_path(mem(t), pathp)
    files = _fds(k, t)
    d = _dirfd(t, dirfd, path)
    f = k.vfs.openat(t.fs, t.creds, path, flags, mode & 0o7777, d)
    try:
        return int(files.install(f, bool(flags & O_CLOEXEC)))
    except KernelError:
        f.put()
        raise


@syscall(nr.close, 1)
def sys_close(k: Any, t: Any, fd: int) -> int:
    t.files.close(s32(fd))
    return 0


def _check_fsize(k: Any, t: Any, f: OpenFile, count: int) -> int:
    """RLIMIT_FSIZE (generic_write_check_limits): past the limit SIGXFSZ and EFBIG; else shorten."""
    limit = t.process.rlimit(RLIMIT_FSIZE)
    if limit == RLIM_INFINITY or not f.inode.is_reg:
        return count
    from virtlevels.kernel.vfs.constants import O_APPEND

    pos = f.inode.size if f.flags & O_APPEND else f.pos
    if pos >= limit:
        k.send_signal(t.process, signals.SIGXFSZ)
        raise KernelError(EFBIG, "RLIMIT_FSIZE exceeded")
    return min(count, limit - pos)


def _write(k: Any, t: Any, f: OpenFile, data: bytes) -> int:
    data = data[:_check_fsize(k, t, f, len(data))]
    try:
        return int(k.vfs.write(f, data))
    except BrokenPipe:
        k.send_signal(t.process, signals.SIGPIPE)  # pipe(7): SIGPIPE, then EPIPE if it is ignored
        raise


@syscall(nr.read, 3)
def sys_read(k: Any, t: Any, fd: int, buf: int, count: int) -> int:
    f = t.files.get(s32(fd))
    data = k.vfs.read(f, min(count, MAX_RW_COUNT))
    mem(t).write(buf, data)
    return len(data)


@syscall(nr.write, 3)
def sys_write(k: Any, t: Any, fd: int, buf: int, count: int) -> int:
    f = t.files.get(s32(fd))
    data = mem(t).read(buf, min(count, MAX_RW_COUNT))
    return _write(k, t, f, data)


def _iovecs(t: Any, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    n = s32(iovcnt)
    if n < 0 or n > IOV_MAX:
        raise KernelError(EINVAL, f"iovcnt {n}")
    m = mem(t)
    return [struct.unpack("<II", m.read(iov + 8 * i, 8)) for i in range(n)]


@syscall(nr.readv, 3)
def sys_readv(k: Any, t: Any, fd: int, iov: int, iovcnt: int) -> int:
    f = t.files.get(s32(fd))
    vecs = _iovecs(t, iov, iovcnt)
    total = 0
    m = mem(t)
    for i, (base, length) in enumerate(vecs):
        if length == 0:
            continue
        try:
            data = k.vfs.read(f, length)
        except Exception:
            if i and total:
                return total  # a partial readv returns what it got before blocking
            raise
        m.write(base, data)
        total += len(data)
        if len(data) < length:
            break
    return total


@syscall(nr.writev, 3)
def sys_writev(k: Any, t: Any, fd: int, iov: int, iovcnt: int) -> int:
    f = t.files.get(s32(fd))
    vecs = _iovecs(t, iov, iovcnt)
    m = mem(t)
    data = b"".join(m.read(base, length) for base, length in vecs)
    return _write(k, t, f, data)


@syscall(nr.lseek, 3)
def sys_lseek(k: Any, t: Any, fd: int, offset: int, whence: int) -> int:
    f = t.files.get(s32(fd))
    return int(k.vfs.lseek(f, s32(offset), whence))


@syscall(nr.getdents64, 3)
def sys_getdents64(k: Any, t: Any, fd: int, dirp: int, count: int) -> int:
    f = t.files.get(s32(fd))
    data = k.vfs.getdents64(f, count)
    mem(t).write(dirp, data)
    return len(data)


@syscall(nr.mkdirat, 3)
def sys_mkdirat(k: Any, t: Any, dirfd: int, pathp: int, mode: int) -> int:
    path = read_path(mem(t), pathp)
    k.vfs.mkdirat(t.fs, t.creds, path, mode & 0o7777, _dirfd(t, dirfd, path))
    return 0


@syscall(nr.mknodat, 4)
def sys_mknodat(k: Any, t: Any, dirfd: int, pathp: int, mode: int, dev: int) -> int:
    """mknodat(2): FIFOs, regular files and sockets for anyone allowed to create in the directory;
    character and block devices need CAP_MKNOD (in the initial user namespace, capable())."""
    path = read_path(mem(t), pathp)
    k.vfs.mknodat(t.fs, t.creds, path, mode & 0o177777, dev & 0xFFFFFFFF, _dirfd(t, dirfd, path))
    return 0


@syscall(nr.unlinkat, 3)
def sys_unlinkat(k: Any, t: Any, dirfd: int, pathp: int, flags: int) -> int:
    path = read_path(mem(t), pathp)
    k.vfs.unlinkat(t.fs, t.creds, path, flags, _dirfd(t, dirfd, path))
    return 0


@syscall(nr.symlinkat, 3)
def sys_symlinkat(k: Any, t: Any, targetp: int, dirfd: int, pathp: int) -> int:
    target = read_path(mem(t), targetp)
    path = read_path(mem(t), pathp)
    k.vfs.symlinkat(t.fs, t.creds, target, path, _dirfd(t, dirfd, path))
    return 0


@syscall(nr.readlinkat, 4)
def sys_readlinkat(k: Any, t: Any, dirfd: int, pathp: int, buf: int, size: int) -> int:
    if s32(size) <= 0:
        raise KernelError(EINVAL, "readlink buffer size")
    path = read_path(mem(t), pathp)
    text = k.vfs.readlinkat(t.fs, t.creds, path, _dirfd(t, dirfd, path)).encode()[:size]
    mem(t).write(buf, text)
    return len(text)


@syscall(nr.renameat2, 5)
def sys_renameat2(k: Any, t: Any, olddirfd: int, oldp: int, newdirfd: int, newp: int, flags: int) -> int:
    old = read_path(mem(t), oldp)
    new = read_path(mem(t), newp)
    k.vfs.renameat2(t.fs, t.creds, old, new, flags, _dirfd(t, olddirfd, old), _dirfd(t, newdirfd, new))
    return 0


def _user_stat(t: Any, st: Stat) -> bytes:
    """struct stat with uids and gids as the caller's user namespace sees them."""
    uns = t.nsproxy.user
    return pack_stat(attrs.evolve(st, st_uid=uns.from_kuid_munged(st.st_uid),
                                  st_gid=uns.from_kgid_munged(st.st_gid)))  # fmt: skip


@syscall(nr.newfstatat, 4)
def sys_newfstatat(k: Any, t: Any, dirfd: int, pathp: int, statbuf: int, flags: int) -> int:
    path = read_path(mem(t), pathp)
    st = k.vfs.stat(t.fs, t.creds, path, flags, _dirfd(t, dirfd, path) if path else t.files.dirfd(s32(dirfd)))
    mem(t).write(statbuf, _user_stat(t, st))
    return 0


@syscall(nr.fstat, 2)
def sys_fstat(k: Any, t: Any, fd: int, statbuf: int) -> int:
    f = t.files.get(s32(fd))
    mem(t).write(statbuf, _user_stat(t, k.vfs.fstat(f)))
    return 0


@syscall(nr.faccessat, 3)
def sys_faccessat(k: Any, t: Any, dirfd: int, pathp: int, mode: int) -> int:
    path = read_path(mem(t), pathp)
    k.vfs.faccessat(t.fs, t.creds, path, mode, 0, _dirfd(t, dirfd, path))
    return 0


@syscall(nr.getcwd, 2)
def sys_getcwd(k: Any, t: Any, buf: int, size: int) -> int:
    text = k.vfs.getcwd(t.fs).encode() + b"\0"
    if len(text) > size:
        raise KernelError(ERANGE, "getcwd buffer too small")
    mem(t).write(buf, text)
    return len(text)


@syscall(nr.chdir, 1)
def sys_chdir(k: Any, t: Any, pathp: int) -> int:
    k.vfs.chdir(t.fs, t.creds, read_path(mem(t), pathp))
    return 0


@syscall(nr.fchdir, 1)
def sys_fchdir(k: Any, t: Any, fd: int) -> int:
    k.vfs.fchdir(t.fs, t.creds, t.files.get(s32(fd)))
    return 0


@syscall(nr.chroot, 1)
def sys_chroot(k: Any, t: Any, pathp: int) -> int:
    k.vfs.chroot(t.fs, t.creds, read_path(mem(t), pathp))
    return 0


@syscall(nr.dup, 1)
def sys_dup(k: Any, t: Any, fd: int) -> int:
    return int(_fds(k, t).dup(s32(fd)))


@syscall(nr.dup3, 3)
def sys_dup3(k: Any, t: Any, old: int, new: int, flags: int) -> int:
    return int(_fds(k, t).dup3(s32(old), s32(new), flags))


@syscall(nr.pipe2, 2)
def sys_pipe2(k: Any, t: Any, fdsp: int, flags: int) -> int:
    r, w = k.vfs.pipe(t.creds, flags)
    files = _fds(k, t)
    cloexec = bool(flags & O_CLOEXEC)
    try:
        rfd = files.install(r, cloexec)
    except KernelError:
        r.put()
        w.put()
        raise
    try:
        wfd = files.install(w, cloexec)
    except KernelError:
        files.close(rfd)
        w.put()
        raise
    mem(t).write(fdsp, struct.pack("<ii", rfd, wfd))
    return 0


@syscall(nr.fcntl, 3)
def sys_fcntl(k: Any, t: Any, fd: int, cmd: int, arg: int) -> int:
    files = _fds(k, t)
    fd = s32(fd)
    f = files.get(fd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        return int(files.dupfd(fd, s32(arg), cmd == F_DUPFD_CLOEXEC))
    if cmd == F_GETFD:
        return FD_CLOEXEC if files.get_cloexec(fd) else 0
    if cmd == F_SETFD:
        files.set_cloexec(fd, bool(arg & FD_CLOEXEC))
        return 0
    if cmd == F_GETFL:
        return int(f.flags)
    if cmd == F_SETFL:
        f.flags = (f.flags & ~SETFL_MASK) | (arg & SETFL_MASK)
        return 0
    raise KernelError(EINVAL, f"fcntl command {cmd}")


@syscall(nr.ioctl, 3)
def sys_ioctl(k: Any, t: Any, fd: int, request: int, arg: int) -> int:
    f = t.files.get(s32(fd))
    handler = getattr(f.ops, "ioctl", None)  # file_operations.unlocked_ioctl (sockets: netdevice(7))
    if handler is not None:
        return int(handler(k, t, f, request & 0xFFFFFFFF, arg))
    # No terminals are modelled: TCGETS and every other request is "not a typewriter".
    raise KernelError(ENOTTY, f"ioctl {request:#x}")


@syscall(nr.ftruncate, 2)
def sys_ftruncate(k: Any, t: Any, fd: int, length: int) -> int:
    f = t.files.get(s32(fd))
    if not f.writable:
        raise KernelError(EBADF if f.flags & O_PATH else EINVAL, "not open for writing")
    limit = t.process.rlimit(RLIMIT_FSIZE)
    if limit != RLIM_INFINITY and length > limit:
        k.send_signal(t.process, signals.SIGXFSZ)
        raise KernelError(EFBIG, "RLIMIT_FSIZE exceeded")
    k.vfs.ftruncate(f, s32(length))
    return 0


@syscall(nr.umask, 1)
def sys_umask(k: Any, t: Any, mask: int) -> int:
    old = t.fs.umask
    t.fs.umask = mask & 0o777
    return int(old)


@syscall(nr.mount, 5)
def sys_mount(k: Any, t: Any, sourcep: int, targetp: int, fstypep: int, flags: int, datap: int) -> int:
    source = _opt_str(t, sourcep)
    target = read_path(mem(t), targetp)
    fstype = _opt_str(t, fstypep)
    data = None if datap == 0 else read_cstr(mem(t), datap).decode(errors="replace")
    k.vfs.mount(t.fs, t.creds, source, target, fstype, flags, data)
    return 0


@syscall(nr.umount2, 2)
def sys_umount2(k: Any, t: Any, targetp: int, flags: int) -> int:
    k.vfs.umount2(t.fs, t.creds, read_path(mem(t), targetp), flags)
    return 0


@syscall(nr.pivot_root, 2)
def sys_pivot_root(k: Any, t: Any, newp: int, oldp: int) -> int:
    others = []
    seen = {id(t.fs)}
    for p in k.processes:
        for th in p.threads:
            if id(th.fs) not in seen and not th.dead:
                seen.add(id(th.fs))
                others.append(th.fs)
    k.vfs.pivot_root(t.fs, t.creds, read_path(mem(t), newp), read_path(mem(t), oldp), others)
    return 0


_ = (read_u32, AT_SYMLINK_NOFOLLOW)
