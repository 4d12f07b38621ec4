"""Differential tests against GNU binutils: the same source assembled by GNU as + ld and by us
must give the same bytes, and our disassembler must print what objdump prints."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from virtlevels.machine.asm import assemble
from virtlevels.machine.disasm import disassemble_image
from virtlevels.machine.elf import load_elf, write_elf
from virtlevels.machine.image import PF_R, PF_X, Image, Segment
from virtlevels.machine.isa.encodings import ENCODINGS

PROGRAM = r"""
    .option norvc
    .equ UART, 0x10000000
    .set COUNT, 12
    .globl _start
    .type _start, @function
_start:
    li a0, 0
    li a0, -1
    li a1, 2047
    li a1, -2048
    li a2, 0x800
    li a2, 0x7ffff800
    li a3, 0x80000000
    li a3, 0xffffffff
    li a4, 0x12345678
    li a5, 0xfffff800
    li a5, UART
    li a6, COUNT * 4 + (1 << 3)
    li a7, ~0x0f
    li t0, -0x80000000
    la a0, message
    lla a1, table
    lw a2, counter
    lbu a3, message
    sw a2, counter, t0
    sb a3, flag, t1
    call func
    call t2, func
    tail func
    jump func, t3
1:  addi a0, a0, -1
    bnez a0, 1b
    beqz a1, 1f
    j 2f
1:  nop
2:  mv a0, a1
    not a0, a1
    neg a0, a1
    seqz a0, a1
    snez a0, a1
    sltz a0, a1
    sgtz a0, a1
    sgt a0, a1, a2
    sgtu a0, a1, a2
    zext.b a0, a1
    beqz a0, _start
    bnez a0, _start
    blez a0, _start
    bgez a0, _start
    bltz a0, _start
    bgtz a0, _start
    bgt a0, a1, _start
    ble a0, a1, _start
    bgtu a0, a1, _start
    bleu a0, a1, _start
    beq a0, a1, .+8
    jal _start
    jal ra, func
    jal zero, func
    jalr a0
    jalr t0, a1
    jalr t0, 12(a1)
    jalr t0, a1, -4
    jr a0
    jr a0, 8
    jr 4(a0)
    ret
    add a0, a1, 5
    and a0, a1, 0x70
    or a0, a1, -2
    xor a0, a1, 3
    sll a0, a1, 3
    srl a0, a1, 31
    sra a0, a1, 1
    slt a0, a1, -3
    sltu a0, a1, 9
    slli s0, s1, 0x1f
    srai x5, x6, 12
    lui a0, %hi(table)
    addi a0, a0, %lo(table)
    lw a1, %lo(table)(a0)
    sw a1, %lo(table+4)(a0)
3:  auipc a0, %pcrel_hi(counter)
    lw a1, %pcrel_lo(3b)(a0)
    addi a2, a0, %pcrel_lo(3b)
    lui a0, 0xfffff
    auipc fp, 0
    lw a0, (a1)
    lh a0, -2(sp)
    lhu a0, 2(sp)
    lb a0, 0x7ff(gp)
    sh a0, -2048(tp)
    sb zero, 1(a7)
    mul a0, a1, a2
    mulh a0, a1, a2
    mulhsu a0, a1, a2
    mulhu a0, a1, a2
    div a0, a1, a2
    divu a0, a1, a2
    rem a0, a1, a2
    remu a0, a1, a2
    lr.w a0, (a1)
    lr.w.aq a0, (a1)
    sc.w a0, a2, (a1)
    sc.w.rl a0, a2, (a1)
    amoswap.w a0, a2, (a1)
    amoadd.w.aqrl a0, a2, (a1)
    amoxor.w.aq a0, a2, (a1)
    amoand.w.rl a0, a2, (a1)
    amoor.w a0, a2, (a1)
    amomin.w a0, a2, (a1)
    amomax.w a0, a2, (a1)
    amominu.w a0, a2, (a1)
    amomaxu.w a0, a2, 0(a1)
    csrr a0, mstatus
    csrw mtvec, a0
    csrw mscratch, 3
    csrs mie, a1
    csrc mip, a1
    csrwi satp, 0
    csrsi sstatus, 2
    csrci sie, 31
    csrrw a0, mepc, a1
    csrrs a0, sepc, x0
    csrrc a0, 0x7c0, a1
    csrrwi a0, pmpcfg0, 5
    csrrsi a0, pmpaddr15, 5
    csrrci a0, medeleg, 5
    csrrw a0, mscratch, 7
    csrr a0, cycle
    csrr a0, hpmcounter3
    csrr a0, mhartid
    rdcycle a0
    rdcycleh a0
    rdtime a0
    rdtimeh a0
    rdinstret a0
    rdinstreth a0
    fence
    fence rw, rw
    fence i, o
    fence iorw, w
    fence.i
    fence.tso
    sfence.vma
    sfence.vma a0
    sfence.vma a0, a1
    ecall
    ebreak
    mret
    sret
    wfi
    unimp
    .align 4
    .p2align 3
    nop
    .balign 16
