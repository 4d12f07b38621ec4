"""RV32 instruction encodings: the one list decode, assembly and disassembly share.

Each row names an instruction, its format, the fixed bits (``match`` under ``mask``), the
operand syntax as GNU as writes it, its cost class and the extension it belongs to.
Semantics live in :mod:`virtlevels.machine.isa.semantics`; the table that joins both is
:mod:`virtlevels.machine.isa.table`.

Sources: RISC-V Unprivileged ISA 20191213, chapter 24 "RV32/64G Instruction Set Listings";
Privileged ISA 20211203, section 9.1 (trap-return, WFI, SFENCE.VMA); Zifencei, chapter 3.
"""

from __future__ import annotations

import attrs

# Instruction formats (Unprivileged spec, 2.2 "Base Instruction Formats").
R, I, S, B, U, J = "R", "I", "S", "B", "U", "J"
SHIFT = "SHIFT"  # I-type with a 5-bit shamt and funct7 in imm[11:5]
CSR = "CSR"  # csr, rs1
CSRI = "CSRI"  # csr, uimm5
AMO = "AMO"  # A extension: funct5, aq, rl
LR = "LR"  # lr.w: rs2 fixed to zero
FENCE = "FENCE"  # pred/succ sets
SYS = "SYS"  # fully fixed encodings (ecall, mret, ...)
SFENCE = "SFENCE"  # rs1, rs2, no rd
HLV = "HLV"  # H extension loads: rd, (rs1); rs2 selects the variant
HSV = "HSV"  # H extension stores: rs2, (rs1); rd is zero


@attrs.frozen
class Encoding:
    """One instruction's fixed bits and operand syntax."""

    name: str
    fmt: str
    match: int
    mask: int
    syntax: str  # operand order as GNU as writes it, e.g. "rd, rs1, imm"
    cls: str  # cost class: alu, shift, mul, div, load, store, branch, jump, csr, system, amo, fence
    ext: str  # I, M, A, Zicsr, Zifencei, priv


_MASKS = {
    R: 0xFE00707F,
    SHIFT: 0xFE00707F,
    I: 0x0000707F,
    S: 0x0000707F,
    B: 0x0000707F,
    U: 0x0000007F,
    J: 0x0000007F,
    CSR: 0x0000707F,
    CSRI: 0x0000707F,
    AMO: 0xF800707F,
    LR: 0xF9F0707F,
    FENCE: 0x0000707F,
    SYS: 0xFFFFFFFF,
    SFENCE: 0xFE007FFF,
    HLV: 0xFFF0707F,
    HSV: 0xFE007FFF,
}

_SYNTAX = {
    R: "rd, rs1, rs2",
    SHIFT: "rd, rs1, shamt",
    I: "rd, rs1, imm",
    S: "rs2, imm(rs1)",
    B: "rs1, rs2, target",
    U: "rd, imm",
    J: "rd, target",
    CSR: "rd, csr, rs1",
    CSRI: "rd, csr, uimm",
    AMO: "rd, rs2, (rs1)",
    LR: "rd, (rs1)",
    FENCE: "pred, succ",
    SYS: "",
    SFENCE: "rs1, rs2",
    HLV: "rd, (rs1)",
    HSV: "rs2, (rs1)",
}


def _enc(
    name: str,
    fmt: str,
    opcode: int,
    funct3: int = 0,
    funct7: int = 0,
    *,
    cls: str,
    ext: str = "I",
    fixed: int | None = None,
    syntax: str | None = None,
) -> Encoding:
    if fixed is not None:
        match = fixed
    else:
        match = opcode | (funct3 << 12) | (funct7 << 25)
    return Encoding(name, fmt, match, _MASKS[fmt], _SYNTAX[fmt] if syntax is None else syntax, cls, ext)


def _amo(name: str, funct5: int) -> Encoding:
    fmt = LR if name == "lr.w" else AMO
    return _enc(name, fmt, 0x2F, 2, funct5 << 2, cls="amo", ext="A")


