"""setuid in user namespaces, setgroups/getgroups, the bounding and ambient sets, keep-caps,
execve's capability transformation, mknodat and the environment through execve."""

from __future__ import annotations

from typing import Any

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.caps import ALL_CAPS, CAP_MKNOD, CAP_NET_BIND_SERVICE, CAP_SETPCAP, CAP_SYS_ADMIN
from virtlevels.kernel.errno import EINVAL, EPERM
from virtlevels.kernel.ns import CLONE_NEWUSER
from virtlevels.kernel.vfs.constants import AT_FDCWD, O_RDONLY, O_WRONLY, S_IFCHR, S_IFIFO

SIGCHLD = 17


def _write(path: str, text: str) -> Any:
    fd = yield sc.openat(AT_FDCWD, path, O_WRONLY)
    r = yield sc.write(fd, text)
    yield sc.close(fd)
    return r


def _read(path: str) -> Any:
    fd = yield sc.openat(AT_FDCWD, path, O_RDONLY)
    data = yield sc.read(fd, 4096)
    yield sc.close(fd)
    return data


def test_setuid_0_in_new_user_namespace_keeps_capabilities(kernel, run_prog) -> None:
    """cap_emulate_setxuid compares with the namespace's root (make_kuid(ns, 0)), not kernel uid 0."""
    out: dict[str, Any] = {}

    def child(rfd: int) -> Any:
        yield sc.read(rfd, 1)  # wait for the maps
        out["setgid"] = yield sc.setgid(0)
        out["setuid"] = yield sc.setuid(0)
        out["caps"] = yield sc.capget()
        out["uid"] = yield sc.getuid()
        return 0

    def parent() -> Any:
        r, w = yield sc.pipe2()
        pid = yield sc.clone(CLONE_NEWUSER | SIGCHLD, child, r)
        yield from _write(f"/proc/{pid}/uid_map", "0 100000 65536")
        yield from _write(f"/proc/{pid}/gid_map", "0 100000 65536")
        yield sc.write(w, b"x")
        yield sc.wait4(pid)
        return 0

    run_prog(kernel, parent)
    assert out["setgid"] == 0 and out["setuid"] == 0 and out["uid"] == 0
    eff, perm, _inh = out["caps"]
    assert eff == perm == ALL_CAPS


def test_setuid_away_from_root_drops_caps_unless_keepcaps(kernel, run_prog) -> None:
    out: dict[str, Any] = {}

    def plain() -> Any:
        yield sc.setuid(1000)
        out["plain"] = yield sc.capget()

    def kept() -> Any:
        out["get0"] = yield sc.get_keepcaps()
        out["set"] = yield sc.set_keepcaps(True)
        out["bad"] = yield sc.prctl(8, 2)
        out["get1"] = yield sc.get_keepcaps()
        yield sc.setuid(1000)
        out["kept"] = yield sc.capget()

    def root() -> Any:
        for prog in (plain, kept):
            pid = yield sc.fork(prog)
            yield sc.wait4(pid)

    run_prog(kernel, root)
    assert out["plain"] == (0, 0, 0)
    assert out["get0"] == 0 and out["set"] == 0 and out["bad"] == -EINVAL and out["get1"] == 1
    assert out["kept"] == (0, ALL_CAPS, 0)  # effective cleared (euid left root), permitted kept


def test_setgroups_and_getgroups(kernel, run_prog) -> None:
    out: dict[str, Any] = {}

    def unpriv() -> Any:
        yield sc.setuid(1000)
        out["eperm"] = yield sc.setgroups([5])

    def prog() -> Any:
        out["none"] = yield sc.getgroups(0)
        out["set"] = yield sc.setgroups([30, 10, 20, 10])
        out["count"] = yield sc.getgroups(0)
        out["list"] = yield sc.getgroups()
        out["small"] = yield sc.getgroups(1)
        out["status"] = yield from _read("/proc/self/status")
        pid = yield sc.fork(unpriv)
        yield sc.wait4(pid)
        out["clear"] = yield sc.setgroups([])
        out["after"] = yield sc.getgroups(0)

    run_prog(kernel, prog)
    assert out["none"] == 0 and out["set"] == 0 and out["count"] == 3
    assert out["list"] == (10, 20, 30) and out["small"] == -EINVAL
    assert b"Groups:\t10 20 30" in out["status"]
    assert out["eperm"] == -EPERM and out["clear"] == 0 and out["after"] == 0


