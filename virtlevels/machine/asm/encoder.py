"""Instruction operands to 32-bit words, driven by the rows of the encodings table.

Each row says which bits are fixed (``match``), its format and its operand syntax; this module
knows only where each operand field lives in each format (Unprivileged ISA 20191213, 2.2-2.3
"Base Instruction Formats" and "Immediate Encoding Variants") and how to range-check it.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from virtlevels.machine.isa import encodings as E
from virtlevels.machine.isa.encodings import Encoding

from .expr import Node

AQRL_SUFFIXES = {"": 0, ".aq": 2, ".rl": 1, ".aqrl": 3}

# Fence predecessor/successor sets, bit 3..0 = I, O, R, W (Unprivileged 2.7).
FENCE_BITS = {"i": 8, "o": 4, "r": 2, "w": 1}


@attrs.define(slots=True)
class Insn:
    """One machine instruction before its expressions are evaluated (pass 2)."""

    enc: Encoding
    regs: int  # rd/rs1/rs2 and other fixed-at-parse-time bits, already placed
    fields: tuple[tuple[str, Node], ...] = ()  # (field name, expression) still to evaluate


class InsnSet:
    """Encodings indexed by name, with the formats and syntax split once."""

    def __init__(self, rows: Iterable[Encoding]) -> None:
        self.rows: tuple[Encoding, ...] = tuple(rows)
        self.by_name: dict[str, Encoding] = {}
        self.syntax: dict[str, tuple[str, ...]] = {}
        for row in self.rows:
            self.by_name.setdefault(row.name, row)
            self.syntax[row.name] = tuple(t.strip() for t in row.syntax.split(",")) if row.syntax else ()


_DEFAULT: InsnSet | None = None


def default_insn_set() -> InsnSet:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = InsnSet(E.ENCODINGS)
    return _DEFAULT


def place_reg(field: str, reg: int) -> int:
    if field == "rd":
        return reg << 7
    if field == "rs1":
        return reg << 15
    return reg << 20  # rs2


class FieldError(ValueError):
    """An operand value does not fit its field; the message says the allowed range."""


def place(fmt: str, field: str, v: int, pc: int) -> int:
    """The bits of operand ``field`` with value ``v`` in an instruction of format ``fmt`` at ``pc``."""
    if field == "imm":
        if fmt == E.U:
            if not 0 <= v <= 0xFFFFF:
                raise FieldError(f"immediate {v} out of range 0..1048575")
            return v << 12
        if not -2048 <= v <= 2047:
            raise FieldError(f"immediate {v} out of range -2048..2047")
        if fmt == E.S:
            return ((v >> 5) & 0x7F) << 25 | (v & 0x1F) << 7
        return (v & 0xFFF) << 20
    if field == "target":
        off = (v - pc) & 0xFFFFFFFF
        off = off - (1 << 32) if off >> 31 else off
        if off & 1:
            raise FieldError(f"target {v:#x} is not 2-byte aligned")
        if fmt == E.B:
            if not -4096 <= off <= 4094:
                raise FieldError(f"branch target {v:#x} out of range (offset {off}, limit +-4 KiB)")
            return (
                ((off >> 12) & 1) << 31
                | ((off >> 5) & 0x3F) << 25
                | ((off >> 1) & 0xF) << 8
                | ((off >> 11) & 1) << 7
            )
        if not -(1 << 20) <= off < (1 << 20):
            raise FieldError(f"jump target {v:#x} out of range (offset {off}, limit +-1 MiB)")
        return (
            ((off >> 20) & 1) << 31
            | ((off >> 1) & 0x3FF) << 21
            | ((off >> 11) & 1) << 20
            | ((off >> 12) & 0xFF) << 12
        )
    if field == "shamt":
        if not 0 <= v <= 31:
            raise FieldError(f"shift amount {v} out of range 0..31")
        return v << 20
    if field == "csr":
        if not 0 <= v <= 0xFFF:
            raise FieldError(f"CSR number {v} out of range 0..4095")
        return v << 20
    if field == "uimm":
        if not 0 <= v <= 31:
            raise FieldError(f"immediate {v} out of range 0..31")
        return v << 15
    raise FieldError(f"no field {field!r} in format {fmt}")


def fence_set(text: str) -> int:
    """'iorw' style set -> 4-bit mask; '0' means the empty set."""
    t = text.strip().lower()
    if t == "0":
        return 0
    bits = 0
    for ch in t:
        bit = FENCE_BITS.get(ch)
        if bit is None or bits & bit:
            raise FieldError(f"bad fence set {text!r} (use letters from 'iorw' in that order)")
        bits |= bit
    if "".join(c for c in "iorw" if c in t) != t:
        raise FieldError(f"bad fence set {text!r} (use letters from 'iorw' in that order)")
    return bits
