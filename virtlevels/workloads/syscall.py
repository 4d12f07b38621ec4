"""``syscall``: a system-call-heavy loop — getpid(2) ``calls`` times, each answer checked against the
first (the null system call of lmbench's lat_syscall and of Adams & Agesen's "syscall" test).
Prints ``syscall: N getpid calls``; exits 1 if an answer differed."""

from __future__ import annotations

from typing import Any

from virtlevels.workloads.asmlib import EXIT_0, asciz, build_elf
from virtlevels.workloads.image import IntParam, WorkloadImage, check_params

PARAMS = {"calls": IntParam(100, 1, 10_000_000, "getpid calls after the first")}
PRESETS = {"small": {}, "large": {"calls": 20_000}}


def source(calls: int) -> str:
    return f"""
    .equ CALLS, {calls}
_start:
    li    a7, SYS_getpid
    ecall
    mv    s0, a0
    li    s1, 0
    li    s2, CALLS
1:  li    a7, SYS_getpid
    ecall
    bne   a0, s0, 9f
    addi  s1, s1, 1
    bltu  s1, s2, 1b
    la    a0, msg0
    call  vl_cat
    mv    a0, s1
    call  vl_dec
    la    a0, msg1
    call  vl_cat
    call  vl_flush
{EXIT_0}
9:  li    a0, 1
    call  vl_fail

    .rodata
{asciz("msg0", "syscall: ")}
{asciz("msg1", " getpid calls" + chr(10))}
"""


def build(**params: Any) -> WorkloadImage:
    p = check_params("syscall", PARAMS, params, PRESETS)
    return WorkloadImage(
        name="syscall", elf=build_elf("syscall", source(p["calls"])), argv=("/bin/syscall",), files={},
        expected_stdout=f"syscall: {p['calls']} getpid calls\n".encode(), needs=frozenset(), params=p,
    )  # fmt: skip