def test_setgroups_in_user_namespace_needs_setgroups_allow_and_mapping(kernel, run_prog) -> None:
    out: dict[str, Any] = {}

    def child(rfd: int) -> Any:
        out["before_map"] = yield sc.setgroups([1])
        yield sc.read(rfd, 1)
        out["mapped"] = yield sc.setgroups([1, 2])
        out["unmapped"] = yield sc.setgroups([70000])
        out["list"] = yield sc.getgroups()

    def parent() -> Any:
        r, w = yield sc.pipe2()
        pid = yield sc.clone(CLONE_NEWUSER | SIGCHLD, child, r)
        yield sc.nanosleep(10_000)
        yield from _write(f"/proc/{pid}/uid_map", "0 100000 65536")
        yield from _write(f"/proc/{pid}/gid_map", "0 100000 65536")
        yield sc.write(w, b"x")
        yield sc.wait4(pid)

    run_prog(kernel, parent)
    assert out["before_map"] == -EPERM  # gid_map not written yet
    assert out["mapped"] == 0 and out["unmapped"] == -EINVAL and out["list"] == (1, 2)


def test_bounding_set_read_and_drop(kernel, run_prog) -> None:
    out: dict[str, Any] = {}

    def unpriv() -> Any:
        yield sc.capset(0, 0)
        out["eperm"] = yield sc.capbset_drop(CAP_SYS_ADMIN)

    def prog() -> Any:
        out["read"] = yield sc.capbset_read(CAP_SYS_ADMIN)
        out["drop"] = yield sc.capbset_drop(CAP_SYS_ADMIN)
        out["read2"] = yield sc.capbset_read(CAP_SYS_ADMIN)
        out["inval"] = yield sc.capbset_read(64)
        out["status"] = yield from _read("/proc/self/status")
        pid = yield sc.fork(unpriv)
        yield sc.wait4(pid)
        # execve as root: P'(permitted) = P(inheritable) | P(bounding), so the dropped cap is gone.
        yield sc.execve("/bin/showcaps", ["showcaps"])

    def showcaps() -> Any:
        out["after_exec"] = yield sc.capget()

    kernel.install_program("/bin/showcaps", program=showcaps)
    run_prog(kernel, prog)
    assert out["read"] == 1 and out["drop"] == 0 and out["read2"] == 0 and out["inval"] == -EINVAL
    assert f"CapBnd:\t{ALL_CAPS & ~(1 << CAP_SYS_ADMIN):016x}".encode() in out["status"]
    assert out["eperm"] == -EPERM
    eff, perm, _ = out["after_exec"]
    assert eff == perm == ALL_CAPS & ~(1 << CAP_SYS_ADMIN)


def test_ambient_capabilities_survive_execve_of_non_root(kernel, run_prog) -> None:
    out: dict[str, Any] = {}
    bind = 1 << CAP_NET_BIND_SERVICE

    def prog() -> Any:
        out["raise_no_inh"] = yield sc.cap_ambient(sc.CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE)
        # runc's order: keep-caps, leave root (which clears ambient), restore the sets, raise.
        yield sc.set_keepcaps(True)
        yield sc.setuid(1000)
        yield sc.capset(ALL_CAPS, ALL_CAPS, bind | 1 << CAP_SETPCAP)
        out["raise"] = yield sc.cap_ambient(sc.CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE)
        out["raise2"] = yield sc.cap_ambient(sc.CAP_AMBIENT_RAISE, CAP_SETPCAP)
        out["lower"] = yield sc.cap_ambient(sc.CAP_AMBIENT_LOWER, CAP_SETPCAP)
        out["is_set"] = yield sc.cap_ambient(sc.CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE)
        out["is_set2"] = yield sc.cap_ambient(sc.CAP_AMBIENT_IS_SET, CAP_SETPCAP)
        out["bad"] = yield sc.cap_ambient(9, 0)
        yield sc.execve("/bin/showcaps", ["showcaps"])

    def showcaps() -> Any:
        out["after_exec"] = yield sc.capget()
        out["keep"] = yield sc.get_keepcaps()
        out["clear"] = yield sc.cap_ambient(sc.CAP_AMBIENT_CLEAR_ALL)
        yield sc.execve("/bin/showcaps2", ["showcaps2"])

    def showcaps2() -> Any:
        out["after_clear"] = yield sc.capget()

    kernel.install_program("/bin/showcaps", program=showcaps)
    kernel.install_program("/bin/showcaps2", program=showcaps2)

    def root() -> Any:
        pid = yield sc.fork(prog)
        yield sc.wait4(pid)

    run_prog(kernel, root)
    assert out["raise_no_inh"] == -EPERM and out["raise"] == 0 and out["raise2"] == 0
    assert out["lower"] == 0 and out["is_set"] == 1 and out["is_set2"] == 0 and out["bad"] == -EINVAL
    # A non-root program keeps only its ambient set: P'(permitted) = P'(effective) = P'(ambient).
    assert out["after_exec"] == (bind, bind, bind | 1 << CAP_SETPCAP)
    assert out["keep"] == 0 and out["clear"] == 0
    assert out["after_clear"][:2] == (0, 0)


