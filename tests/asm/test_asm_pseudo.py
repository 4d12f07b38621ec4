"""Pseudo-instruction expansions. Expected words were produced by GNU as 2.40
(-march=rv32ima_zicsr_zifencei -mno-relax) for the same lines."""

from __future__ import annotations

import pytest
from asm_util import words

from virtlevels.machine.asm import assemble


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("li a0, 0xFFFFFFFF", [0xFFF00513]),
        ("li a0, 0x80000000", [0x80000537]),
        ("li a0, 0x12345678", [0x12345537, 0x67850513]),
        ("li a0, 0x800", [0x00001537, 0x80050513]),
        ("li a0, 0x7ff", [0x7FF00513]),
        ("li a0, -2048", [0x80000513]),
        ("li a0, 0xfffff800", [0x80000513]),
        ("li a1, 0x1000", [0x000015B7]),
        ("li a0, 0", [0x00000513]),
        ("mv a0, a1", [0x00058513]),
        ("not a0, a1", [0xFFF5C513]),
        ("neg a0, a1", [0x40B00533]),
        ("seqz a0, a1", [0x0015B513]),
        ("snez a0, a1", [0x00B03533]),
        ("sltz a0, a1", [0x0005A533]),
        ("sgtz a0, a1", [0x00B02533]),
        ("sgt a0, a1, a2", [0x00B62533]),
        ("zext.b a0, a1", [0x0FF5F513]),
        ("nop", [0x00000013]),
        ("ret", [0x00008067]),
        ("jr a0", [0x00050067]),
        ("jr 4(a0)", [0x00450067]),
        ("jalr a0", [0x000500E7]),
        ("jalr a1, a2", [0x000605E7]),
        ("jalr a1, a2, 8", [0x008605E7]),
        ("jalr a1, 4(a2)", [0x004605E7]),
        ("csrr a0, mstatus", [0x30002573]),
        ("csrw mtvec, a0", [0x30551073]),
        ("csrw mtvec, 5", [0x3052D073]),
        ("csrs mie, a1", [0x3045A073]),
        ("csrsi mie, 8", [0x30446073]),
        ("csrrw a0, mscratch, a1", [0x34059573]),
        ("csrrs a0, 0x7c0, zero", [0x7C002573]),
        ("rdcycle a0", [0xC0002573]),
        ("rdtimeh a1", [0xC81025F3]),
        ("rdinstret a2", [0xC0202673]),
        ("fence", [0x0FF0000F]),
        ("fence rw, w", [0x0310000F]),
        ("fence.i", [0x0000100F]),
        ("fence.tso", [0x8330000F]),
        ("sfence.vma", [0x12000073]),
        ("sfence.vma a0", [0x12050073]),
        ("sfence.vma a0, a1", [0x12B50073]),
        ("amoadd.w.aqrl a0, a1, (a2)", [0x06B6252F]),
        ("lr.w.aq a0, (a1)", [0x1405A52F]),
        ("sc.w.rl a0, a1, (a2)", [0x1AB6252F]),
        ("add a0, a1, 5", [0x00558513]),
        ("and a0, a1, 5", [0x0055F513]),
        ("unimp", [0xC0001073]),
        ("lw a0, (a1)", [0x0005A503]),
        ("wfi", [0x10500073]),
        ("mret", [0x30200073]),
        ("sret", [0x10200073]),
    ],
)
def test_expansion_matches_gnu_as(line, expected):
    assert words(line) == expected


def test_branch_pseudos_swap_or_zero_operands():
    src = (
        "top:\n beqz a0, top\n bgt a0, a1, top\n ble a0, a1, top\n bgtu a0, a1, top\n bleu a0, a1, top\n"
        " blez a0, top\n bgez a0, top\n bltz a0, top\n bgtz a0, top\n j top\n jal top\n"
    )
    assert words(src) == [
        0x00050063, 0xFEA5CEE3, 0xFEA5DCE3, 0xFEA5EAE3, 0xFEA5F8E3,
        0xFEA056E3, 0xFE0554E3, 0xFE0542E3, 0xFEA040E3, 0xFDDFF06F, 0xFD9FF0EF,
    ]  # fmt: skip


def test_la_call_tail_and_symbol_loads_are_pc_relative_pairs():
    image = assemble(
        "_start:\n la a0, d\n lw a1, d\n sw a1, d, t0\n call f\n tail f\nf: ret\n.data\nd: .word 7\n",
        base=0x8000_0000,
        origins={".data": 0x8000_113C},
    )
    text = image.segments[0].data
    got = [int.from_bytes(text[i : i + 4], "little") for i in range(0, len(text), 4)]
    # offsets 0x113c, 0x1134, 0x112c from each auipc to d: hi 1, lo 0x13c / 0x134 / 0x12c
    assert got[:6] == [0x00001517, 0x13C50513, 0x00001597, 0x1345A583, 0x00001297, 0x12B2A623]
    assert got[6:10] == [0x00000097, 0x010080E7, 0x00000317, 0x00830067]  # f is 16 and 8 bytes on


def test_li_with_a_label_builds_the_absolute_address():
    image = assemble("_start: li a0, target\n .space 0x10\ntarget: nop\n", base=0x8000_0000)
    text = image.segments[0].data
    lui, addi = (int.from_bytes(text[i : i + 4], "little") for i in (0, 4))
    assert (lui >> 12) << 12 == 0x80000000 and lui & 0xFFF == 0x537
    assert addi >> 20 == 0x18  # target = 0x80000018


def test_li_with_forward_constant_still_assembles_two_instructions():
    assert words("li a0, LATER\n.equ LATER, 5\n") == [0x00000537, 0x00550513]


def test_li_rejects_values_beyond_32_bits():
    from virtlevels.errors import AssemblyError

    with pytest.raises(AssemblyError, match=r"t\.S:1: li value 0x100000000 does not fit in 32 bits"):
        words("li a0, 0x100000000")


def test_call_with_link_register_uses_t1_like_gnu_as():
    assert words("call t2, f\nf: ret\n")[:2] == [0x00000317, 0x008303E7]
