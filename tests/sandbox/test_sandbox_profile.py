"""Docker's default profile and the profile compiler, decided by the kernel for real processes."""

from __future__ import annotations

import json

import pytest
from sandbox_util import kernel
from virtlevels_sandbox import bpf, rv32names
from virtlevels_sandbox import profile as prof
from virtlevels_sandbox import seccomp as sec
from virtlevels_sandbox.sandbox import SandboxSpec, spawn_sandboxed

from virtlevels.errors import ConfigError
from virtlevels.kernel import scripted as sc
from virtlevels.kernel.signals import SIGSYS

CLONE_NEWUTS = 0x04000000
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
SIGCHLD = 17
ALLOW = sec.SECCOMP_RET_ALLOW
EPERM = sec.SECCOMP_RET_ERRNO | 1


def run_sandboxed(spec: SandboxSpec, body):
    """Run scripted ``body`` (a generator function) exec'd inside a sandbox; returns (results, task)."""
    k = kernel()
    out: dict = {}
    k.install_program("/bin/body", program=lambda: body(out))
    t = spawn_sandboxed(k, spec, "/bin/body", ["/bin/body"], stdio=True)
    k.run()
    return out, t, k


def probe_calls(out):
    out["read"] = yield sc.read(0, 0)
    out["write"] = yield sc.write(1, b"")
    out["openat"] = yield sc.openat(-100, "/proc/self/status", 0)
    out["mount"] = yield sc.mount("tmpfs", "/tmp", "tmpfs")
    out["unshare"] = yield sc.unshare(CLONE_NEWUTS)
    out["sethostname"] = yield sc.sethostname("inside")
    out["clone_ns"] = yield sc.clone(SIGCHLD | CLONE_NEWUSER, _child)
    pid = yield sc.fork(_child)
    out["fork"] = pid > 0
    out["wait"] = yield sc.wait4(pid)
    out["personality"] = []
    for p in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF, 3, 0x400000):
        out["personality"].append((yield sc.raw(92, p)))
    return 0


def _child():
    return 5
    yield  # a generator


def test_docker_default_without_cap_sys_admin():
    out, t, _k = run_sandboxed(SandboxSpec(), probe_calls)
    assert t.process.exit_code == 0
    assert out["read"] == b"" and out["write"] == 0 and out["openat"] >= 3
    assert out["mount"] == -1 and out["unshare"] == -1 and out["sethostname"] == -1
    assert out["clone_ns"] == -1 and out["fork"] and out["wait"][1] == 5 << 8
    # personality: allowed (ENOSYS from the kernel, which does not implement it) for 0, 8, 0x20000,
    # 0x20008 and 0xffffffff only; anything else EPERM from the filter.
    assert out["personality"] == [-38] * 5 + [-1, -1]


def test_docker_default_with_cap_sys_admin_allows_mount_unshare_sethostname():
    out, t, k = run_sandboxed(SandboxSpec(cap_add=("SYS_ADMIN",)), probe_calls)
    assert t.process.exit_code == 0
    assert out["mount"] == 0 and out["unshare"] == 0 and out["sethostname"] == 0
    assert out["clone_ns"] > 0  # the unconditional clone rule applies with CAP_SYS_ADMIN
    assert sec.stats(k).actions["ALLOW"] > 10


