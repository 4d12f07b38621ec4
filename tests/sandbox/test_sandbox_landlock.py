"""Landlock-like filesystem rules: the system calls, layering, inheritance, the sandbox and the CLI."""

from __future__ import annotations

import json

from sandbox_util import kernel, run_prog
from virtlevels_sandbox import landlock as ll
from virtlevels_sandbox import plugin
from virtlevels_sandbox.programs import install_programs
from virtlevels_sandbox.sandbox import SandboxSpec, spawn_sandboxed

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EACCES, EBADFD, EINVAL, ENOMSG, EPERM
from virtlevels.kernel.vfs.constants import AT_FDCWD, O_CREAT, O_DIRECTORY, O_RDONLY, O_WRONLY
from virtlevels.testing import invoke_cli

HANDLED = ll.ACCESS_FS_READ_FILE | ll.ACCESS_FS_WRITE_FILE | ll.ACCESS_FS_MAKE_DIR | ll.ACCESS_FS_MAKE_REG


def _kernel():
    k = kernel()
    ll.install(k)
    k.write_file("/etc/conf", "setting=1\n", 0o666)
    k.write_file("/tmp/data", "data\n", 0o666)
    k.vfs.fchmodat(k._boot_fs, k.init_creds, "/tmp", 0o777)  # DAC allows; only Landlock may deny
    return k


def _rule(path: str, access: int, rfd: int):
    fd = yield sc.openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY)
    r = yield ll.add_rule(rfd, access, fd)
    yield sc.close(fd)
    return r


def _open(path: str, flags: int = O_RDONLY):
    fd = yield sc.openat(AT_FDCWD, path, flags, 0o644)
    if fd >= 0:
        yield sc.close(fd)
        return 0
    return fd


def test_restrict_self_denies_what_no_rule_allows_with_eacces():
    k = _kernel()
    out = {}

    def prog():
        out["abi"] = yield ll.abi_version()
        rfd = yield ll.create_ruleset(HANDLED)
        out["rule"] = yield from _rule("/etc", ll.ACCESS_FS_READ_FILE, rfd)
        out["unpriv"] = yield ll.restrict_self(rfd)  # an unprivileged user needs no_new_privs
        yield sc.prctl(38, 1)
        out["restrict"] = yield ll.restrict_self(rfd)
        out["read_etc"] = yield from _open("/etc/conf")
        out["read_tmp"] = yield from _open("/tmp/data")
        out["write_etc"] = yield from _open("/etc/conf", O_WRONLY)
        out["create_tmp"] = yield from _open("/tmp/new", O_WRONLY | O_CREAT)
        out["mkdir"] = yield sc.mkdirat(AT_FDCWD, "/tmp/d", 0o755)
        out["unhandled_unlink"] = yield sc.unlinkat(AT_FDCWD, "/tmp/data", 0)  # REMOVE_FILE not handled
        return 0

    run_prog(k, prog, creds=Credentials.user(1000, 1000))
    assert out == {
        "abi": ll.ABI_VERSION, "rule": 0, "unpriv": -EPERM, "restrict": 0, "read_etc": 0,
        "read_tmp": -EACCES, "write_etc": -EACCES, "create_tmp": -EACCES, "mkdir": -EACCES,
        "unhandled_unlink": 0,
    }  # fmt: skip
    assert ll.stats(k).denied == 4


def test_layers_only_tighten_and_are_inherited_across_fork_and_execve():
    k = _kernel()
    out = {}

    def after_exec():
        out["exec_read_etc"] = yield from _open("/etc/conf")
        out["exec_read_tmp"] = yield from _open("/tmp/data")
        return 0

    k.install_program("/bin/after", program=after_exec)

    def child():
        out["child_read_tmp"] = yield from _open("/tmp/data")
        out["child_read_etc"] = yield from _open("/etc/conf")
        return 0

    def prog():
        yield sc.prctl(38, 1)
        rfd = yield ll.create_ruleset(ll.ACCESS_FS_READ_FILE | ll.ACCESS_FS_EXECUTE)
        yield from _rule("/", ll.ACCESS_FS_READ_FILE | ll.ACCESS_FS_EXECUTE, rfd)
        yield ll.restrict_self(rfd)
        out["one_layer"] = yield from _open("/tmp/data")
        # A second layer allowing only /etc (and /bin): /tmp is now denied, and nothing can undo it.
        rfd2 = yield ll.create_ruleset(ll.ACCESS_FS_READ_FILE | ll.ACCESS_FS_EXECUTE)
        yield from _rule("/etc", ll.ACCESS_FS_READ_FILE, rfd2)
        yield from _rule("/bin", ll.ACCESS_FS_READ_FILE | ll.ACCESS_FS_EXECUTE, rfd2)
        yield ll.restrict_self(rfd2)
        out["two_layers"] = yield from _open("/tmp/data")
        rfd3 = yield ll.create_ruleset(ll.ACCESS_FS_READ_FILE)
        yield from _rule("/tmp", ll.ACCESS_FS_READ_FILE, rfd3)
        yield from _rule("/bin", ll.ACCESS_FS_READ_FILE, rfd3)  # execve opens the file for reading too
        yield ll.restrict_self(rfd3)  # allowing /tmp again in a new layer does not loosen the domain
        out["three_layers"] = yield from _open("/tmp/data")
        pid = yield sc.fork(child)
        yield sc.wait4(pid)
        yield sc.execve("/bin/after", ["after"])
        return 1

    t = run_prog(k, prog)
    assert out == {
        "one_layer": 0, "two_layers": -EACCES, "three_layers": -EACCES, "child_read_tmp": -EACCES,
        "child_read_etc": -EACCES, "exec_read_etc": -EACCES, "exec_read_tmp": -EACCES,
    }  # fmt: skip
    # /etc is allowed by layers 1 and 2 but not 3 (which handles READ_FILE, for /tmp only).
    assert t.process.exit_code == 0


