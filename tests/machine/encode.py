"""Build instruction words from encodings.py, for tests that must not depend on the assembler.

``enc("addi", rd=1, rs1=0, imm=-5)`` places each operand in the fields its format defines
(Unpriv 2.2-2.3); ``program(words)`` makes an Image at RAM_BASE, and ``machine_with(words)`` a
PhysicalMachine with it loaded.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from virtlevels.machine.csr import CSR_BY_NAME
from virtlevels.machine.image import Image, Segment
from virtlevels.machine.isa.encodings import BY_NAME
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.memmap import RAM_BASE


def enc(name: str, rd: int = 0, rs1: int = 0, rs2: int = 0, imm: int = 0, csr: int | str = 0,
        aq: int = 0, rl: int = 0) -> int:  # fmt: skip
    e = BY_NAME[name]
    w = e.match
    if isinstance(csr, str):
        csr = CSR_BY_NAME[csr]
    f = e.fmt
    if f == "R":
        w |= rd << 7 | rs1 << 15 | rs2 << 20
    elif f == "I":
        w |= rd << 7 | rs1 << 15 | (imm & 0xFFF) << 20
    elif f == "SHIFT":
        w |= rd << 7 | rs1 << 15 | (imm & 31) << 20
    elif f == "S":
        w |= (imm & 31) << 7 | rs1 << 15 | rs2 << 20 | ((imm >> 5) & 0x7F) << 25
    elif f == "B":
        w |= (((imm >> 11) & 1) << 7 | ((imm >> 1) & 15) << 8 | rs1 << 15 | rs2 << 20
              | ((imm >> 5) & 63) << 25 | ((imm >> 12) & 1) << 31)  # fmt: skip
    elif f == "U":
        w |= rd << 7 | (imm & 0xFFFFF000)
    elif f == "J":
        w |= (rd << 7 | ((imm >> 12) & 255) << 12 | ((imm >> 11) & 1) << 20 | ((imm >> 1) & 1023) << 21
              | ((imm >> 20) & 1) << 31)  # fmt: skip
    elif f == "CSR":
        w |= rd << 7 | rs1 << 15 | csr << 20
    elif f == "CSRI":
        w |= rd << 7 | (imm & 31) << 15 | csr << 20
    elif f == "AMO":
        w |= rd << 7 | rs1 << 15 | rs2 << 20 | rl << 25 | aq << 26
    elif f == "LR":
        w |= rd << 7 | rs1 << 15 | rl << 25 | aq << 26
    elif f == "FENCE":
        w |= (imm & 0xFF) << 20
    elif f == "SFENCE":
        w |= rs1 << 15 | rs2 << 20
    return w & 0xFFFFFFFF


def li(rd: int, value: int) -> list[int]:
    """lui + addi loading a 32-bit constant (what the ``li`` pseudo-instruction expands to)."""
    value &= 0xFFFFFFFF
    lo = ((value & 0xFFF) ^ 0x800) - 0x800
    hi = (value - lo) & 0xFFFFFFFF
    out = []
    if hi:
        out.append(enc("lui", rd=rd, imm=hi))
        if lo:
            out.append(enc("addi", rd=rd, rs1=rd, imm=lo))
    else:
        out.append(enc("addi", rd=rd, rs1=0, imm=lo))
    return out


def words_bytes(words: Iterable[int]) -> bytes:
    return b"".join(struct.pack("<I", w & 0xFFFFFFFF) for w in words)


def program(words: Iterable[int], base: int = RAM_BASE, symbols: dict[str, int] | None = None) -> Image:
    data = words_bytes(words)
    return Image((Segment(base, data, len(data), name=".text"),), base, dict(symbols or {}), "test")


def machine_with(words: Iterable[int], **kwargs: Any) -> PhysicalMachine:
    m = PhysicalMachine(**kwargs)
    m.load(program(words))
    return m


def flatten(*items: int | Iterable[int]) -> list[int]:
    out: list[int] = []
    for it in items:
        if isinstance(it, int):
            out.append(it)
        else:
            out.extend(it)
    return out


def image(
    code: dict[int, Iterable[int]], entry: int = RAM_BASE, symbols: dict[str, int] | None = None
) -> Image:
    """An Image with word lists at several addresses."""
    segs = tuple(Segment(addr, words_bytes(ws), len(words_bytes(ws))) for addr, ws in sorted(code.items()))
    return Image(segs, entry, dict(symbols or {}), "test")


def step(m: PhysicalMachine, n: int = 1) -> None:
    """Run ``n`` steps (instructions or exceptions)."""
    m.run(max_instructions=n)
