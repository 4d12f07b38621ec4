"""seccomp on RISC-V processes (ecalls), KILL_THREAD with threads, and the "filters" cycle category."""

from __future__ import annotations

from sandbox_util import bytes_directive, init_prog, isa_kernel, kernel, run_prog, rv32_program
from virtlevels_sandbox import bpf
from virtlevels_sandbox import seccomp as sec
from virtlevels_sandbox.bpf import BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, jump, stmt
from virtlevels_sandbox.sandbox import SandboxSpec, spawn_sandboxed

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.signals import SIGSYS
from virtlevels.kernel.syscalls import numbers as nrs

GETPID, GETUID, GETTID = 172, 174, 178
EPERM = 1


def _filter() -> list[bpf.Insn]:
    """getpid -> ERRNO(EPERM), getuid -> KILL_PROCESS, gettid -> KILL_THREAD, else ALLOW."""
    return [
        stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, GETPID, 0, 1),
        stmt(BPF_RET | BPF_K, sec.SECCOMP_RET_ERRNO | EPERM),
        jump(BPF_JMP | BPF_JEQ | BPF_K, GETUID, 0, 1),
        stmt(BPF_RET | BPF_K, sec.SECCOMP_RET_KILL_PROCESS),
        jump(BPF_JMP | BPF_JEQ | BPF_K, GETTID, 0, 1),
        stmt(BPF_RET | BPF_K, sec.SECCOMP_RET_KILL_THREAD),
        stmt(BPF_RET | BPF_K, sec.SECCOMP_RET_ALLOW),
    ]


def _fprog_data() -> str:
    prog = _filter()
    return (
        "    .align 2\nfprog:\n"
        f"    .half {len(prog)}\n    .half 0\n    .word filter\n"
        "filter:\n" + bytes_directive(bpf.pack(prog)) + "msg:\n    .ascii \"alive\\n\"\n"
    )


#: seccomp(SECCOMP_SET_MODE_FILTER, 0, &fprog) from the program's own memory (root: CAP_SYS_ADMIN).
INSTALL = """
    li a0, 1
    li a1, 0
    la a2, fprog
    li a7, SYS_seccomp
    ecall
    mv s0, a0
"""


def test_isa_process_under_its_own_filter_allowed_call_works_denied_returns_eperm():
    k = isa_kernel()
    body = INSTALL + """
    li a7, SYS_getppid
    ecall
    mv s1, a0
    li a7, SYS_getpid
    ecall
    mv s2, a0
    li a0, 1
    la a1, msg
    li a2, 6
    li a7, SYS_write
    ecall
    li a0, 0
    bnez s0, no_install
    addi a0, a0, 1
no_install:
    blez s1, no_ppid
    addi a0, a0, 2
no_ppid:
    li t0, -1
    bne s2, t0, done
    addi a0, a0, 4
done:
    li a7, SYS_exit_group
    ecall
"""
    k.write_file("/bin/prog", rv32_program(body, _fprog_data()), 0o755)
    t = k.spawn("/bin/prog", stdio=True)
    k.run()
    # 1: the filter attached; 2: getppid (allowed) returned the parent's pid; 4: getpid was -EPERM.
    assert t.process.exit_code == 7 << 8
    assert bytes(k.console) == b"alive\n"
    st = sec.stats(k)
    assert st.actions == {"ALLOW": 3, "ERRNO": 1}  # getppid, write, exit_group; getpid
    # getpid runs ld, jeq, ret (3); the ALLOW path is ld and three jeq that skip their ret, then ret (5).
    assert st.bpf_insns == 3 + 3 * 5


def test_isa_kill_process_ends_it_with_sigsys_before_the_call_runs():
    k = isa_kernel()
    body = INSTALL + """
    li a7, SYS_getuid
    ecall
    li a0, 1
    la a1, msg
    li a2, 6
    li a7, SYS_write
    ecall
    li a0, 0
    li a7, SYS_exit_group
    ecall
"""
    k.write_file("/bin/prog", rv32_program(body, _fprog_data()), 0o755)
    t = k.spawn("/bin/prog", stdio=True)
    k.run()
    assert t.process.exit_code == SIGSYS and bytes(k.console) == b""
    assert sec.stats(k).actions["KILL_PROCESS"] == 1


def test_filter_cycles_are_their_own_category_and_totals_are_unchanged():
    k = isa_kernel()
    body = INSTALL + """
    li s1, 20
loop:
    li a7, SYS_getppid
    ecall
    addi s1, s1, -1
    bnez s1, loop
    li a0, 0
    li a7, SYS_exit_group
    ecall
"""
    k.write_file("/bin/prog", rv32_program(body, _fprog_data()), 0o755)
    k.spawn("/bin/prog")
    k.run()
    hart = k.machine.harts[0]
    by = hart.cycles_by_category()
    st = sec.stats(k)
    c = k.cost
    per_call = c.get("seccomp", "filter") + 5 * c.get("seccomp", "bpf_insn")
    assert st.filtered_syscalls == 21 and by["filters"] == st.cycles == 21 * per_call
    assert k.charged_by_category["filters"] == st.cycles
    # The split relabels cycles: the categories still add up to all the work the hart did.
    assert sum(by.values()) == hart.work_cycles()
    # And the "kernel" category holds the round trips without the filters' share.
    assert by["kernel"] >= 22 * k.c_syscall


def test_isa_program_execed_by_the_sandbox_launcher_inherits_the_profile():
    k = isa_kernel()
    body = """
    li a7, SYS_getpid
    ecall
    neg a0, a0
    li a7, SYS_exit_group
    ecall
"""
    k.write_file("/bin/prog", rv32_program(body), 0o755)
    prof = {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}  # fmt: skip
    t = spawn_sandboxed(k, SandboxSpec(profile=prof), "/bin/prog")
    k.run()
    assert t.process.exit_code == 13 << 8  # getpid returned -EACCES inside the RV32 program


def test_kill_thread_kills_only_the_calling_thread():
    k = kernel()
    seen: list[str] = []
    flags = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000  # CLONE_VM|FS|FILES|SIGHAND|THREAD

    def thread():
        yield sc.raw(GETTID)
        seen.append("thread survived")
        return 0

    def prog():
        yield sc.prctl(38, 1)
        yield sec.set_mode_filter(_filter())
        tid = yield sc.clone(flags, thread)
        seen.append(f"clone {tid > 0}")
        for _ in range(20):
            yield sc.sched_yield()
        seen.append(f"threads {len(k.current.process.threads)}")
        seen.append(f"ppid {(yield sc.getppid()) > 0}")
        return 5

    t = run_prog(k, prog)
    assert seen == ["clone True", "threads 1", "ppid True"]
    assert t.process.exit_code == 5 << 8
    assert sec.stats(k).actions["KILL_THREAD"] == 1


def test_kill_thread_in_the_last_thread_ends_the_process_with_sigsys():
    k = kernel()

    def prog():
        yield sc.prctl(38, 1)
        yield sec.set_mode_filter(_filter())
        yield sc.raw(GETTID)
        return 0

    t = run_prog(k, prog)
    assert t.process.exit_code == SIGSYS


def test_scripted_filter_cycles_land_in_the_kernels_category_counter():
    k = kernel()

    def prog():
        yield sc.prctl(38, 1)
        yield sec.set_mode_filter(_filter())
        for _ in range(3):
            yield sc.getppid()
        return 0

    run_prog(k, prog)
    assert k.charged_by_category["filters"] == sec.stats(k).cycles > 0
    assert init_prog is not None and nrs.getppid == 173
