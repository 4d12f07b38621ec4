"""``memory``: mmap(2) ``pages`` anonymous private pages, touch each once (the first touch of a page
is a page fault the kernel answers with a fresh zeroed frame — demand paging), read them all
back, munmap(2). Prints ``memory: N pages touched sum=0xHHHHHHHH``; exits 1 (mmap failed),
2 (a page was not zero before its first write) or 3 (a value did not survive).
"""

from __future__ import annotations

from typing import Any

from virtlevels.kernel.mm import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from virtlevels.workloads.asmlib import asciz, build_elf, exit_or_fail
from virtlevels.workloads.image import IntParam, WorkloadImage, check_params

PARAMS = {"pages": IntParam(64, 1, 1 << 18, "4 KiB pages mapped and touched")}
PRESETS = {"small": {}, "large": {"pages": 2048}}
PAGE = 4096
K = 0x9E3779B1


def value(page: int) -> int:
    return (page * K + 7) & 0xFFFF_FFFF


def checksum(pages: int) -> int:
    return sum(value(p) for p in range(pages)) & 0xFFFF_FFFF


def source(pages: int) -> str:
    return f"""
    .equ PAGES, {pages}
_start:
    li    a0, 0
    li    a1, PAGES * {PAGE}
    li    a2, {PROT_READ | PROT_WRITE}
    li    a3, {MAP_PRIVATE | MAP_ANONYMOUS}
    li    a4, -1
    li    a5, 0
    li    a7, SYS_mmap
    ecall
    li    t0, -4096
    li    s11, 1
    bgeu  a0, t0, fail                 # -errno (MAP_FAILED range)
    mv    s0, a0                       # base
    li    s5, {K}
    mv    t1, s0                       # write pass: word at page offset (p * 64) % 4096
    li    t2, 0
    li    t3, 7                        # value(p) = p * K + 7
1:  andi  t4, t2, 63
    slli  t4, t4, 6
    add   t4, t1, t4
    lw    t5, 0(t4)
    li    s11, 2
    bnez  t5, fail
    sw    t3, 0(t4)
    add   t3, t3, s5
    li    t5, {PAGE}
    add   t1, t1, t5
    addi  t2, t2, 1
    li    t5, PAGES
    bltu  t2, t5, 1b
    mv    t1, s0                       # read pass
    li    t2, 0
    li    t3, 7
    li    s2, 0
2:  andi  t4, t2, 63
    slli  t4, t4, 6
    add   t4, t1, t4
    lw    t5, 0(t4)
    li    s11, 3
    bne   t5, t3, fail
    add   s2, s2, t5
    add   t3, t3, s5
    li    t5, {PAGE}
    add   t1, t1, t5
    addi  t2, t2, 1
    li    t5, PAGES
    bltu  t2, t5, 2b
    mv    a0, s0
    li    a1, PAGES * {PAGE}
    li    a7, SYS_munmap
    ecall

    la    a0, msg0
    call  vl_cat
    li    a0, PAGES
    call  vl_dec
    la    a0, msg1
    call  vl_cat
    mv    a0, s2
    li    a1, 8
    call  vl_hex
    la    a0, nl
    call  vl_cat
    call  vl_flush
{exit_or_fail()}
    .rodata
{asciz("msg0", "memory: ")}
{asciz("msg1", " pages touched sum=0x")}
{asciz("nl", chr(10))}
"""


def build(**params: Any) -> WorkloadImage:
    p = check_params("memory", PARAMS, params, PRESETS)
    n = p["pages"]
    return WorkloadImage(
        name="memory", elf=build_elf("memory", source(n)), argv=("/bin/memory",), files={},
        expected_stdout=f"memory: {n} pages touched sum=0x{checksum(n):08x}\n".encode(),
        needs=frozenset(), params=p,
    )  # fmt: skip
