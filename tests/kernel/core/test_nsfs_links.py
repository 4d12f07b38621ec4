"""/proc/PID/ns/* are the VFS's magic links: an fd opened on one holds the namespace for setns."""

from __future__ import annotations

from typing import Any

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.errno import EINVAL
from virtlevels.kernel.ns import CLONE_NEWUTS
from virtlevels.kernel.vfs.constants import AT_FDCWD, O_RDONLY

SIGCHLD = 17


def test_ns_fd_keeps_the_namespace_after_its_processes_exit(kernel, run_prog) -> None:
    out: dict[str, Any] = {}

    def box() -> Any:
        yield sc.sethostname("box")
        yield sc.nanosleep(1_000_000)
        return 0

    def prog() -> Any:
        c = yield sc.clone(CLONE_NEWUTS | SIGCHLD, box)
        yield sc.nanosleep(10_000)
        fd = yield sc.openat(AT_FDCWD, f"/proc/{c}/ns/uts", O_RDONLY)
        out["link"] = yield sc.readlinkat(AT_FDCWD, f"/proc/{c}/ns/uts")
        out["st"] = yield sc.fstat(fd)
        out["read"] = yield sc.read(fd, 10)
        yield sc.wait4(c)  # the namespace's only process is gone; the fd still holds it
        out["setns"] = yield sc.setns(fd, CLONE_NEWUTS)
        out["name"] = (yield sc.uname())["nodename"]
        other = yield sc.openat(AT_FDCWD, "/proc/self/status", O_RDONLY)
        out["not_ns"] = yield sc.setns(other, 0)
        yield sc.close(fd)
        return 0

    run_prog(kernel, prog)
    assert out["link"].startswith("uts:[")
    assert out["st"].st_ino == int(out["link"][5:-1])  # the namespace's inode number
    assert out["read"] == -EINVAL
    assert out["setns"] == 0 and out["name"] == "box"
    assert out["not_ns"] == -EINVAL


def test_closing_the_last_ns_fd_releases_the_namespace(kernel, run_prog) -> None:
    seen: dict[str, Any] = {}

    def box() -> Any:
        yield sc.nanosleep(1000)
        return 0

    def prog() -> Any:
        c = yield sc.clone(CLONE_NEWUTS | SIGCHLD, box)
        fd = yield sc.openat(AT_FDCWD, f"/proc/{c}/ns/uts", O_RDONLY)
        link = yield sc.readlinkat(AT_FDCWD, f"/proc/{c}/ns/uts")
        seen["ino"] = int(link[5:-1])
        yield sc.wait4(c)
        seen["alive_while_open"] = kernel.nsctx.by_inode(seen["ino"]) is not None
        yield sc.close(fd)
        seen["alive_after_close"] = kernel.nsctx.by_inode(seen["ino"]) is not None
        return 0

    run_prog(kernel, prog)
    assert seen["alive_while_open"] and not seen["alive_after_close"]
