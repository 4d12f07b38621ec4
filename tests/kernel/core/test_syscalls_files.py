"""File system calls through scripted processes: success and errno paths."""

from __future__ import annotations

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.errno import EBADF, EEXIST, EINVAL, ENOENT, ENOSYS, ENOTTY, ERANGE, ESPIPE
from virtlevels.kernel.vfs.constants import (
    AT_FDCWD,
    AT_REMOVEDIR,
    F_DUPFD,
    F_GETFD,
    F_GETFL,
    F_SETFD,
    F_SETFL,
    O_CLOEXEC,
    O_CREAT,
    O_EXCL,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    SEEK_SET,
)
from virtlevels.kernel.vfs.stat import parse_dirents64


def test_open_write_read_lseek_close(kernel, run_prog):
    out = {}

    def prog():
        fd = yield sc.openat(AT_FDCWD, "/tmp/f", O_RDWR | O_CREAT, 0o600)
        out["fd"] = fd
        out["w"] = yield sc.write(fd, b"hello world")
        out["seek"] = yield sc.lseek(fd, 6, SEEK_SET)
        out["r"] = yield sc.read(fd, 100)
        out["st"] = yield sc.fstat(fd)
        out["close"] = yield sc.close(fd)
        out["close2"] = yield sc.close(fd)
        out["excl"] = yield sc.openat(AT_FDCWD, "/tmp/f", O_RDWR | O_CREAT | O_EXCL)
        out["noent"] = yield sc.openat(AT_FDCWD, "/nope", O_RDONLY)

    run_prog(kernel, prog)
    assert out["fd"] == 0
    assert out["w"] == 11 and out["seek"] == 6 and out["r"] == b"world"
    assert out["st"].st_size == 11 and out["st"].st_mode & 0o777 == 0o600
    assert out["close"] == 0 and out["close2"] == -EBADF
    assert out["excl"] == -EEXIST and out["noent"] == -ENOENT


def test_dirs_cwd_getdents_unlink_rename(kernel, run_prog):
    out = {}

    def prog():
        out["mk"] = yield sc.mkdirat(AT_FDCWD, "/tmp/d", 0o755)
        out["mk2"] = yield sc.mkdirat(AT_FDCWD, "/tmp/d", 0o755)
        out["cd"] = yield sc.chdir("/tmp/d")
        out["cwd"] = yield sc.getcwd()
        out["small"] = yield sc.getcwd(3)
        fd = yield sc.openat(AT_FDCWD, "a", O_WRONLY | O_CREAT)
        yield sc.close(fd)
        out["ren"] = yield sc.renameat2(AT_FDCWD, "a", AT_FDCWD, "b")
        d = yield sc.openat(AT_FDCWD, ".", O_RDONLY)
        out["ents"] = yield sc.getdents64(d)
        out["acc"] = yield sc.faccessat(AT_FDCWD, "b", 4)
        out["stat"] = yield sc.newfstatat(AT_FDCWD, "/tmp/d/b")
        out["unl"] = yield sc.unlinkat(AT_FDCWD, "b")
        out["unl2"] = yield sc.unlinkat(AT_FDCWD, "b")
        yield sc.chdir("/")
        out["rmdir"] = yield sc.unlinkat(AT_FDCWD, "/tmp/d", AT_REMOVEDIR)

    run_prog(kernel, prog)
    assert out["mk"] == 0 and out["mk2"] == -EEXIST
    assert out["cd"] == 0 and out["cwd"] == "/tmp/d" and out["small"] == -ERANGE
    assert out["ren"] == 0
    names = {e[3] for e in parse_dirents64(out["ents"])}
    assert names == {".", "..", "b"}
    assert out["acc"] == 0 and out["stat"].st_size == 0
    assert out["unl"] == 0 and out["unl2"] == -ENOENT and out["rmdir"] == 0


def test_dup_fcntl_pipe_ioctl(kernel, run_prog):
    out = {}

    def prog():
        r, w = yield sc.pipe2(O_CLOEXEC)
        out["fds"] = (r, w)
        out["getfd"] = yield sc.fcntl(r, F_GETFD)
        out["setfd"] = yield sc.fcntl(r, F_SETFD, 0)
        out["getfd2"] = yield sc.fcntl(r, F_GETFD)
        out["dup"] = yield sc.dup(w)
        out["dup3"] = yield sc.dup3(w, 10, 0)
        out["dup3same"] = yield sc.dup3(w, w, 0)
        out["dupfd"] = yield sc.fcntl(w, F_DUPFD, 20)
        yield sc.fcntl(r, F_SETFL, O_NONBLOCK)
        out["fl"] = yield sc.fcntl(r, F_GETFL)
        out["empty"] = yield sc.read(r, 10)
        yield sc.write(10, b"abc")
        out["data"] = yield sc.read(r, 10)
        out["spipe"] = yield sc.lseek(r, 0, SEEK_SET)
        out["tty"] = yield sc.ioctl(r, 0x5401)
        out["badtty"] = yield sc.ioctl(99, 0x5401)
        out["badcmd"] = yield sc.fcntl(r, 12345)

    run_prog(kernel, prog)
    assert out["fds"] == (0, 1)
    assert out["getfd"] == 1 and out["setfd"] == 0 and out["getfd2"] == 0
    assert out["dup"] == 2 and out["dup3"] == 10 and out["dup3same"] == -EINVAL and out["dupfd"] == 20
    assert out["fl"] & O_NONBLOCK
    assert out["empty"] == -11  # EAGAIN
    assert out["data"] == b"abc" and out["spipe"] == -ESPIPE
    assert out["tty"] == -ENOTTY and out["badtty"] == -EBADF and out["badcmd"] == -EINVAL


def test_blocking_pipe_between_processes(kernel, run_prog):
    out = {}

    def writer(w):
        yield sc.nanosleep(1_000_000)
        yield sc.write(w, b"ping")
        return 0

    def prog():
        r, w = yield sc.pipe2()
        yield sc.fork(writer, w)
        yield sc.close(w)
        out["t0"] = kernel.world.now
        out["data"] = yield sc.read(r, 10)
        out["t1"] = kernel.world.now
        out["eof"] = yield sc.read(r, 10)
        yield sc.wait4(-1)

    run_prog(kernel, prog)
    assert out["data"] == b"ping" and out["eof"] == b""
    assert out["t1"] - out["t0"] >= 1_000_000  # the reader slept until the writer woke up


def test_unknown_syscall_is_enosys(kernel, run_prog):
    out = {}

    def prog():
        out["r"] = yield sc.raw(4000, 1, 2)

    run_prog(kernel, prog)
    assert out["r"] == -ENOSYS
