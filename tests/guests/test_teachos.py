"""teachos on the virt board: processes, preemption, system calls, faults, and its PV variant."""

from __future__ import annotations

import re

import pytest
from guest_helpers import ENGINES, PrivilegedCounter, run_teachos

from virtlevels.guests import UserProgram, boot_teachos, build_teachos
from virtlevels.machine.board import virt_machine

# Checks the system calls' return values; exits with the number of the first failed check.
PROBE = UserProgram("probe", r"""
    .text
    .globl _start
_start:
    li    a7, 999                      # 1: an unknown system call gives -ENOSYS
    ecall
    li    t0, -38
    li    s0, 1
    bne   a0, t0, fail
    li    a0, 3                        # 2: write to a closed fd gives -EBADF
    la    a1, ok
    li    a2, 1
    li    a7, 64
    ecall
    li    t0, -9
    li    s0, 2
    bne   a0, t0, fail
    li    a0, 1                        # 3: write from an unmapped buffer gives -EFAULT
    li    a1, 0x200000
    li    a2, 4
    li    a7, 64
    ecall
    li    t0, -14
    li    s0, 3
    bne   a0, t0, fail
    li    a7, 124                      # 4: sched_yield returns 0
    ecall
    li    s0, 4
    bnez  a0, fail
    li    a0, 1                        # 5: clock_gettime(CLOCK_MONOTONIC) fills a timespec
    la    a1, ts
    li    a7, 113
    ecall
    li    s0, 5
    bnez  a0, fail
    lw    t0, ts + 8
    li    t1, 1000000000
    bgeu  t0, t1, fail
    li    a0, 7                        # 6: an unknown clock gives -EINVAL
    la    a1, ts
    li    a7, 113
    ecall
    li    t0, -22
    li    s0, 6
    bne   a0, t0, fail
    li    a0, 0                        # 7: brk(0) is the page after the image
    li    a7, 214
    ecall
    li    s0, 7
    beqz  a0, fail
    slli  t0, a0, 20
    bnez  t0, fail
    li    a0, 0x10000                  # 8: brk below the heap is refused (old break returned)
    mv    s1, a0
    li    a7, 214
    ecall
    li    s0, 8
    beq   a0, s1, fail
    li    a0, 1                        # 9: nanosleep 1 ms: time moves on by at least 10000 ticks
    la    a1, ts
    li    a7, 113
    ecall
    lw    s2, ts + 8                   # nanoseconds before
    lw    s3, ts                       # seconds before
    la    a0, nap
    li    a1, 0
    li    a7, 101
    ecall
    li    s0, 9
    bnez  a0, fail
    li    a0, 1
    la    a1, ts
    li    a7, 113
    ecall
    lw    t0, ts
    lw    t1, ts + 8
    sub   t0, t0, s3
    li    t2, 1000000000
    mul   t0, t0, t2
    add   t1, t1, t0
    sub   t1, t1, s2                   # nanoseconds slept
    li    t2, 1000000
    bltu  t1, t2, fail
    li    a0, 1
    la    a1, ok
    li    a2, ok_end - ok
    li    a7, 64
    ecall
    li    a0, 0
    li    a7, 93
    ecall
fail:
    mv    a0, s0
    li    a7, 94                       # exit_group
    ecall

    .rodata
ok:
    .ascii "probe ok\n"
ok_end:
nap:
    .word 0, 0, 1000000, 0             # struct __kernel_timespec: 0 s, 1 ms
    .data
ts:
    .space 16
""", "probe.S")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("paravirt", [False, True], ids=["native", "pv"])
def test_hello_prints_and_the_run_passes(engine: str, paravirt: bool) -> None:
    result = run_teachos(["hello"], paravirt=paravirt, engine=engine)
    assert result.uart == "hello from teachos\n"
    assert (result.status, result.exit_code) == ("pass", 0)
    assert result.traps["ecall_from_u"] == 2  # write and exit


@pytest.mark.parametrize("engine", ENGINES)
def test_two_counters_interleave_under_timer_preemption(engine: str) -> None:
    result = run_teachos(["counter", "counter"], engine=engine)
    assert result.status == "pass"
    lines = result.uart.splitlines()
    assert sorted(lines) == sorted(f"counter {pid}: {i}" for pid in (1, 2) for i in range(1, 5))
    owners = [line.split(":")[0] for line in lines]
    switches = sum(1 for a, b in zip(owners, owners[1:], strict=False) if a != b)
    assert switches >= 2, f"no interleaving: {lines}"
    assert result.traps.get("supervisor_timer_interrupt", 0) >= 2
    assert result.traps.get("machine_timer_interrupt", 0) >= 2  # the firmware forwards MTI as STI


def test_without_timer_interrupts_the_counters_run_one_after_the_other() -> None:
    # A huge interval: no preemption, so the order shows that the interleaving above is the timer's.
    result = run_teachos(["counter", "counter"], timer_interval=10**9)
    owners = [line.split(":")[0] for line in result.uart.splitlines()]
    assert owners == ["counter 1"] * 4 + ["counter 2"] * 4
    assert "supervisor_timer_interrupt" not in result.traps


def test_getpid_loop_makes_its_system_calls() -> None:
    result = run_teachos(["getpid-loop"])
    assert result.uart == "getpid-loop: 200 calls\n"
    assert result.traps["ecall_from_u"] == 1 + 200 + 3 + 1  # first getpid, the loop, 3 writes, exit


def test_second_process_sees_its_own_pid() -> None:
    result = run_teachos(["hello", "getpid-loop"])
    assert result.uart == "hello from teachos\ngetpid-loop: 200 calls\n"


