"""ISA processes: RV32 user code in U-mode under Sv32, system calls by ecall, on the machine's harts."""

from __future__ import annotations

import pytest
from hw_util import make_kernel, program

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.ns import CLONE_NEWPID
from virtlevels.kernel.signals import SIGILL, SIGKILL, SIGSEGV

HELLO = program(
    """
    li a0, 1
    la a1, msg
    li a2, 6
    li a7, SYS_write
    ecall
    li a0, 3
    li a7, SYS_exit_group
    ecall
""",
    'msg: .ascii "hello\\n"',
)


def run_isa(k, path: str, image: bytes, *, argv=None, **spawn):
    k.write_file(path, image, 0o755)
    out = {}

    def parent():
        out["w"] = yield sc.wait4(-1)

    k.spawn(parent, stdio=True)
    t = k.spawn(path, argv or [path], stdio=True, **spawn)
    k.run()
    return out["w"], t


@pytest.mark.parametrize("engine", ["interp", "fast"])
def test_hello_writes_to_stdout_and_exits_3(engine):
    k = make_kernel(engine)
    (pid, status), _t = run_isa(k, "/bin/hello", HELLO)
    assert bytes(k.console) == b"hello\n"
    assert status == 3 << 8 and pid == 2
    cats = k.machine.stats()["cycles_by_category"]
    assert cats["user"] > 0 and cats["supervisor"] > 0 and cats["kernel"] >= 2 * k.c_syscall
    assert k.isa.frames.in_use == 0  # exit freed every frame and page table


def test_argv_and_stack_follow_the_linux_abi(kernel):
    # write(1, argv[1], 3); exit(argc): argc at sp, argv[] after it, sp 16-byte aligned.
    prog = program(
        """
    lw s0, 0(sp)
    lw a1, 8(sp)
    andi s1, sp, 15
    add s0, s0, s1
    li a0, 1
    li a2, 3
    li a7, SYS_write
    ecall
    mv a0, s0
    li a7, SYS_exit
    ecall
"""
    )
    (_pid, status), _ = run_isa(kernel, "/bin/args", prog, argv=["/bin/args", "xyz", "w"])
    assert bytes(kernel.console) == b"xyz" and status == 3 << 8


def test_timer_preemption_interleaves_two_isa_processes(kernel):
    # Each prints its letter 6 times with a long busy loop in between; the slice (3 ms) is far
    # shorter than the loop, so the timer must preempt them for the output to interleave.
    def spinner(letter: str) -> bytes:
        return program(
            """
    li s0, 6
1:  li s1, 300000
2:  addi s1, s1, -1
    bnez s1, 2b
    li a0, 1
    la a1, ch
    li a2, 1
    li a7, SYS_write
    ecall
    addi s0, s0, -1
    bnez s0, 1b
    li a0, 0
    li a7, SYS_exit
    ecall
""",
            f'ch: .ascii "{letter}"',
        )

    k = make_kernel(slice_ns=200_000)
    k.write_file("/bin/a", spinner("a"), 0o755)
    k.write_file("/bin/b", spinner("b"), 0o755)
    k.spawn(lambda: (yield sc.wait4(-1)) and (yield sc.wait4(-1)), stdio=True)
    k.spawn("/bin/a", ["a"], stdio=True)
    k.spawn("/bin/b", ["b"], stdio=True)
    k.run()
    out = bytes(k.console)
    assert sorted(out) == sorted(b"aaaaaabbbbbb")
    assert out not in (b"aaaaaabbbbbb", b"bbbbbbaaaaaa")
    assert k.machine.stats()["traps"].get("supervisor_timer_interrupt", 0) > 5


FORK_WAIT = program(
    """
    li a0, 17                  # clone(SIGCHLD, 0, ...) = fork
    li a1, 0
    li a2, 0
    li a3, 0
    li a4, 0
    li a7, SYS_clone
    ecall
    bnez a0, parent
    li a0, 7                   # child: store to its (copied) data page, then exit 7
    la t0, word
    sw a0, 0(t0)
    li a7, SYS_exit
    ecall
parent:
    mv s0, a0
    li a0, -1
    la a1, status
    li a2, 0
    li a3, 0
    li a7, SYS_wait4
    ecall
    bne a0, s0, bad
    la t0, word
    lw t1, 0(t0)               # the child's store did not reach the parent's copy
    bnez t1, bad
    la t0, status
    lw a0, 0(t0)
    srli a0, a0, 8
    li a7, SYS_exit
    ecall
bad:
    li a0, 99
    li a7, SYS_exit
    ecall
""",
    "status: .word 0\nword: .word 0",
)


@pytest.mark.parametrize("engine", ["interp", "fast"])
def test_fork_and_wait_from_isa_code(engine):
    k = make_kernel(engine)
    (_pid, status), _ = run_isa(k, "/bin/fw", FORK_WAIT)
    assert status == 7 << 8
    assert k.isa.frames.in_use == 0


def test_execve_isa_to_scripted_and_back(kernel):
    k = kernel
    k.write_file("/bin/hello", HELLO, 0o755)

    def script(*args):
        yield sc.write(1, ("script:" + ",".join(args) + "\n").encode())
        r = yield sc.execve("/bin/hello", ["hello"])
        return 100 + (-r)  # only reached if execve failed

    k.install_program("/bin/script", program=script)
    isa = program(
        """
    la a0, path
    la a1, argv
    li a2, 0
    li a7, SYS_execve
    ecall
    li a0, 50
    li a7, SYS_exit
    ecall
""",
        'path: .asciz "/bin/script"\narg1: .asciz "x"\n.align 2\nargv: .word path, arg1, 0',
    )
    (_pid, status), _ = run_isa(k, "/bin/isa", isa)
    assert bytes(k.console) == b"script:x\nhello\n"
    assert status == 3 << 8