def test_docker_default_decisions_compiled():
    doc, src = prof.load_json("docker-default")
    cp = prof.compile_profile(doc, source=src)
    nr = rv32names.SYSCALLS
    assert cp.decide(nr["read"]) == ALLOW and cp.decide(nr["openat"]) == ALLOW
    assert cp.decide(nr["clone"], [SIGCHLD]) == ALLOW and cp.decide(nr["clone"], [CLONE_NEWNS]) == EPERM
    assert cp.decide(nr["clone3"]) == sec.SECCOMP_RET_ERRNO | 38  # ENOSYS so libc falls back to clone
    # No bypass: out-of-range numbers get the default action, another arch value is killed.
    for bad in (5000, 0xFFFFFFFF, -1, 1 << 40 | nr["read"]):
        if bad >= 1 << 32:
            # seccomp_data.nr is 32 bits; the kernel's table does not have the wide number either.
            assert cp.decide(bad) == ALLOW and prof.rv32names.NAMES.get(bad) is None
        else:
            assert cp.decide(bad) == EPERM
    assert cp.decide(nr["read"], arch=sec.AUDIT_ARCH_RISCV64) == sec.SECCOMP_RET_KILL_PROCESS
    assert cp.decide(nr["read"], arch=0xC000003E) == sec.SECCOMP_RET_KILL_PROCESS  # AUDIT_ARCH_X86_64
    skipped = {n for s in cp.skipped if s.reason.startswith("no such") for n in s.names}
    assert {"open", "stat", "fork", "arch_prctl"} <= skipped or {"open", "stat", "fork"} <= skipped
    assert "read" not in skipped


def test_out_of_range_numbers_are_denied_in_a_process():
    def body(out):
        out["big"] = yield sc.raw(5000)
        out["neg"] = yield sc.raw(0xFFFFFFFF)
        return 0

    out, t, _k = run_sandboxed(SandboxSpec(), body)
    assert out == {"big": -1, "neg": -1} and t.process.exit_code == 0


def test_execve_keeps_the_profile():
    def body(out):
        yield sc.execve("/bin/again", ["/bin/again"])
        return 1

    k = kernel()
    out: dict = {}

    def again():
        out["mount"] = yield sc.mount("tmpfs", "/tmp", "tmpfs")
        out["mode"] = yield sc.prctl(sec.PR_GET_SECCOMP)
        return 0

    k.install_program("/bin/again", program=again)
    k.install_program("/bin/body", program=lambda: body(out))
    t = spawn_sandboxed(k, SandboxSpec(), "/bin/body", ["/bin/body"])
    k.run()
    assert out == {"mount": -1, "mode": 2} and t.process.exit_code == 0


def test_kill_process_profile_and_example_profile_errno():
    doc = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_KILL_PROCESS"}],
    }

    def body(out):
        out["uid"] = yield sc.getuid()
        yield sc.getpid()
        out["after"] = True
        return 0

    out, t, _k = run_sandboxed(SandboxSpec(doc), body)
    assert out == {"uid": 0} and t.process.exit_code == SIGSYS
    ex, src = prof.load_json("docker-example")
    cp = prof.compile_profile(ex, source=src)
    assert cp.decide(rv32names.SYSCALLS["syslog"]) == sec.SECCOMP_RET_ERRNO | 12345
    assert cp.decide(rv32names.SYSCALLS["close"]) == ALLOW
    assert any(s.names == ("open",) for s in cp.skipped)


def test_argument_conditions_and_duplicate_index_or():
    doc = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "syscalls": [
            {
                "names": ["write"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                ],
            },
            {
                "names": ["read"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": 3, "op": "SCMP_CMP_LT"},
                    {"index": 2, "value": 100, "op": "SCMP_CMP_LE"},
                ],
            },
            {
                "names": ["lseek"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 1, "value": 0x1_0000_0000, "op": "SCMP_CMP_LT"}],
            },
            {
                "names": ["close"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 0x1_0000_0000, "op": "SCMP_CMP_EQ"}],
            },
            {
                "names": ["dup"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": 5, "op": "SCMP_CMP_NE"},
                    {"index": 1, "value": 7, "op": "SCMP_CMP_GE"},
                    {"index": 2, "value": 7, "op": "SCMP_CMP_GT"},
                ],
            },
        ],
    }
    cp = prof.compile_profile(doc)
    nr = rv32names.SYSCALLS
    deny = sec.SECCOMP_RET_ERRNO | 13
    assert [cp.decide(nr["write"], [fd]) for fd in (1, 2, 3)] == [ALLOW, ALLOW, deny]  # OR on one index
    assert cp.decide(nr["read"], [2, 0, 100]) == ALLOW
    assert cp.decide(nr["read"], [2, 0, 101]) == deny and cp.decide(nr["read"], [3, 0, 1]) == deny  # AND
    assert cp.decide(nr["lseek"], [0, 0xFFFFFFFF]) == ALLOW  # a 32-bit argument is always < 2**32
    assert cp.decide(nr["close"], [0]) == deny  # never equal to a 33-bit value
    assert cp.decide(nr["dup"], [4, 7, 8]) == ALLOW and cp.decide(nr["dup"], [5, 7, 8]) == deny
    assert cp.decide(nr["dup"], [4, 6, 8]) == deny and cp.decide(nr["dup"], [4, 7, 7]) == deny


