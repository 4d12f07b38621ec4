"""``forkwait``: Adams & Agesen's (ASPLOS 2006) process-creation microbenchmark — fork ``children``
children one after the other; each exits at once with status ``i % 128``, and the parent waits
for it with wait4(2) before forking the next (fork is clone(2) with SIGCHLD and nothing else,
as glibc's fork). Prints ``forkwait: N children forked and reaped``; exits 1 (fork failed),
2 (wait4 returned another pid) or 3 (wrong exit status).
"""

from __future__ import annotations

from typing import Any

from virtlevels.workloads.asmlib import FORK, asciz, build_elf, exit_or_fail
from virtlevels.workloads.image import IntParam, WorkloadImage, check_params

PARAMS = {"children": IntParam(16, 1, 100_000, "children forked and reaped, one at a time")}
PRESETS = {"small": {}, "large": {"children": 1000}}


def source(children: int) -> str:
    return f"""
    .equ CHILDREN, {children}
_start:
    li    s0, 0                        # i
1:{FORK}
    li    s11, 1
    bltz  a0, fail
    bnez  a0, 2f
    andi  a0, s0, 127                  # the child: exit(i % 128)
    li    a7, SYS_exit
    ecall
2:  mv    s1, a0                       # the parent: wait4(pid, &status, 0, NULL)
    la    a1, status
    li    a2, 0
    li    a3, 0
    li    a7, SYS_wait4
    ecall
    li    s11, 2
    bne   a0, s1, fail
    lw    t0, status
    srli  t1, t0, 8
    andi  t1, t1, 255
    andi  t2, t0, 127
    andi  t3, s0, 127
    li    s11, 3
    bnez  t2, fail                     # killed by a signal
    bne   t1, t3, fail
    addi  s0, s0, 1
    li    t0, CHILDREN
    bltu  s0, t0, 1b

    la    a0, msg0
    call  vl_cat
    mv    a0, s0
    call  vl_dec
    la    a0, msg1
    call  vl_cat
    call  vl_flush
{exit_or_fail()}
    .rodata
{asciz("msg0", "forkwait: ")}
{asciz("msg1", " children forked and reaped" + chr(10))}
    .bss
    .balign 4
status: .space 4
"""


def build(**params: Any) -> WorkloadImage:
    p = check_params("forkwait", PARAMS, params, PRESETS)
    n = p["children"]
    return WorkloadImage(
        name="forkwait", elf=build_elf("forkwait", source(n)), argv=("/bin/forkwait",), files={},
        expected_stdout=f"forkwait: {n} children forked and reaped\n".encode(),
        needs=frozenset({"fork"}), params=p,
    )  # fmt: skip