def _cg(k, name: str, **files: str):
    k.cgroups.set_subtree_control(k.cgroups.root, {"memory", "pids"}, set())
    cg = k.cgroups.mkdir(k.cgroups.root, name)
    for f, v in files.items():
        k.cgroups.write_file(cg, f.replace("_", ".", 1), v, k.init_creds)
    return cg


# Touch N pages of a brk heap and N of an anonymous mmap (one store per page), then write "."
# (the test samples memory.current in that write).
TOUCHER = """
    li a0, 0
    li a7, SYS_brk
    ecall
    mv s0, a0                  # the heap start
    li t0, {pages}
    slli t0, t0, 12
    add a0, s0, t0
    li a7, SYS_brk
    ecall
    mv a0, s0
    li a1, {pages}
    jal touch
    li a0, 0                   # mmap(0, pages*4096, RW, PRIVATE|ANON, -1, 0)
    li a1, {pages}
    slli a1, a1, 12
    li a2, 3
    li a3, 0x22
    li a4, -1
    li a5, 0
    li a7, SYS_mmap
    ecall
    li a1, {pages}
    jal touch
    li a0, 1
    la a1, msg
    li a2, 1
    li a7, SYS_write
    ecall
    li a0, 0
    li a7, SYS_exit
    ecall
touch:                         # a0 = address, a1 = pages: one store per page
    sw a1, 0(a0)
    li t1, 4096
    add a0, a0, t1
    addi a1, a1, -1
    bnez a1, touch
    ret
"""


def test_brk_and_mmap_pages_are_demand_paged_and_charged():
    k = make_kernel()
    cg = _cg(k, "box")
    k.write_file("/bin/t", program(TOUCHER.format(pages=10), 'msg: .ascii "."'), 0o755)
    seen = {}
    real_write = k.syscalls.get(64).handler

    def spy(kk, t, fd, buf, n):  # sample memory.current when the program reports it is done
        seen["current"] = int(k.cgroups.read_file(cg, "memory.current"))
        seen["faults"] = k.machine.stats()["traps"]
        return real_write(kk, t, fd, buf, n)

    k.syscalls.register(64, spy, 3)
    (_pid, status), _ = run_isa(k, "/bin/t", k.read_file("/bin/t"), cgroup=cg)
    assert status == 0
    # 20 touched pages, plus the program's own: its text/data page and the stack's top page.
    assert seen["current"] == (20 + 2) * 4096
    assert seen["faults"]["store_page_fault"] >= 20
    assert k.cgroups.read_file(cg, "memory.current") == "0\n"  # freed at exit


def test_memory_max_oom_kills_an_isa_process():
    k = make_kernel()
    cg = _cg(k, "box", memory_max=str(32 * 4096))
    prog = program(TOUCHER.format(pages=64), 'msg: .ascii "."')
    (_pid, status), _ = run_isa(k, "/bin/t", prog, cgroup=cg)
    assert status == SIGKILL
    events = dict(line.split() for line in k.cgroups.read_file(cg, "memory.events").splitlines())
    assert events["oom_kill"] == "1"
    assert bytes(k.console) == b""
    assert k.cgroups.read_file(cg, "memory.current") == "0\n"
    assert k.isa.frames.in_use == 0


def test_segfault_and_illegal_instruction_kill_and_the_kernel_goes_on(kernel):
    k = kernel
    k.write_file("/bin/segv", program("    li t0, 0x1000\n    sw t0, 0(t0)\n"), 0o755)
    k.write_file("/bin/ill", program("    .word 0\n"), 0o755)
    k.write_file("/bin/hello", HELLO, 0o755)
    out = {}

    def init():
        for path in ("/bin/segv", "/bin/ill", "/bin/hello"):
            pid = yield sc.fork(lambda p=path: (yield sc.execve(p, [p])))
            out[path] = (yield sc.wait4(pid))[1]

    k.spawn(init, stdio=True)
    k.run()
    assert out == {"/bin/segv": SIGSEGV, "/bin/ill": SIGILL, "/bin/hello": 3 << 8}
    assert bytes(k.console) == b"hello\n"


def test_getpid_is_1_for_an_isa_process_in_a_new_pid_namespace(kernel):
    k = kernel
    getpid = program("    li a7, SYS_getpid\n    ecall\n    li a7, SYS_exit\n    ecall\n")
    k.write_file("/bin/pid", getpid, 0o755)
    out = {}

    def init():
        out["unshare"] = yield sc.unshare(CLONE_NEWPID)
        pid = yield sc.fork(lambda: (yield sc.execve("/bin/pid", ["pid"])))
        out["host_pid"] = pid
        out["w"] = yield sc.wait4(pid)

    k.spawn(init)
    k.run()
    assert out["unshare"] == 0 and out["host_pid"] > 1
    assert out["w"][1] == 1 << 8


def scenario(engine: str = "interp"):
    k = make_kernel(engine)
    k.write_file("/bin/fw", FORK_WAIT, 0o755)
    k.write_file("/bin/hello", HELLO, 0o755)
    k.spawn(lambda: (yield sc.wait4(-1)) and (yield sc.wait4(-1)), stdio=True)
    k.spawn("/bin/fw", ["fw"], stdio=True)
    k.spawn("/bin/hello", ["hello"], stdio=True)
    k.run()
    return k.world.now, k.machine.stats(), bytes(k.console)


def test_determinism_same_inputs_same_cycles():
    first = scenario()
    assert first == scenario()
    assert scenario("fast") == first  # the block translator charges exactly what the interpreter does
