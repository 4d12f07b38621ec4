"""seccomp(2) and prctl(PR_SET_SECCOMP) on the simulated kernel."""

from __future__ import annotations

import pytest
from sandbox_util import kernel, run_prog
from virtlevels_sandbox import seccomp as sec
from virtlevels_sandbox.bpf import BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, jump, stmt

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.signals import SIGKILL, SIGSYS
from virtlevels.kernel.syscalls import numbers as nrs

ALLOW = sec.SECCOMP_RET_ALLOW
PR_SET_NO_NEW_PRIVS = 38


def on(nr: int, ret: int, other: int = ALLOW) -> list:
    """A filter returning ``ret`` for system call ``nr`` and ``other`` for the rest."""
    return [
        stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
        stmt(BPF_RET | BPF_K, ret),
        stmt(BPF_RET | BPF_K, other),
    ]


def errno(e: int) -> int:
    return sec.SECCOMP_RET_ERRNO | e


def test_filter_returns_errno_from_ret_data_and_needs_no_new_privs_or_cap_sys_admin():
    k = kernel()
    out = {}

    def prog():
        out["unpriv"] = yield sec.set_mode_filter(on(nrs.getpid, errno(13)))
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        out["nnp"] = yield sec.set_mode_filter(on(nrs.getpid, errno(13)))
        out["getpid"] = yield sc.getpid()
        out["getuid"] = yield sc.getuid()
        out["mode"] = yield sc.prctl(sec.PR_GET_SECCOMP)
        return 0

    run_prog(k, prog, creds=Credentials.user(1000, 1000))
    assert out == {"unpriv": -13, "nnp": 0, "getpid": -13, "getuid": 1000, "mode": 2}


def test_root_with_cap_sys_admin_may_filter_without_no_new_privs():
    k = kernel()
    out = {}

    def prog():
        out["r"] = yield sec.set_mode_filter(on(nrs.getppid, errno(7)))
        out["ppid"] = yield sc.getppid()
        return 0

    run_prog(k, prog)
    assert out == {"r": 0, "ppid": -7}


def test_every_filter_runs_and_the_highest_precedence_action_wins():
    k = kernel()
    out = {}

    def prog():
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        # Oldest: ERRNO(5) for getpid. Newer: ALLOW everything. Newest: ERRNO(9) for getpid.
        yield sec.set_mode_filter(on(nrs.getpid, errno(5)))
        yield sec.set_mode_filter([stmt(BPF_RET | BPF_K, ALLOW)])
        out["one"] = yield sc.getpid()
        yield sec.set_mode_filter(on(nrs.getpid, errno(9)))
        out["two"] = yield sc.getpid()  # both ERRNO: the newest filter's data wins
        yield sec.set_mode_filter(on(nrs.getpid, sec.SECCOMP_RET_LOG))
        out["three"] = yield sc.getpid()  # LOG is below ERRNO: still ERRNO(9)
        out["gid"] = yield sc.getgid()  # LOG for nothing else, ALLOW everywhere: allowed
        return 0

    run_prog(k, prog)
    assert out == {"one": -5, "two": -9, "three": -9, "gid": 0}
    assert sec.stats(k).filter_runs > 0


@pytest.mark.parametrize(
    "action,want_status",
    [
        (sec.SECCOMP_RET_KILL_PROCESS, SIGSYS),
        (sec.SECCOMP_RET_KILL_THREAD, SIGSYS),
        (sec.SECCOMP_RET_TRAP | 3, SIGSYS),
        (0x12340000, SIGSYS),
    ],
)
def test_kill_and_trap_actions_end_the_process_with_sigsys(action, want_status):
    k = kernel()
    seen = []

    def prog():
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        yield sec.set_mode_filter(on(nrs.getpid, action))
        yield sc.getpid()
        seen.append("survived")
        return 0

    t = run_prog(k, prog)
    assert t.process.exit_code == want_status and seen == []


def test_kill_beats_errno_and_allow_across_filters():
    k = kernel()
    seen = []

    def prog():
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        yield sec.set_mode_filter(on(nrs.getpid, sec.SECCOMP_RET_KILL_PROCESS))
        yield sec.set_mode_filter(on(nrs.getpid, errno(1)))
        yield sec.set_mode_filter([stmt(BPF_RET | BPF_K, ALLOW)])
        seen.append((yield sc.getpid()))
        return 0

    t = run_prog(k, prog)
    assert seen == [] and t.process.exit_code == SIGSYS


def test_log_allows_and_records_trace_and_user_notif_fail_with_enosys():
    k = kernel()
    out = {}

    def prog():
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        yield sec.set_mode_filter(on(nrs.getuid, sec.SECCOMP_RET_LOG))
        yield sec.set_mode_filter(on(nrs.getgid, sec.SECCOMP_RET_TRACE | 1))
        yield sec.set_mode_filter(on(nrs.geteuid, sec.SECCOMP_RET_USER_NOTIF))
        out["uid"] = yield sc.getuid()
        out["gid"] = yield sc.getgid()
        out["euid"] = yield sc.geteuid()
        return 0

    run_prog(k, prog)
    assert out == {"uid": 0, "gid": -38, "euid": -38}
    assert [entry[2:] for entry in sec.stats(k).log] == [("getuid", "LOG")]


def test_errno_zero_skips_the_call_and_large_errno_is_capped():
    k = kernel()
    out = {}

    def prog():
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        yield sec.set_mode_filter(on(nrs.sethostname, errno(0)))
        yield sec.set_mode_filter(on(nrs.getpid, errno(12345)))
        out["host"] = yield sc.sethostname("changed")
        out["pid"] = yield sc.getpid()
        return 0

    run_prog(k, prog)
    assert out == {"host": 0, "pid": -4095}
    assert b"changed" not in k.read_file("/proc/sys/kernel/hostname")


