"""Encoders for the few RV32I words the binary translator emits (Unpriv 2.2-2.5, 9.1).

The translator copies most guest words unchanged; what it writes itself is constants (``lui`` +
``addi``), re-targeted branches, direct jumps (``jal x0``) for chained exits, ``ecall`` for callouts
and ``addi x0, x0, 0`` (the canonical NOP, Unpriv 2.4).
"""

from __future__ import annotations

M32 = 0xFFFFFFFF
OP_LUI, OP_OPIMM, OP_JAL, OP_BRANCH = 0x37, 0x13, 0x6F, 0x63
ECALL = 0x00000073
NOP = 0x00000013  # addi x0, x0, 0
JAL_RANGE = 1 << 20  # jal reaches [-1 MiB, +1 MiB) (Unpriv 2.5)


def lui(rd: int, imm20: int) -> int:
    return ((imm20 & 0xFFFFF) << 12) | (rd & 31) << 7 | OP_LUI


def addi(rd: int, rs1: int, imm: int) -> int:
    if not -2048 <= imm < 2048:
        raise ValueError(f"addi immediate {imm} out of range")
    return ((imm & 0xFFF) << 20) | (rs1 & 31) << 15 | (rd & 31) << 7 | OP_OPIMM


def jal(rd: int, offset: int) -> int:
    """``jal rd, offset`` (offset in bytes from the jal itself, even, within +-1 MiB)."""
    if offset & 1 or not -JAL_RANGE <= offset < JAL_RANGE:
        raise ValueError(f"jal offset {offset} out of range")
    o = offset & 0x1FFFFF
    imm = ((o >> 20) & 1) << 31 | ((o >> 1) & 0x3FF) << 21 | ((o >> 11) & 1) << 20 | ((o >> 12) & 0xFF) << 12
    return imm | (rd & 31) << 7 | OP_JAL


def retarget_branch(word: int, offset: int) -> int:
    """The conditional branch ``word`` (same condition and registers) with a new byte offset."""
    if offset & 1 or not -4096 <= offset < 4096:
        raise ValueError(f"branch offset {offset} out of range")
    o = offset & 0x1FFF
    imm = ((o >> 12) & 1) << 31 | ((o >> 5) & 0x3F) << 25 | ((o >> 1) & 0xF) << 8 | ((o >> 11) & 1) << 7
    return (word & 0x01FFF07F) | imm


def load_constant(rd: int, value: int) -> list[int]:
    """Words that set ``rd`` to the 32-bit ``value``: ``addi`` when it fits, else ``lui`` (+ ``addi``)."""
    value &= M32
    signed = value - (1 << 32) if value & 0x80000000 else value
    if -2048 <= signed < 2048:
        return [addi(rd, 0, signed)]
    hi = ((value + 0x800) >> 12) & 0xFFFFF
    lo = value - ((hi << 12) & M32)
    lo = ((lo + 2048) & 0xFFF) - 2048
    out = [lui(rd, hi)]
    if lo:
        out.append(addi(rd, rd, lo))
    return out