def test_exec_needs_execute_and_rules_cross_mounts():
    k = _kernel()
    install_programs(k)
    out = {}

    def prog():
        yield sc.prctl(38, 1)
        rfd = yield ll.create_ruleset(ll.ACCESS_FS_READ_FILE | ll.ACCESS_FS_EXECUTE)
        yield from _rule("/", ll.ACCESS_FS_READ_FILE, rfd)
        yield ll.restrict_self(rfd)
        out["proc"] = yield from _open("/proc/self/status")  # /proc is a mount beneath "/"
        out["exec"] = yield sc.execve("/bin/echo", ["echo", "hi"])
        return 0

    run_prog(k, prog)
    assert out == {"proc": 0, "exec": -EACCES}


def test_syscall_errors():
    k = _kernel()
    out = {}

    def prog():
        out["empty"] = yield ll.create_ruleset(0)
        out["unknown"] = yield ll.create_ruleset(1 << 20)
        rfd = yield ll.create_ruleset(HANDLED)
        fd = yield sc.openat(AT_FDCWD, "/etc/conf", O_RDONLY)
        out["dir_right_on_file"] = yield ll.add_rule(rfd, ll.ACCESS_FS_MAKE_DIR, fd)
        out["file_right_on_file"] = yield ll.add_rule(rfd, ll.ACCESS_FS_READ_FILE, fd)
        out["not_handled"] = yield ll.add_rule(rfd, ll.ACCESS_FS_EXECUTE, fd)
        out["no_access"] = yield ll.add_rule(rfd, 0, fd)
        out["not_a_ruleset"] = yield ll.add_rule(fd, ll.ACCESS_FS_READ_FILE, fd)
        out["read_ruleset"] = yield sc.read(rfd, 8)
        return 0

    run_prog(k, prog)
    assert out == {
        "empty": -ENOMSG, "unknown": -EINVAL, "dir_right_on_file": -EINVAL, "file_right_on_file": 0,
        "not_handled": -EINVAL, "no_access": -ENOMSG, "not_a_ruleset": -EBADFD, "read_ruleset": -EINVAL,
    }  # fmt: skip


def test_sandbox_spec_allow_lists():
    k = _kernel()
    install_programs(k)
    spec = SandboxSpec(profile=None, allow_read=("/etc",), allow_write=("/tmp",))
    ops = ["read:/etc/conf", "write:/etc/x", "write:/tmp/x", "read:/tmp/data", "mkdir:/tmp/d",
           "rename:/tmp/x:/etc/y", "unlink:/tmp/x", "rmdir:/tmp/d", "exec:/bin/echo"]  # fmt: skip
    t = spawn_sandboxed(k, spec, "/bin/fs", ["fs", *ops])
    k.run()
    assert bytes(k.console).decode().splitlines() == [
        "read:/etc/conf: 10", "write:/etc/x: EACCES", "write:/tmp/x: 2", "read:/tmp/data: EACCES",
        "mkdir:/tmp/d: 0", "rename:/tmp/x:/etc/y: EACCES", "unlink:/tmp/x: 0", "rmdir:/tmp/d: 0",
        "exec:/bin/echo: EACCES",
    ]  # fmt: skip
    assert t.process.exit_code == 1 << 8
    assert SandboxSpec.from_dict({"allow_exec": ["/bin"]}).allow_exec == ("/bin",)


def test_cli_allow_options_and_json_report():
    r = invoke_cli(
        ["sandbox", "run", "--json", "--allow-read", "/proc", "--allow-exec", "/bin", "fs",
         "read:/proc/self/status", "write:/tmp/x", "exec:/bin/echo:hi"],
        plugins=[plugin],
    )  # fmt: skip
    doc = json.loads(r.stdout)
    lines = doc["output"].splitlines()
    assert lines[0].startswith("read:/proc/self/status: ") and int(lines[0].split(": ")[1]) > 0
    assert lines[1:] == ["write:/tmp/x: EACCES", "hi"]
    assert doc["exit_code"] == 0
    assert doc["landlock"]["denied"] == 1 and doc["landlock"]["checks"] >= 3
    assert ["/bin", ["execute", "read_file"]] in doc["landlock"]["rules"]
    assert doc["bpf_insns_per_syscall"] > 0 and doc["cycles_by_category"]["filters"] == doc["filter_cycles"]
    r = invoke_cli(["sandbox", "run", "--allow-read", "etc", "fs", "read:/etc"], plugins=[plugin])
    assert r.exit_code != 0 and "absolute path" in r.stderr and r.stderr.count("\n") == 1