def test_mknodat_fifo_and_char_device(kernel, run_prog) -> None:
    out: dict[str, Any] = {}

    def unpriv() -> Any:
        yield sc.setuid(1000)
        out["dev_eperm"] = yield sc.mknodat(AT_FDCWD, "/tmp/null2", S_IFCHR | 0o666, (1 << 8) | 3)
        out["fifo_user"] = yield sc.mknodat(AT_FDCWD, "/tmp/ufifo", S_IFIFO | 0o600)

    def prog() -> Any:
        out["fifo"] = yield sc.mknodat(AT_FDCWD, "/tmp/fifo", S_IFIFO | 0o644)
        out["exists"] = yield sc.mknodat(AT_FDCWD, "/tmp/fifo", S_IFIFO | 0o644)
        out["st"] = yield sc.newfstatat(AT_FDCWD, "/tmp/fifo")
        out["dev"] = yield sc.mknodat(AT_FDCWD, "/tmp/zero", S_IFCHR | 0o666, (1 << 8) | 5)
        fd = yield sc.openat(AT_FDCWD, "/tmp/zero", O_RDONLY)
        out["zeros"] = yield sc.read(fd, 4)
        out["dir"] = yield sc.mknodat(AT_FDCWD, "/tmp/d", 0o040755)
        pid = yield sc.fork(unpriv)
        yield sc.wait4(pid)

    run_prog(kernel, prog)
    assert out["fifo"] == 0 and out["exists"] == -17
    assert out["st"].st_mode == S_IFIFO | 0o644 & ~0o022
    assert out["dev"] == 0 and out["zeros"] == b"\0\0\0\0"
    assert out["dir"] == -EPERM
    assert out["dev_eperm"] == -EPERM and out["fifo_user"] == -13  # /tmp is 0755 root here: EACCES


def test_capable_mknod_is_the_initial_namespace(kernel, run_prog) -> None:
    out: dict[str, Any] = {}

    def child() -> Any:
        out["in_userns"] = yield sc.mknodat(AT_FDCWD, "/tmp/nulldev", S_IFCHR | 0o666, (1 << 8) | 3)

    def parent() -> Any:
        pid = yield sc.clone(CLONE_NEWUSER | SIGCHLD, child)
        yield sc.wait4(pid)

    run_prog(kernel, parent)
    assert out["in_userns"] == -EPERM
    assert CAP_MKNOD == 27


def test_envp_reaches_scripted_programs_and_proc_environ(kernel, run_prog) -> None:
    out: dict[str, Any] = {}

    @sc.with_envp
    def showenv(*args: str, envp: list[str]) -> Any:
        out["args"], out["envp"] = args, envp
        out["environ"] = yield from _read("/proc/self/environ")
        return 0

    def prog() -> Any:
        yield sc.execve("/bin/showenv", ["showenv", "a"], ["PATH=/bin", "HOME=/root"])

    kernel.install_program("/bin/showenv", program=showenv)
    run_prog(kernel, prog)
    assert out["args"] == ("a",) and out["envp"] == ["PATH=/bin", "HOME=/root"]
    assert out["environ"] == b"PATH=/bin\0HOME=/root\0"