ENCODINGS: tuple[Encoding, ...] = (
    # RV32I (Unprivileged chapter 2)
    _enc("lui", U, 0x37, cls="alu"),
    _enc("auipc", U, 0x17, cls="alu"),
    _enc("jal", J, 0x6F, cls="jump"),
    _enc("jalr", I, 0x67, 0, cls="jump", syntax="rd, imm(rs1)"),
    _enc("beq", B, 0x63, 0, cls="branch"),
    _enc("bne", B, 0x63, 1, cls="branch"),
    _enc("blt", B, 0x63, 4, cls="branch"),
    _enc("bge", B, 0x63, 5, cls="branch"),
    _enc("bltu", B, 0x63, 6, cls="branch"),
    _enc("bgeu", B, 0x63, 7, cls="branch"),
    _enc("lb", I, 0x03, 0, cls="load", syntax="rd, imm(rs1)"),
    _enc("lh", I, 0x03, 1, cls="load", syntax="rd, imm(rs1)"),
    _enc("lw", I, 0x03, 2, cls="load", syntax="rd, imm(rs1)"),
    _enc("lbu", I, 0x03, 4, cls="load", syntax="rd, imm(rs1)"),
    _enc("lhu", I, 0x03, 5, cls="load", syntax="rd, imm(rs1)"),
    _enc("sb", S, 0x23, 0, cls="store"),
    _enc("sh", S, 0x23, 1, cls="store"),
    _enc("sw", S, 0x23, 2, cls="store"),
    _enc("addi", I, 0x13, 0, cls="alu"),
    _enc("slti", I, 0x13, 2, cls="alu"),
    _enc("sltiu", I, 0x13, 3, cls="alu"),
    _enc("xori", I, 0x13, 4, cls="alu"),
    _enc("ori", I, 0x13, 6, cls="alu"),
    _enc("andi", I, 0x13, 7, cls="alu"),
    _enc("slli", SHIFT, 0x13, 1, 0x00, cls="shift"),
    _enc("srli", SHIFT, 0x13, 5, 0x00, cls="shift"),
    _enc("srai", SHIFT, 0x13, 5, 0x20, cls="shift"),
    _enc("add", R, 0x33, 0, 0x00, cls="alu"),
    _enc("sub", R, 0x33, 0, 0x20, cls="alu"),
    _enc("sll", R, 0x33, 1, 0x00, cls="shift"),
    _enc("slt", R, 0x33, 2, 0x00, cls="alu"),
    _enc("sltu", R, 0x33, 3, 0x00, cls="alu"),
    _enc("xor", R, 0x33, 4, 0x00, cls="alu"),
    _enc("srl", R, 0x33, 5, 0x00, cls="shift"),
    _enc("sra", R, 0x33, 5, 0x20, cls="shift"),
    _enc("or", R, 0x33, 6, 0x00, cls="alu"),
    _enc("and", R, 0x33, 7, 0x00, cls="alu"),
    _enc("fence", FENCE, 0x0F, 0, cls="fence"),
    _enc("ecall", SYS, 0x73, fixed=0x00000073, cls="system"),
    _enc("ebreak", SYS, 0x73, fixed=0x00100073, cls="system"),
    # Zifencei (chapter 3)
    _enc("fence.i", I, 0x0F, 1, cls="fence", ext="Zifencei", syntax=""),
    # Zicsr (chapter 9)
    _enc("csrrw", CSR, 0x73, 1, cls="csr", ext="Zicsr"),
    _enc("csrrs", CSR, 0x73, 2, cls="csr", ext="Zicsr"),
    _enc("csrrc", CSR, 0x73, 3, cls="csr", ext="Zicsr"),
    _enc("csrrwi", CSRI, 0x73, 5, cls="csr", ext="Zicsr"),
    _enc("csrrsi", CSRI, 0x73, 6, cls="csr", ext="Zicsr"),
    _enc("csrrci", CSRI, 0x73, 7, cls="csr", ext="Zicsr"),
    # M (chapter 7)
    _enc("mul", R, 0x33, 0, 0x01, cls="mul", ext="M"),
    _enc("mulh", R, 0x33, 1, 0x01, cls="mul", ext="M"),
    _enc("mulhsu", R, 0x33, 2, 0x01, cls="mul", ext="M"),
    _enc("mulhu", R, 0x33, 3, 0x01, cls="mul", ext="M"),
    _enc("div", R, 0x33, 4, 0x01, cls="div", ext="M"),
    _enc("divu", R, 0x33, 5, 0x01, cls="div", ext="M"),
    _enc("rem", R, 0x33, 6, 0x01, cls="div", ext="M"),
    _enc("remu", R, 0x33, 7, 0x01, cls="div", ext="M"),
    # A (chapter 8); aq/rl bits are operands, not part of the match
    _amo("lr.w", 0x02),
    _amo("sc.w", 0x03),
    _amo("amoswap.w", 0x01),
    _amo("amoadd.w", 0x00),
    _amo("amoxor.w", 0x04),
    _amo("amoand.w", 0x0C),
    _amo("amoor.w", 0x08),
    _amo("amomin.w", 0x10),
    _amo("amomax.w", 0x14),
    _amo("amominu.w", 0x18),
    _amo("amomaxu.w", 0x1C),
    # Privileged (Privileged spec 3.3 and 4.2.1)
    _enc("sret", SYS, 0x73, fixed=0x10200073, cls="system", ext="priv"),
    _enc("mret", SYS, 0x73, fixed=0x30200073, cls="system", ext="priv"),
    _enc("wfi", SYS, 0x73, fixed=0x10500073, cls="system", ext="priv"),
    _enc("sfence.vma", SFENCE, 0x73, 0, 0x09, cls="system", ext="priv"),
)