func:
    ret
    .byte 1, 2, 3, 4
    .align 2
after_bytes:
    .word func, after_bytes - func, . - _start
    .half 0x1234, -1
    .dword 0x123456789abcdef0
    .4byte 'A', '\n'
    .word (1 + 2 & 3), 7 / 2, -7 / 2, -7 % 2, 1 << 31 >> 31, 0b101, 017, 0x10 | 1
    .word 1 == 1, 1 < 2, 3 > 4, !0
    .fill 3, 2, 0x4142
    .zero 4
    .space 3, 0xaa
    .skip 1
    .ascii "ab\tc"
    .asciz "x\"y\\z\101\x42"
    .string "end"

    .section .rodata
table:
    .word 1, 2, 3, 4
message:
    .asciz "hello, world\n"

    .data
    .align 3
counter:
    .word 42
flag:
    .byte 0
    .align 2
ptrs:
    .word table, message + 3, counter
    .half ptrs - counter

    .bss
    .align 4
buffer:
    .space 64
"""


def _sections(elf: Path) -> dict[str, tuple[int, bytes, int]]:
    with elf.open("rb") as f:
        ef = ELFFile(f)
        return {
            s.name: (s["sh_addr"], s.data() if s["sh_type"] != "SHT_NOBITS" else b"", s["sh_size"])
            for s in ef.iter_sections()
            if s["sh_flags"] & 2
        }


def test_program_assembles_to_the_same_bytes_as_gnu_as(gnu_toolchain):
    gnu = _sections(gnu_toolchain.assemble(PROGRAM))
    origins = {name: gnu[name][0] for name in (".rodata", ".data", ".bss")}
    image = assemble(PROGRAM, "prog.S", origins=origins)
    ours = {seg.name: seg for seg in image.segments}
    for name in (".text", ".rodata", ".data"):
        addr, data, _ = gnu[name]
        assert ours[name].addr == addr, name
        if ours[name].data != data:
            for i in range(0, max(len(data), len(ours[name].data)), 4):
                g, o = data[i : i + 4].hex(), ours[name].data[i : i + 4].hex()
                assert g == o, f"{name}+{i:#x} ({addr + i:#x}): GNU {g} ours {o}"
        assert ours[name].data == data, name
    assert ours[".bss"].memsize == gnu[".bss"][2]
    assert image.entry == 0x8000_0000


def test_gnu_elf_loads_with_its_symbols(gnu_toolchain):
    elf = gnu_toolchain.assemble(PROGRAM)
    image = load_elf(elf.read_bytes(), str(elf))
    gnu = _sections(elf)
    assert image.entry == 0x8000_0000
    assert image.symbols["_start"] == 0x8000_0000
    assert image.symbols["counter"] == gnu[".data"][0]
    text = next(seg for seg in image.segments if seg.name == ".text")
    assert text.addr == 0x8000_0000  # the ELF header ld maps below .text is not loaded
    assert text.data.startswith(gnu[".text"][1])


def _random_words(seed: int, per_row: int = 24) -> list[int]:
    rnd = random.Random(seed)
    words = []
    specials = [0, 1, 0xFFF, 0xFF, 0x7FF, 0xC00, 0xC81, 0xC02, 0x300, 0x3B5, 0xFFE]
    for row in ENCODINGS:
        free = ~row.mask & 0xFFFFFFFF
        for k in range(per_row):
            w = (rnd.getrandbits(32) & free) | row.match
            if k % 3 == 0:
                w &= ~(0x1F << 7)  # rd = zero, where most aliases live
            if k % 4 == 0:
                w &= ~(0x1F << 15)
            if k % 5 == 0:
                w &= ~(0x1F << 20)
            if k % 6 == 0:
                w = (w & 0x000FFFFF) | ((rnd.choice(specials) << 20) & free) | (row.match & 0xFFF00000)
            if k % 7 == 0:
                w = (w & ~(0x1F << 15)) | (1 << 15)  # rs1 = ra (ret, jalr ra)
            words.append((w & ~row.mask | row.match) & 0xFFFFFFFF)
    return words + [0xFFFFFFFF, 0x00000000, 0x12345678, 0x0000006F]


def test_disassembly_matches_objdump_for_every_encoding_row(gnu_toolchain):
    words = _random_words(2024)
    data = b"".join(w.to_bytes(4, "little") for w in words)
    image = Image(
        (Segment(0x8000_0000, data, len(data), PF_R | PF_X, ".text"),),
        0x8000_0000,
        {"_start": 0x8000_0000, "middle": 0x8000_0400, "data_x": 0x8001_0000},
    )
    elf = gnu_toolchain.workdir / "words.elf"
    elf.write_bytes(write_elf(image))
    for args, aliases in (((), True), (("-M", "no-aliases"), False)):
        gnu = gnu_toolchain.objdump_body(elf, *args)
        ours = disassemble_image(image, aliases=aliases)
        mismatches = [(g, o) for g, o in zip(gnu, ours, strict=False) if g != o]
        assert not mismatches[:5], f"objdump {' '.join(args)} differs"
        assert len(gnu) == len(ours)


def test_disassembly_of_assembled_program_matches_objdump(gnu_toolchain):
    image = assemble(PROGRAM, "prog.S")
    elf = gnu_toolchain.workdir / "ours.elf"
    elf.write_bytes(write_elf(image))
    # Compare up to the data placed in .text after func (objdump will not decode an
    # instruction that crosses a symbol there, and we do not mimic that).
    end = f"{image.symbols['func']:8x}:"
    gnu = gnu_toolchain.objdump_body(elf)
    gnu = gnu[: next(i for i, line in enumerate(gnu) if line.startswith(end)) + 1]
    ours = disassemble_image(image)[: len(gnu)]
    assert len(gnu) > 150
    assert [(g, o) for g, o in zip(gnu, ours, strict=True) if g != o][:5] == []
    nm = gnu_toolchain.run("nm", str(elf))
    assert f"{image.symbols['func']:08x} T func" in nm
    assert f"{image.symbols['counter']:08x} D counter" in nm


C_PROGRAM = """
volatile int counter = 5;
int table[4];
void _start(void) { for (int i = 0; i < 4; i++) table[i] = counter * i; for (;;) counter++; }
"""


def test_gcc_built_static_elf_loads_and_disassembles_like_objdump(gnu_toolchain):
    if shutil.which("riscv64-unknown-elf-gcc") is None:
        pytest.skip("riscv64-unknown-elf-gcc not installed (apt install gcc-riscv64-unknown-elf)")
    src = gnu_toolchain.workdir / "c.c"
    elf = gnu_toolchain.workdir / "c.elf"
    src.write_text(C_PROGRAM)
    subprocess.run(
        [shutil.which("riscv64-unknown-elf-gcc"), "-march=rv32ima_zicsr_zifencei", "-mabi=ilp32", "-nostdlib",
         "-static", "-O2", str(src), "-o", str(elf)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    image = load_elf(elf.read_bytes(), str(elf))
    gnu = _sections(elf)
    assert image.entry == image.symbols["_start"] == gnu[".text"][0]
    text = next(seg for seg in image.segments if seg.name == ".text")
    assert text.data.startswith(gnu[".text"][1])
    assert image.symbols["counter"] in range(image.segments[-1].addr, image.segments[-1].addr + 0x100)
    # Symbol choice among several at one address needs ELF symbol types we do not keep: compare
    # the listing without the <symbol> decorations.
    undecorated = [re.sub(r" <[^>]*>", "", line) for line in gnu_toolchain.objdump_body(elf)]
    assert [re.sub(r" <[^>]*>", "", line) for line in disassemble_image(image)] == undecorated