@pytest.mark.parametrize("paravirt", [False, True], ids=["native", "pv"])
def test_system_calls_return_linux_results(paravirt: bool) -> None:
    result = run_teachos([PROBE], paravirt=paravirt)
    assert result.uart == "probe ok\n", f"check {result.exit_code} failed"
    assert result.status == "pass"


def test_unknown_syscall_returns_enosys_which_a_program_can_report() -> None:
    prog = UserProgram("nosys", """
        .globl _start
    _start:
        li a7, 4242
        ecall
        neg a0, a0              # exit code 38 = ENOSYS
        li a7, 93
        ecall
    """)
    result = run_teachos([prog])
    assert (result.status, result.exit_code) == ("fail", 38)


def test_faulting_process_is_killed_and_the_kernel_carries_on() -> None:
    result = run_teachos(["fault", "hello", "getpid-loop"])
    assert result.uart.splitlines() == [
        "fault: about to store to NULL",
        "teachos: pid 1 killed: scause 15 stval 0x00000000 pc 0x00010020",
        "hello from teachos",
        "getpid-loop: 200 calls",
    ]
    # Killed by SIGSEGV: exit status 128 + 11, reported through SBI SRST and the test finisher.
    assert (result.status, result.exit_code) == ("fail", 139)
    assert result.traps["store_page_fault"] == 1


def test_illegal_instruction_in_user_mode_kills_with_sigill_status() -> None:
    prog = UserProgram("priv", """
        .globl _start
    _start:
        csrw sstatus, zero      # a supervisor CSR from U-mode: illegal instruction
        li a7, 93
        ecall
    """)
    result = run_teachos([prog, "hello"])
    assert "teachos: pid 1 killed: scause 2 " in result.uart
    assert result.uart.endswith("hello from teachos\n")
    assert (result.status, result.exit_code) == ("fail", 128 + 4)


def test_exit_code_of_a_failing_program_is_the_run_exit_code() -> None:
    prog = UserProgram("seven", ".globl _start\n_start: li a0, 7\n li a7, 93\n ecall\n")
    result = run_teachos(["hello", prog])
    assert (result.status, result.exit_code) == ("fail", 7)


def test_memtouch_heap_pages_are_mapped_on_first_touch() -> None:
    result = run_teachos(["memtouch"])
    assert result.uart == "memtouch: 8 pages\n"
    assert result.status == "pass"
    assert result.traps["store_page_fault"] == 8  # one per page, then never again


def test_processes_are_isolated_from_each_other() -> None:
    # Both programs write their own word at the same user address; neither sees the other's.
    def writer(value: int) -> UserProgram:
        return UserProgram(f"w{value}", f"""
            .globl _start
        _start:
            la t0, slot
            li t1, {value}
            sw t1, 0(t0)
            li t2, 30000
        1:  addi t2, t2, -1          # be preempted while the other one writes
            bnez t2, 1b
            lw a0, 0(t0)
            addi a0, a0, -{value}    # 0 if our value survived
            li a7, 93
            ecall
            .data
        slot: .word 0
        """)

    result = run_teachos([writer(5), writer(9)], timer_interval=200)
    assert result.traps.get("supervisor_timer_interrupt", 0) >= 2
    assert (result.status, result.exit_code) == ("pass", 0)


@pytest.mark.parametrize("programs", [["hello", "counter", "counter"], ["fault", "memtouch", "getpid-loop"]],
                         ids=["counters", "faults"])
def test_pv_kernel_gives_the_same_output_and_status_as_native(programs: list[str]) -> None:
    native = run_teachos(programs)
    pv = run_teachos(programs, paravirt=True)
    assert pv.uart == native.uart
    assert (pv.status, pv.exit_code) == (native.status, native.exit_code)
    # The PV kernel's privileged work became hypercalls: many more ecalls from S-mode.
    assert pv.traps["ecall_from_s"] > 5 * native.traps["ecall_from_s"]
    assert "illegal_instruction" not in pv.traps


def test_pv_kernel_executes_no_privileged_instruction_in_s_mode() -> None:
    programs = ["counter", "fault", "memtouch", PROBE]
    counts = {}
    for paravirt in (False, True):
        machine = virt_machine()
        tracer = PrivilegedCounter(machine)
        machine.tracer = tracer
        result = run_teachos(programs, paravirt=paravirt, machine=machine)
        assert "probe ok" in result.uart
        counts[paravirt] = tracer.counts
    # The tracer does see the native kernel's csrw/sret/sfence.vma/wfi ...
    assert {"sret", "sfence.vma", "wfi", "csrrw"} <= set(counts[False])
    # ... and none from the PV kernel.
    assert counts[True] == {}


@pytest.mark.parametrize("paravirt", [False, True], ids=["native", "pv"])
def test_same_image_gives_the_same_cycles(paravirt: bool) -> None:
    image = build_teachos(["counter", "memtouch", "counter"], paravirt=paravirt)
    results = []
    for _ in range(2):
        machine = virt_machine()
        boot_teachos(machine, image)
        results.append(machine.run(3_000_000))
    a, b = results
    assert (a.cycles, a.instructions, a.uart, a.traps) == (b.cycles, b.instructions, b.uart, b.traps)
    assert a.cycles_by_category == b.cycles_by_category


def test_kill_message_names_the_faulting_pc() -> None:
    result = run_teachos(["hello", "fault"])
    m = re.search(r"pid 2 killed: scause 15 stval 0x00000000 pc (0x[0-9a-f]{8})", result.uart)
    assert m is not None and int(m.group(1), 16) >= 0x10000