@pytest.mark.parametrize(
    "doc,where",
    [
        ({}, "$.defaultAction"),
        ({"defaultAction": "SCMP_ACT_NOPE"}, "$.defaultAction"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "bogus": 1}, "$.bogus"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]}, "$.syscalls[0].action"),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"name": "read", "names": ["read"], "action": "SCMP_ACT_ERRNO"}],
            },
            "$.syscalls[0].names",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            "$.syscalls[0].args[0].index",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}],
                    }
                ],
            },
            "$.syscalls[0].args[0].op",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 1}],
            },
            "$.syscalls[0].errnoRet",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "archMap": []},
            "$.architectures",
        ),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}, "$.architectures[0]"),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "four"}}
                ],
            },
            "$.syscalls[0].includes.minKernel",
        ),
    ],
)
def test_malformed_profiles_are_rejected_naming_the_field(doc, where):
    with pytest.raises(ConfigError) as info:
        prof.compile_profile(doc, source="p.json")
    msg = str(info.value)
    assert msg.startswith("p.json: ")
    assert f": {where}: " in msg, msg


def test_bad_json_file_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        prof.load_json(str(bad))
    with pytest.raises(ConfigError, match="no such file"):
        prof.load_json(str(tmp_path / "missing.json"))


def test_includes_excludes_caps_arches_min_kernel():
    doc = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_TIME"]}},
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["riscv32"]}},
            {"names": ["getuid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
            {"names": ["getgid"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "9.0"}},
            {"names": ["gettid"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_KILL"]}},
        ],
    }
    nr = rv32names.SYSCALLS
    plain = prof.compile_profile(doc, caps=["CAP_KILL"])
    assert [plain.decide(nr[n]) == ALLOW for n in ("getpid", "getppid", "getuid", "getgid", "gettid")] == [
        False,
        True,
        False,
        False,
        False,
    ]
    timey = prof.compile_profile(doc, caps=["CAP_SYS_TIME"])
    assert timey.decide(nr["getpid"]) == ALLOW and timey.decide(nr["gettid"]) == ALLOW


def test_oci_linux_seccomp_object_compiles():
    oci = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_RISCV32"],
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2}],
    }
    cp = prof.compile_profile(json.loads(json.dumps(oci)))
    assert cp.decide(rv32names.SYSCALLS["getcwd"]) == sec.SECCOMP_RET_ERRNO | 2
    explained = {row[0]: row for row in cp.explain()}
    assert explained["getcwd"][2] == "denied (ERRNO(2))" and explained["read"][2] == "allowed"


def test_remembered_verdicts_equal_the_interpreters_results_and_counts() -> None:
    # The per-number verdict cache is a simulator shortcut: for every system call number (and
    # arguments that select either branch of docker-default's argument rules, e.g. personality
    # and clone) it must give the interpreter's result and instruction count.
    doc, src = prof.load_json("docker-default")
    cp = prof.compile_profile(doc, source=src)
    state = cp.state()
    remembered = 0
    for nr in [*sorted(rv32names.NAMES), 999, 0xFFFFFFFF]:
        for args in ((), (0, 0, 0), (0xFFFFFFFF, 1, 2), (8, 0x7E020000)):
            want = bpf.run(cp.program, sec.seccomp_data(nr, args))
            for _ in range(2):  # the second run is served from the cache when the verdict is constant
                d = sec.run_filters(state, nr, args)
                assert (d.ret, d.insns) == want, (nr, args)
        remembered += state.filters[0].cache.get(nr) is not None
    assert 0 < remembered < len(rv32names.NAMES)  # both paths were exercised