BY_NAME: dict[str, Encoding] = {e.name: e for e in ENCODINGS}


def _hlv(name: str, funct7: int, rs2: int) -> Encoding:
    fixed = 0x73 | 4 << 12 | rs2 << 20 | funct7 << 25  # rs2 selects the variant (Priv 8.3.1)
    return _enc(name, HLV, 0x73, 4, funct7, cls="system", ext="H", fixed=fixed)


# The H extension (Privileged spec 8.3 and the chapter 9 instruction listing). Kept apart from
# ENCODINGS: they exist only on a machine built with the hypervisor profile (table.HYPERVISOR_PROFILE),
# and the assembler and disassembler take them when given ``encodings=(*ENCODINGS, *H_ENCODINGS)``.
# HLV/HSV are in the "system" cost class: privileged instructions that always take the slow path
# (a full two-stage translation, no fast-path cache), and objdump gives them no address comment.
H_ENCODINGS: tuple[Encoding, ...] = (
    _hlv("hlv.b", 0x30, 0),
    _hlv("hlv.bu", 0x30, 1),
    _hlv("hlv.h", 0x32, 0),
    _hlv("hlv.hu", 0x32, 1),
    _hlv("hlvx.hu", 0x32, 3),
    _hlv("hlv.w", 0x34, 0),
    _hlv("hlvx.wu", 0x34, 3),
    _enc("hsv.b", HSV, 0x73, 4, 0x31, cls="system", ext="H"),
    _enc("hsv.h", HSV, 0x73, 4, 0x33, cls="system", ext="H"),
    _enc("hsv.w", HSV, 0x73, 4, 0x35, cls="system", ext="H"),
    _enc("hfence.vvma", SFENCE, 0x73, 0, 0x11, cls="system", ext="H"),
    _enc("hfence.gvma", SFENCE, 0x73, 0, 0x31, cls="system", ext="H"),
)

H_BY_NAME: dict[str, Encoding] = {e.name: e for e in H_ENCODINGS}