def test_filters_are_inherited_across_fork_and_execve_and_cannot_be_removed():
    k = kernel()
    out = {}

    def after_exec():
        out["exec_getpid"] = yield sc.getpid()
        out["exec_mode"] = yield sc.prctl(sec.PR_GET_SECCOMP)
        return 0

    k.install_program("/bin/after", program=after_exec)

    def child():
        out["child_getpid"] = yield sc.getpid()
        yield sc.execve("/bin/after", ["/bin/after"])
        return 99

    def prog():
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        yield sec.set_mode_filter(on(nrs.getpid, errno(42)))
        # Trying to loosen things: an ALLOW filter on top changes nothing; seccomp mode cannot go back.
        yield sec.set_mode_filter([stmt(BPF_RET | BPF_K, ALLOW)])
        out["strict_after_filter"] = yield sec.set_mode_strict()
        pid = yield sc.fork(child)
        yield sc.wait4(pid)
        return 0

    run_prog(k, prog)
    assert out == {"strict_after_filter": -22, "child_getpid": -42, "exec_getpid": -42, "exec_mode": 2}


def test_strict_mode_allows_read_write_exit_only():
    k = kernel()
    out = []

    def prog():
        yield sec.set_mode_strict()
        out.append((yield sc.write(1, b"ok\n")))
        yield sc.getpid()
        out.append("survived")
        return 0

    t = run_prog(k, prog, stdio=True)
    assert out == [3] and t.process.exit_code == SIGKILL
    assert bytes(k.console) == b"ok\n"


def test_the_arch_field_is_audit_arch_riscv32_and_a_filter_checks_it():
    k = kernel()
    out = {}
    arch_check = [
        stmt(BPF_LD | BPF_W | BPF_ABS, 4),
        jump(BPF_JMP | BPF_JEQ | BPF_K, sec.AUDIT_ARCH_RISCV32, 1, 0),
        stmt(BPF_RET | BPF_K, sec.SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_RET | BPF_K, ALLOW),
    ]

    def prog():
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        yield sec.set_mode_filter(arch_check)
        out["pid"] = yield sc.getpid()
        return 0

    t = run_prog(k, prog)
    assert sec.AUDIT_ARCH_RISCV32 == 0x400000F3
    assert out["pid"] > 0 and t.process.exit_code == 0
    # Given another arch's data, the same filter kills: there is no way around the arch check.
    d = sec.run_filters(
        sec.SeccompState(2, (sec.SeccompFilter(tuple(arch_check)),)),
        nrs.getpid,
        (),
        arch=sec.AUDIT_ARCH_RISCV64,
    )
    assert d.action == sec.SECCOMP_RET_KILL_PROCESS


@pytest.mark.parametrize(
    "prog,err",
    [
        ([stmt(BPF_LD | BPF_W | BPF_ABS, 2), stmt(BPF_RET | BPF_K, ALLOW)], -22),
        ([stmt(BPF_LD | BPF_W | BPF_ABS, 0)], -22),
    ],
)
def test_rejected_programs_are_einval_and_leave_no_filter(prog, err):
    k = kernel()
    out = {}

    def p():
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        out["r"] = yield sec.set_mode_filter(prog)
        out["mode"] = yield sc.prctl(sec.PR_GET_SECCOMP)
        return 0

    run_prog(k, p)
    assert out == {"r": err, "mode": 0}


def test_prctl_set_seccomp_filter_and_status_and_costs():
    k = kernel()
    out = {}

    def count_cycles():
        t0 = k.world.now
        for _ in range(10):
            yield sc.getppid()
        return k.world.now - t0

    def prog():
        base = yield from count_cycles()
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        out["r"] = yield sec.prctl_set_filter(on(nrs.getuid, errno(1)))
        filtered = yield from count_cycles()
        out["extra"] = filtered - base
        fd = yield sc.openat(-100, "/proc/self/status", 0)
        out["status"] = yield sc.read(fd, 4096)
        return 0

    run_prog(k, prog)
    assert out["r"] == 0
    # getppid runs 3 instructions of the one filter (ld nr, jeq, ret ALLOW): filter + 3 * bpf_insn each.
    assert out["extra"] == 10 * (k.cost.get("seccomp", "filter") + 3 * k.cost.get("seccomp", "bpf_insn"))
    assert sec.stats(k).bpf_insns == 3 * 12  # the openat and read after them too
    assert b"Seccomp:\t2" in out["status"]


def test_tsync_and_get_action_avail():
    k = kernel()
    out = {}

    def prog():
        yield sc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        out["tsync"] = yield sec.set_mode_filter(on(nrs.getpid, errno(3)), sec.SECCOMP_FILTER_FLAG_TSYNC)
        out["avail"] = yield sc.seccomp(
            sec.SECCOMP_GET_ACTION_AVAIL, 0, (sec.SECCOMP_RET_LOG).to_bytes(4, "little")
        )
        out["bad"] = yield sc.seccomp(sec.SECCOMP_GET_ACTION_AVAIL, 0, (0x12340000).to_bytes(4, "little"))
        out["listener"] = yield sec.set_mode_filter(on(1, 1), sec.SECCOMP_FILTER_FLAG_NEW_LISTENER)
        return 0

    run_prog(k, prog)
    assert out == {"tsync": 0, "avail": 0, "bad": -95, "listener": -22}


def test_seccomp_without_the_plugin_is_einval():
    from virtlevels.kernel.kernel import Kernel
    from virtlevels.world import World

    k = Kernel(World(entry_points=False))
    out = {}

    def prog():
        out["r"] = yield sec.set_mode_strict()
        return 0

    run_prog(k, prog)
    assert out["r"] == -22
