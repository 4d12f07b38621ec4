"""``fileio``: write ``kib`` KiB to a new file in 1 KiB write(2)s, lseek(2) back, read(2) it back and
verify every word, check EOF, close and unlink it. Each word is a hash of its block and index,
so a misplaced block is caught. Prints ``fileio: N KiB written and verified sum=0xHHHHHHHH``
(the sum of the words read); exits 1-6 at the first failure (open, write, lseek, read, mismatch,
EOF). The file is ``/tmp/vl-fileio.dat``; the program creates /tmp (mode 1777) when missing, so it
also runs in a container whose root has none.
"""

from __future__ import annotations

from typing import Any

from virtlevels.kernel.vfs.constants import AT_FDCWD, O_CREAT, O_RDWR, O_TRUNC, SEEK_SET
from virtlevels.workloads.asmlib import asciz, build_elf, exit_or_fail
from virtlevels.workloads.image import IntParam, WorkloadImage, check_params

PARAMS = {"kib": IntParam(8, 1, 65536, "KiB written then read back")}
PRESETS = {"small": {}, "large": {"kib": 1024}}
PATH = "/tmp/vl-fileio.dat"
BLOCK = 1024
K1, K2 = 0x9E3779B1, 0x85EBCA6B  # Fibonacci-hashing multipliers (golden ratio; murmur3's c1)


def word(block: int, index: int) -> int:
    return (block * K1 + index * K2 + 1) & 0xFFFF_FFFF


def checksum(kib: int) -> int:
    return sum(word(b, i) for b in range(kib) for i in range(BLOCK // 4)) & 0xFFFF_FFFF


def source(kib: int) -> str:
    return f"""
    .equ BLOCKS, {kib}
    .equ WORDS, {BLOCK // 4}
_start:
    li    a0, {AT_FDCWD}
    la    a1, dir
    li    a2, 01777
    li    a7, SYS_mkdirat
    ecall                              # EEXIST when /tmp is there: fine
    li    a0, {AT_FDCWD}
    la    a1, path
    li    a2, {O_RDWR | O_CREAT | O_TRUNC}
    li    a3, 0644
    li    a7, SYS_openat
    ecall
    li    t0, 1
    bltz  a0, fail
    mv    s0, a0                       # fd
    li    s6, {K1}
    li    s7, {K2}
    li    s1, 0                        # block
1:  la    t1, block                    # fill: word i = block * K1 + i * K2 + 1
    mul   t2, s1, s6
    addi  t2, t2, 1
    li    t3, WORDS
2:  sw    t2, 0(t1)
    add   t2, t2, s7
    addi  t1, t1, 4
    addi  t3, t3, -1
    bnez  t3, 2b
    mv    a0, s0
    la    a1, block
    li    a2, {BLOCK}
    li    a7, SYS_write
    ecall
    li    t0, 2
    li    t1, {BLOCK}
    bne   a0, t1, fail
    addi  s1, s1, 1
    li    t1, BLOCKS
    bltu  s1, t1, 1b

    mv    a0, s0
    li    a1, 0
    li    a2, {SEEK_SET}
    li    a7, SYS_lseek
    ecall
    li    t0, 3
    bnez  a0, fail

    li    s1, 0                        # block
    li    s2, 0                        # sum
3:  la    t1, block
    li    t3, WORDS
4:  sw    zero, 0(t1)                  # clear the buffer: the data must come from the file
    addi  t1, t1, 4
    addi  t3, t3, -1
    bnez  t3, 4b
    mv    a0, s0
    la    a1, block
    li    a2, {BLOCK}
    li    a7, SYS_read
    ecall
    li    t0, 4
    li    t1, {BLOCK}
    bne   a0, t1, fail
    la    t1, block
    mul   t2, s1, s6
    addi  t2, t2, 1
    li    t3, WORDS
5:  lw    t4, 0(t1)
    li    t0, 5
    bne   t4, t2, fail
    add   s2, s2, t4
    add   t2, t2, s7
    addi  t1, t1, 4
    addi  t3, t3, -1
    bnez  t3, 5b
    addi  s1, s1, 1
    li    t1, BLOCKS
    bltu  s1, t1, 3b

    mv    a0, s0                       # at the end: read returns 0
    la    a1, block
    li    a2, {BLOCK}
    li    a7, SYS_read
    ecall
    li    t0, 6
    bnez  a0, fail
    mv    a0, s0
    li    a7, SYS_close
    ecall
    li    a0, {AT_FDCWD}
    la    a1, path
    li    a2, 0
    li    a7, SYS_unlinkat
    ecall

    la    a0, msg0
    call  vl_cat
    li    a0, BLOCKS
    call  vl_dec
    la    a0, msg1
    call  vl_cat
    mv    a0, s2
    li    a1, 8
    call  vl_hex
    la    a0, nl
    call  vl_cat
    call  vl_flush
{exit_or_fail("t0")}
    .rodata
{asciz("dir", "/tmp")}
{asciz("path", PATH)}
{asciz("msg0", "fileio: ")}
{asciz("msg1", " KiB written and verified sum=0x")}
{asciz("nl", chr(10))}
    .bss
    .balign 4
block: .space {BLOCK}
"""


def build(**params: Any) -> WorkloadImage:
    p = check_params("fileio", PARAMS, params, PRESETS)
    kib = p["kib"]
    return WorkloadImage(
        name="fileio", elf=build_elf("fileio", source(kib)), argv=("/bin/fileio",), files={},
        expected_stdout=f"fileio: {kib} KiB written and verified sum=0x{checksum(kib):08x}\n".encode(),
        needs=frozenset(), params=p,
    )  # fmt: skip
