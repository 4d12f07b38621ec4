"""Bad assembly gets one AssemblyError naming file:line, the problem and the offending text."""

from __future__ import annotations

import pytest

from virtlevels.errors import AssemblyError, VirtlevelsError
from virtlevels.machine.asm import assemble


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("nop\nfrobnicate a0", r"bad\.S:2: unknown instruction `frobnicate`: frobnicate a0"),
        ("add a0, q9, a1", r"bad\.S:1: expected a register, got `q9`: add a0, q9, a1"),
        ("addi a0, a0, 4096", r"bad\.S:1: immediate 4096 out of range -2048\.\.2047: addi a0, a0, 4096"),
        ("slli a0, a0, 32", r"bad\.S:1: shift amount 32 out of range 0\.\.31"),
        ("lui a0, 0x100000", r"bad\.S:1: immediate 1048576 out of range 0\.\.1048575"),
        ("csrwi mstatus, 32", r"bad\.S:1: immediate 32 out of range 0\.\.31"),
        ("beqz a0, far\n.space 4096\nfar: nop", r"bad\.S:1: branch target 0x80001004 out of range"),
        ("j far\n.space 0x100000\nfar: nop", r"bad\.S:1: jump target .* out of range"),
        ("j nowhere", r"bad\.S:1: undefined symbol `nowhere`: j nowhere"),
        ("x: nop\nx: nop", r"bad\.S:2: symbol `x` is already defined: x: nop"),
        ("add a0, a1", r"bad\.S:1: wrong number of operands for add \(expected `add rd, rs1, rs2`\)"),
        ("ecall a0", r"bad\.S:1: wrong number of operands for ecall \(expected no operands\)"),
        (".frob 1", r"bad\.S:1: unknown directive `\.frob`: \.frob 1"),
        ('.ascii "abc', r"bad\.S:1: unterminated string"),
        ("/* open\nnop", r"bad\.S:1: unterminated /\* comment"),
        ("beqz a0, 1b", r"bad\.S:1: backward reference 1b to a local label not yet defined"),
        ("bnez a0, 1f", r"bad\.S:1: undefined symbol local label 1: bnez a0, 1f"),
        (
            "lw a0, %pcrel_lo(x)(a0)\nx: nop",
            r"bad\.S:1: %pcrel_lo label at 0x80000004 does not mark an auipc",
        ),
        (".space n\n.equ n, 4", r"bad\.S:1: size must be a constant known here"),
        (".word 1 +", r"bad\.S:1: missing operand in expression: \.word 1 \+"),
        (".word 1 / 0", r"bad\.S:1: division by zero"),
        (".word %foo(1)", r"bad\.S:1: unknown relocation %foo"),
        (".equiv a, 1\n.equiv a, 2", r"bad\.S:2: symbol `a` is already defined"),
        (".equ a, b\n.equ b, a", r"bad\.S:1: symbol `.` is defined in terms of itself"),
        (".align 3, 0, 0, 9\n", r"bad\.S:1: expected `alignment\[, fill\[, max-skip\]\]`"),
        (".balign 3", r"bad\.S:1: alignment 3 is not a power of two"),
        ("fence rw, x", r"bad\.S:1: bad fence set 'x'"),
        ("lr.w a0, 4(a1)", r"bad\.S:1: lr\.w takes no offset, got `4\(a1\)`"),
        ("beq a0, a1, 3", r"bad\.S:1: target 0x3 is not 2-byte aligned"),
        (".byte 1\nnop", r"bad\.S:2: instruction at misaligned offset 1 in \.text"),
    ],
)
def test_error_names_file_line_and_text(source, message):
    with pytest.raises(AssemblyError, match=message) as info:
        assemble(source, "bad.S")
    assert isinstance(info.value, VirtlevelsError)


def test_origins_must_name_output_sections_and_not_overlap():
    with pytest.raises(AssemblyError, match=r"unknown output section"):
        assemble("nop", "o.S", origins={".stack": 0})
    with pytest.raises(AssemblyError, match=r"o\.S: \.text .* overlaps \.data"):
        assemble("nop\nnop\n.data\n.word 1", "o.S", origins={".data": 0x8000_0004})
