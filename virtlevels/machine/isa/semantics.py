"""What each instruction does: one semantic function per row of :mod:`encodings`.

A semantic function receives the decoded operands (:class:`Fields`) once, at decode time, and
returns an *op*: ``op(hart, x, pc) -> next_pc``, a closure specialised to those operands (decode
once, execute many times). ``x`` is ``hart.x``, passed in so that the op needs no attribute
load for register access. Registers hold unsigned 32-bit values; signed views are taken with
``v ^ 0x8000_0000`` comparisons or explicit sign conversion. A guest fault raises
:class:`~virtlevels.machine.trap.Trap`, which the engine turns into trap entry.

Functions marked ``pure`` only write ``rd``; with ``rd = x0`` they are HINTs (Unpriv 2.9) and
the table replaces them by a plain "next instruction" op, which is how writes to x0 are
discarded without ever storing into ``x[0]``. The others guard their ``rd`` write with ``if rd``.

References: RISC-V Unprivileged ISA 20191213 (chapters 2, 3, 7, 8, 9) and Privileged ISA
20211203 (3.3, 4.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from virtlevels.machine.csr import (
    HSTATUS_HU,
    HSTATUS_VTSR,
    HSTATUS_VTVM,
    HSTATUS_VTW,
    MSTATUS_TSR,
    MSTATUS_TVM,
    MSTATUS_TW,
)
from virtlevels.machine.trap import (
    BREAKPOINT,
    ECALL_FROM_M,
    ECALL_FROM_S,
    ECALL_FROM_U,
    ECALL_FROM_VS,
    ILLEGAL_INSTRUCTION,
    INSTRUCTION_ADDRESS_MISALIGNED,
    VIRTUAL_INSTRUCTION,
    Trap,
)

if TYPE_CHECKING:
    from virtlevels.machine.hart import Hart

M32 = 0xFFFFFFFF
SIGN = 0x80000000
U_MODE, S_MODE, M_MODE = 0, 1, 3

Op = Callable[["Hart", list[int], int], int]


@attrs.frozen
class Fields:
    """The operand fields of one instruction word, decoded per its format (Unpriv 2.2-2.3)."""

    word: int
    rd: int
    rs1: int
    rs2: int
    imm: int  # sign-extended (a Python int, may be negative); shamt / uimm / CSR number where relevant
    csr: int

    @classmethod
    def decode(cls, word: int, fmt: str) -> Fields:
        rd = (word >> 7) & 31
        rs1 = (word >> 15) & 31
        rs2 = (word >> 20) & 31
        csr = word >> 20
        imm = 0
        if fmt in ("I", "CSR"):
            imm = ((word >> 20) ^ 0x800) - 0x800
        elif fmt == "SHIFT":
            imm = rs2  # shamt[4:0]
        elif fmt == "CSRI":
            imm = rs1  # uimm[4:0]
        elif fmt == "S":
            imm = ((((word >> 25) << 5) | rd) ^ 0x800) - 0x800
        elif fmt == "B":
            raw = (
                ((word >> 31) << 12) | (((word >> 7) & 1) << 11)
                | (((word >> 25) & 63) << 5) | (((word >> 8) & 15) << 1)
            )  # fmt: skip
            imm = (raw ^ 0x1000) - 0x1000
        elif fmt == "U":
            imm = word & 0xFFFFF000
        elif fmt == "J":
            raw = (
                ((word >> 31) << 20) | (((word >> 12) & 255) << 12)
                | (((word >> 20) & 1) << 11) | (((word >> 21) & 1023) << 1)
            )  # fmt: skip
            imm = (raw ^ 0x100000) - 0x100000
        elif fmt == "FENCE":
            imm = (word >> 20) & 0xFF  # pred/succ
        return cls(word, rd, rs1, rs2, imm, csr)


SemanticFn = Callable[[Fields], Op]

SEMANTICS: dict[str, SemanticFn] = {}
PURE: set[str] = set()


def semantic(name: str, *, pure: bool = False) -> Callable[[SemanticFn], SemanticFn]:
    def register(fn: SemanticFn) -> SemanticFn:
        SEMANTICS[name] = fn
        if pure:
            PURE.add(name)
        return fn

    return register


def next_instruction(h: Hart, x: list[int], pc: int) -> int:
    """The op of a HINT (a pure instruction with rd = x0): it only advances the pc."""
    return pc + 4


def _signed(v: int) -> int:
    return v - (1 << 32) if v & SIGN else v


def illegal(word: int) -> Op:
    """The op of an encoding the table does not know: illegal instruction, tval = the bits."""

    def op(h: Hart, x: list[int], pc: int) -> int:
        raise Trap(ILLEGAL_INSTRUCTION, word)

    return op


def _misaligned_target(target_of: Callable[[int], int]) -> Op:
    # Unpriv 2.5: a taken jump or branch to a target that is not 4-byte aligned (no C extension)
    # raises instruction-address-misaligned on the jump itself; tval is the target.
    def op(h: Hart, x: list[int], pc: int) -> int:
        raise Trap(INSTRUCTION_ADDRESS_MISALIGNED, target_of(pc))

    return op


# -- RV32I: upper immediates and jumps (Unpriv 2.4, 2.5) ----------------------------------------
@semantic("lui", pure=True)
def lui(f: Fields) -> Op:
    rd, value = f.rd, f.imm & M32

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = value
        return pc + 4

    return op


@semantic("auipc", pure=True)
def auipc(f: Fields) -> Op:
    rd, imm = f.rd, f.imm

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = (pc + imm) & M32
        return pc + 4

    return op


@semantic("jal")
def jal(f: Fields) -> Op:
    rd, imm = f.rd, f.imm
    if imm & 3:  # pc is always 4-aligned, so the target is misaligned exactly when imm is
        return _misaligned_target(lambda pc: (pc + imm) & M32)

    def op(h: Hart, x: list[int], pc: int) -> int:
        if rd:
            x[rd] = (pc + 4) & M32
        return (pc + imm) & M32

    return op


@semantic("jalr")
def jalr(f: Fields) -> Op:
    rd, rs1, imm = f.rd, f.rs1, f.imm

    def op(h: Hart, x: list[int], pc: int) -> int:
        target = (x[rs1] + imm) & 0xFFFFFFFE  # Unpriv 2.5: the low bit is cleared
        if target & 2:
            raise Trap(INSTRUCTION_ADDRESS_MISALIGNED, target)
        if rd:  # written after reading rs1: rd may equal rs1
            x[rd] = (pc + 4) & M32
        return target

    return op


# -- conditional branches (Unpriv 2.5) ---------------------------------------------------------
def _branch(taken: Callable[[int, int], bool]) -> SemanticFn:
    def build(f: Fields) -> Op:
        rs1, rs2, imm = f.rs1, f.rs2, f.imm
        if imm & 3:
            mis = _misaligned_target(lambda pc: (pc + imm) & M32)

            def op_mis(h: Hart, x: list[int], pc: int) -> int:
                return mis(h, x, pc) if taken(x[rs1], x[rs2]) else pc + 4

            return op_mis

        def op(h: Hart, x: list[int], pc: int) -> int:
            if taken(x[rs1], x[rs2]):
                return (pc + imm) & M32
            return pc + 4

        return op

    return build


@semantic("beq")
def beq(f: Fields) -> Op:
    rs1, rs2, imm = f.rs1, f.rs2, f.imm
    if imm & 3:
        return _branch(lambda a, b: a == b)(f)

    def op(h: Hart, x: list[int], pc: int) -> int:
        return (pc + imm) & M32 if x[rs1] == x[rs2] else pc + 4

    return op


@semantic("bne")
def bne(f: Fields) -> Op:
    rs1, rs2, imm = f.rs1, f.rs2, f.imm
    if imm & 3:
        return _branch(lambda a, b: a != b)(f)

    def op(h: Hart, x: list[int], pc: int) -> int:
        return (pc + imm) & M32 if x[rs1] != x[rs2] else pc + 4

    return op


@semantic("blt")
def blt(f: Fields) -> Op:
    rs1, rs2, imm = f.rs1, f.rs2, f.imm
    if imm & 3:
        return _branch(lambda a, b: (a ^ SIGN) < (b ^ SIGN))(f)

    def op(h: Hart, x: list[int], pc: int) -> int:  # signed: flip the sign bit, compare unsigned
        return (pc + imm) & M32 if (x[rs1] ^ SIGN) < (x[rs2] ^ SIGN) else pc + 4

    return op


@semantic("bge")
def bge(f: Fields) -> Op:
    rs1, rs2, imm = f.rs1, f.rs2, f.imm
    if imm & 3:
        return _branch(lambda a, b: (a ^ SIGN) >= (b ^ SIGN))(f)

    def op(h: Hart, x: list[int], pc: int) -> int:
        return (pc + imm) & M32 if (x[rs1] ^ SIGN) >= (x[rs2] ^ SIGN) else pc + 4

    return op


@semantic("bltu")
def bltu(f: Fields) -> Op:
    rs1, rs2, imm = f.rs1, f.rs2, f.imm
    if imm & 3:
        return _branch(lambda a, b: a < b)(f)

    def op(h: Hart, x: list[int], pc: int) -> int:
        return (pc + imm) & M32 if x[rs1] < x[rs2] else pc + 4

    return op


@semantic("bgeu")
def bgeu(f: Fields) -> Op:
    rs1, rs2, imm = f.rs1, f.rs2, f.imm
    if imm & 3:
        return _branch(lambda a, b: a >= b)(f)

    def op(h: Hart, x: list[int], pc: int) -> int:
        return (pc + imm) & M32 if x[rs1] >= x[rs2] else pc + 4

    return op


# -- loads and stores (Unpriv 2.6) ---------------------------------------------------------------
def _load(width: int, signed: bool) -> SemanticFn:
    def build(f: Fields) -> Op:
        rd, rs1, imm = f.rd, f.rs1, f.imm

        def op(h: Hart, x: list[int], pc: int) -> int:
            v = h.load((x[rs1] + imm) & M32, width, signed)  # loads to x0 still access memory
            if rd:
                x[rd] = v
            return pc + 4

        return op

    return build


@semantic("lw")
def lw(f: Fields) -> Op:
    # The commonest load, with the hart's fast path inlined (same behaviour as Hart.load).
    rd, rs1, imm = f.rd, f.rs1, f.imm

    def op(h: Hart, x: list[int], pc: int) -> int:
        a = (x[rs1] + imm) & M32
        page = h.rcache.get(a >> 12)
        if page is None or a & 3:
            v = h.load_slow(a, 4, False)
        else:
            v = page[2][(a & 0xFFF) >> 2]
        if rd:
            x[rd] = v
        return pc + 4

    return op


semantic("lb")(_load(1, True))
semantic("lh")(_load(2, True))
semantic("lbu")(_load(1, False))
semantic("lhu")(_load(2, False))


def _store(width: int) -> SemanticFn:
    def build(f: Fields) -> Op:
        rs1, rs2, imm = f.rs1, f.rs2, f.imm

        def op(h: Hart, x: list[int], pc: int) -> int:
            h.store((x[rs1] + imm) & M32, width, x[rs2])
            return pc + 4

        return op

    return build


@semantic("sw")
def sw(f: Fields) -> Op:
    rs1, rs2, imm = f.rs1, f.rs2, f.imm

    def op(h: Hart, x: list[int], pc: int) -> int:
        a = (x[rs1] + imm) & M32
        page = h.wcache.get(a >> 12)
        if page is None or a & 3:
            h.store_slow(a, 4, x[rs2])
        else:
            page[2][(a & 0xFFF) >> 2] = x[rs2]
        return pc + 4

    return op


semantic("sb")(_store(1))
semantic("sh")(_store(2))


# -- register-immediate and register-register ALU (Unpriv 2.4, 7.1) ---------------------------
# Each is "x[rd] = f(x[rs1], operand)". The operand is the sign-extended immediate reduced to 32
# bits (Unpriv 2.4: sltiu compares it unsigned after sign extension), the shift amount, or x[rs2].
def _imm_op(fn: Callable[[int, int], int]) -> SemanticFn:
    """Generic builder, used by plugins and tests; the hot instructions below are written out."""

    def build(f: Fields) -> Op:
        rd, rs1, imm = f.rd, f.rs1, f.imm & M32

        def op(h: Hart, x: list[int], pc: int) -> int:
            x[rd] = fn(x[rs1], imm)
            return pc + 4

        return op

    return build


@semantic("addi", pure=True)
def addi(f: Fields) -> Op:
    rd, rs1, imm = f.rd, f.rs1, f.imm

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = (x[rs1] + imm) & M32
        return pc + 4

    return op


@semantic("slti", pure=True)
def slti(f: Fields) -> Op:
    rd, rs1, imm = f.rd, f.rs1, (f.imm & M32) ^ SIGN

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = 1 if (x[rs1] ^ SIGN) < imm else 0
        return pc + 4

    return op


@semantic("sltiu", pure=True)
def sltiu(f: Fields) -> Op:
    rd, rs1, imm = f.rd, f.rs1, f.imm & M32

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = 1 if x[rs1] < imm else 0
        return pc + 4

    return op


@semantic("xori", pure=True)
def xori(f: Fields) -> Op:
    rd, rs1, imm = f.rd, f.rs1, f.imm & M32

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = x[rs1] ^ imm
        return pc + 4

    return op


@semantic("ori", pure=True)
def ori(f: Fields) -> Op:
    rd, rs1, imm = f.rd, f.rs1, f.imm & M32

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = x[rs1] | imm
        return pc + 4

    return op


@semantic("andi", pure=True)
def andi(f: Fields) -> Op:
    rd, rs1, imm = f.rd, f.rs1, f.imm & M32

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = x[rs1] & imm
        return pc + 4

    return op


@semantic("slli", pure=True)
def slli(f: Fields) -> Op:
    rd, rs1, sh = f.rd, f.rs1, f.imm

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = (x[rs1] << sh) & M32
        return pc + 4

    return op


@semantic("srli", pure=True)
def srli(f: Fields) -> Op:
    rd, rs1, sh = f.rd, f.rs1, f.imm

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = x[rs1] >> sh
        return pc + 4

    return op


@semantic("srai", pure=True)
def srai(f: Fields) -> Op:
    rd, rs1, sh = f.rd, f.rs1, f.imm

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = (((x[rs1] ^ SIGN) - SIGN) >> sh) & M32  # arithmetic: shift the signed view
        return pc + 4

    return op


def _reg_op(fn: Callable[[int, int], int]) -> SemanticFn:
    def build(f: Fields) -> Op:
        rd, rs1, rs2 = f.rd, f.rs1, f.rs2

        def op(h: Hart, x: list[int], pc: int) -> int:
            x[rd] = fn(x[rs1], x[rs2])
            return pc + 4

        return op

    return build


@semantic("add", pure=True)
def add(f: Fields) -> Op:
    rd, rs1, rs2 = f.rd, f.rs1, f.rs2

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = (x[rs1] + x[rs2]) & M32
        return pc + 4

    return op


@semantic("sub", pure=True)
def sub(f: Fields) -> Op:
    rd, rs1, rs2 = f.rd, f.rs1, f.rs2

    def op(h: Hart, x: list[int], pc: int) -> int:
        x[rd] = (x[rs1] - x[rs2]) & M32
        return pc + 4

    return op


# The rest of the register-register ops are less frequent: one line each, through _reg_op.
for _name, _fn in {
    "sll": lambda a, b: (a << (b & 31)) & M32,  # Unpriv 2.4: the shift amount is rs2[4:0]
    "slt": lambda a, b: 1 if (a ^ SIGN) < (b ^ SIGN) else 0,
    "sltu": lambda a, b: 1 if a < b else 0,
    "xor": lambda a, b: a ^ b,
    "srl": lambda a, b: a >> (b & 31),
    "sra": lambda a, b: (((a ^ SIGN) - SIGN) >> (b & 31)) & M32,
    "or": lambda a, b: a | b,
    "and": lambda a, b: a & b,
    # M extension (Unpriv 7.1): the low or high 32 bits of the product of signed/unsigned views.
    "mul": lambda a, b: (a * b) & M32,
    "mulh": lambda a, b: ((_signed(a) * _signed(b)) >> 32) & M32,
    "mulhsu": lambda a, b: ((_signed(a) * b) >> 32) & M32,
    "mulhu": lambda a, b: (a * b) >> 32,
}.items():
    semantic(_name, pure=True)(_reg_op(_fn))


# -- M extension: division (Unpriv 7.2, table 7.1) --------------------------------------------
def div_signed(a: int, b: int) -> int:
    if b == 0:
        return M32  # division by zero: quotient is all ones (-1)
    sa, sb = _signed(a), _signed(b)
    if sa == -SIGN and sb == -1:
        return SIGN  # overflow: the quotient is the dividend
    q = abs(sa) // abs(sb)
    return (-q if (sa < 0) != (sb < 0) else q) & M32  # rounds toward zero


def rem_signed(a: int, b: int) -> int:
    if b == 0:
        return a  # division by zero: the remainder is the dividend
    sa, sb = _signed(a), _signed(b)
    if sa == -SIGN and sb == -1:
        return 0  # overflow: remainder 0
    r = abs(sa) % abs(sb)
    return (-r if sa < 0 else r) & M32  # the sign of the remainder is the dividend's


def div_unsigned(a: int, b: int) -> int:
    return a // b if b else M32


def rem_unsigned(a: int, b: int) -> int:
    return a % b if b else a


def _divider(fn: Callable[[int, int], int]) -> SemanticFn:
    def build(f: Fields) -> Op:
        rd, rs1, rs2 = f.rd, f.rs1, f.rs2

        def op(h: Hart, x: list[int], pc: int) -> int:
            x[rd] = fn(x[rs1], x[rs2])
            return pc + 4

        return op

    return build


semantic("div", pure=True)(_divider(div_signed))
semantic("divu", pure=True)(_divider(div_unsigned))
semantic("rem", pure=True)(_divider(rem_signed))
semantic("remu", pure=True)(_divider(rem_unsigned))


# -- A extension (Unpriv 8.2, 8.4) --------------------------------------------------------------
@semantic("lr.w")
def lr_w(f: Fields) -> Op:
    rd, rs1 = f.rd, f.rs1

    def op(h: Hart, x: list[int], pc: int) -> int:
        v = h.load_reserved(x[rs1])
        if rd:
            x[rd] = v
        return pc + 4

    return op


@semantic("sc.w")
def sc_w(f: Fields) -> Op:
    rd, rs1, rs2 = f.rd, f.rs1, f.rs2

    def op(h: Hart, x: list[int], pc: int) -> int:
        result = h.store_conditional(x[rs1], x[rs2])  # 0 on success, 1 on failure (Unpriv 8.2)
        if rd:
            x[rd] = result
        return pc + 4

    return op


AMO_FUNCTIONS: dict[str, Callable[[int, int], int]] = {
    "amoswap.w": lambda old, src: src,
    "amoadd.w": lambda old, src: (old + src) & M32,
    "amoxor.w": lambda old, src: old ^ src,
    "amoand.w": lambda old, src: old & src,
    "amoor.w": lambda old, src: old | src,
    "amomin.w": lambda old, src: old if (old ^ SIGN) < (src ^ SIGN) else src,
    "amomax.w": lambda old, src: old if (old ^ SIGN) > (src ^ SIGN) else src,
    "amominu.w": lambda old, src: old if old < src else src,
    "amomaxu.w": lambda old, src: old if old > src else src,
}


def _amo(fn: Callable[[int, int], int]) -> SemanticFn:
    def build(f: Fields) -> Op:
        rd, rs1, rs2 = f.rd, f.rs1, f.rs2

        def op(h: Hart, x: list[int], pc: int) -> int:
            old = h.amo(x[rs1], fn, x[rs2])  # rd gets the old value; rs2 read before rd is written
            if rd:
                x[rd] = old
            return pc + 4

        return op

    return build


for _name, _fn in AMO_FUNCTIONS.items():
    semantic(_name)(_amo(_fn))


# -- fences (Unpriv 2.7, chapter 3) -------------------------------------------------------------
@semantic("fence")
def fence(f: Fields) -> Op:
    return next_instruction  # one hart runs at a time and memory is coherent: ordering is free


@semantic("fence.i")
def fence_i(f: Fields) -> Op:
    def op(h: Hart, x: list[int], pc: int) -> int:
        h.fence_i()
        return pc + 4

    return op


# -- Zicsr (Unpriv 9.1) --------------------------------------------------------------------------
def _csr_op(kind: str, immediate: bool) -> SemanticFn:
    def build(f: Fields) -> Op:
        rd, src_reg, csr_num, word = f.rd, f.rs1, f.csr, f.word
        uimm = f.imm if immediate else 0
        # Which side effects happen (Unpriv 9.1, table 9.1): csrrw with rd=x0 does not read;
        # csrrs/csrrc with rs1=x0 (or uimm=0) do not write.
        reads = kind != "w" or rd != 0
        writes = kind == "w" or src_reg != 0

        def op(h: Hart, x: list[int], pc: int) -> int:
            num = h.csr_access(csr_num, writes, word)  # with V=1, s* CSRs are the vs* ones
            csr = h.csr
            old = csr.read(num) if reads else 0
            if writes:
                src = uimm if immediate else x[src_reg]
                if kind == "w":
                    csr.write(num, src)
                elif kind == "s":
                    csr.write(num, old | src)
                else:
                    csr.write(num, old & ~src)
            if rd:
                x[rd] = old
            return pc + 4

        return op

    return build


semantic("csrrw")(_csr_op("w", False))
semantic("csrrs")(_csr_op("s", False))
semantic("csrrc")(_csr_op("c", False))
semantic("csrrwi")(_csr_op("w", True))
semantic("csrrsi")(_csr_op("s", True))
semantic("csrrci")(_csr_op("c", True))


# -- environment calls and privileged instructions (Unpriv 2.8; Priv 3.3, 4.2.1) ---------------
_ECALL_CAUSE = {U_MODE: ECALL_FROM_U, S_MODE: ECALL_FROM_S, M_MODE: ECALL_FROM_M}


@semantic("ecall")
def ecall(f: Fields) -> Op:
    def op(h: Hart, x: list[int], pc: int) -> int:
        if h.virt and h.priv == S_MODE:
            raise Trap(ECALL_FROM_VS, 0)  # Priv 8.6.1: cause 10 (VU-mode uses 8, as U-mode)
        raise Trap(_ECALL_CAUSE[h.priv], 0)

    return op


@semantic("ebreak")
def ebreak(f: Fields) -> Op:
    def op(h: Hart, x: list[int], pc: int) -> int:
        raise Trap(BREAKPOINT, pc)  # Priv 3.1.16: tval is the address of the breakpoint

    return op


@semantic("mret")
def mret(f: Fields) -> Op:
    word = f.word

    def op(h: Hart, x: list[int], pc: int) -> int:
        if h.priv < M_MODE:
            raise Trap(ILLEGAL_INSTRUCTION, word)
        return h.mret()

    return op


@semantic("sret")
def sret(f: Fields) -> Op:
    word = f.word

    def op(h: Hart, x: list[int], pc: int) -> int:
        if h.virt:
            # Priv 8.6.1: in VU-mode, or in VS-mode with hstatus.VTSR=1: virtual instruction.
            if h.priv == U_MODE or h.csr.hstatus & HSTATUS_VTSR:
                raise Trap(VIRTUAL_INSTRUCTION, word)
            return h.sret()
        # Priv 3.1.6.5: TSR=1 makes SRET in S-mode illegal; it is always illegal in U-mode.
        if h.priv == U_MODE or (h.priv == S_MODE and h.csr.mstatus & MSTATUS_TSR):
            raise Trap(ILLEGAL_INSTRUCTION, word)
        return h.sret()

    return op


@semantic("wfi")
def wfi(f: Fields) -> Op:
    word = f.word

    def op(h: Hart, x: list[int], pc: int) -> int:
        # Priv 3.1.6.5: with TW=1, WFI below M is illegal (our time limit is zero); in U-mode it is
        # illegal whenever S-mode exists (Priv 3.3.3).
        if h.virt and h.priv < M_MODE:
            # Priv 8.6.1: mstatus.TW=1 still makes it illegal; else VU-mode, or VS-mode with
            # hstatus.VTW=1, gets a virtual-instruction exception.
            if h.csr.mstatus & MSTATUS_TW:
                raise Trap(ILLEGAL_INSTRUCTION, word)
            if h.priv == U_MODE or h.csr.hstatus & HSTATUS_VTW:
                raise Trap(VIRTUAL_INSTRUCTION, word)
        elif h.priv == U_MODE or (h.priv == S_MODE and h.csr.mstatus & MSTATUS_TW):
            raise Trap(ILLEGAL_INSTRUCTION, word)
        if not h.interrupt_waiting():
            h.wfi = True  # the machine skips this hart until an interrupt is pending
        return pc + 4

    return op


@semantic("sfence.vma")
def sfence_vma(f: Fields) -> Op:
    rs1, rs2, word = f.rs1, f.rs2, f.word

    def op(h: Hart, x: list[int], pc: int) -> int:
        if h.virt and (h.priv == U_MODE or h.csr.hstatus & HSTATUS_VTVM):
            raise Trap(VIRTUAL_INSTRUCTION, word)  # Priv 8.6.1: VU-mode, or VS-mode with VTVM=1
        # Priv 3.1.6.5: TVM=1 makes SFENCE.VMA in S-mode illegal; it is always illegal in U-mode.
        if not h.virt and (h.priv == U_MODE or (h.priv == S_MODE and h.csr.mstatus & MSTATUS_TVM)):
            raise Trap(ILLEGAL_INSTRUCTION, word)
        h.sfence_vma(x[rs1] if rs1 else None, x[rs2] & 0x1FF if rs2 else None)
        return pc + 4

    return op


# -- H extension instructions (Priv 8.3) ----------------------------------------------------------
def _hyp_allowed(h: Hart, word: int) -> None:
    """Priv 8.3.1 / 8.6.1: from VS or VU mode a virtual-instruction exception; from U-mode
    illegal unless hstatus.HU=1 (HLV/HLVX/HSV only; the caller checks the HFENCEs)."""
    if h.virt:
        raise Trap(VIRTUAL_INSTRUCTION, word)
    if h.priv == U_MODE and not h.csr.hstatus & HSTATUS_HU:
        raise Trap(ILLEGAL_INSTRUCTION, word)


def _hlv(width: int, signed: bool, hlvx: bool = False) -> SemanticFn:
    def build(f: Fields) -> Op:
        rd, rs1, word = f.rd, f.rs1, f.word

        def op(h: Hart, x: list[int], pc: int) -> int:
            _hyp_allowed(h, word)
            v = h.hyp_load(x[rs1], width, signed, hlvx)
            if rd:
                x[rd] = v
            return pc + 4

        return op

    return build


def _hsv(width: int) -> SemanticFn:
    def build(f: Fields) -> Op:
        rs1, rs2, word = f.rs1, f.rs2, f.word

        def op(h: Hart, x: list[int], pc: int) -> int:
            _hyp_allowed(h, word)
            h.hyp_store(x[rs1], width, x[rs2])
            return pc + 4

        return op

    return build


semantic("hlv.b")(_hlv(1, True))
semantic("hlv.bu")(_hlv(1, False))
semantic("hlv.h")(_hlv(2, True))
semantic("hlv.hu")(_hlv(2, False))
semantic("hlv.w")(_hlv(4, False))
semantic("hlvx.hu")(_hlv(2, False, True))
semantic("hlvx.wu")(_hlv(4, False, True))
semantic("hsv.b")(_hsv(1))
semantic("hsv.h")(_hsv(2))
semantic("hsv.w")(_hsv(4))


def _hfence_allowed(h: Hart, word: int, gvma: bool) -> None:
    # Priv 8.3.2 / 8.6.1: virtual instruction from VS/VU, illegal from U (HU does not apply);
    # HFENCE.GVMA in HS-mode is illegal when mstatus.TVM=1.
    if h.virt:
        raise Trap(VIRTUAL_INSTRUCTION, word)
    if h.priv == U_MODE or (gvma and h.priv == S_MODE and h.csr.mstatus & MSTATUS_TVM):
        raise Trap(ILLEGAL_INSTRUCTION, word)


@semantic("hfence.vvma")
def hfence_vvma(f: Fields) -> Op:
    rs1, rs2, word = f.rs1, f.rs2, f.word

    def op(h: Hart, x: list[int], pc: int) -> int:
        _hfence_allowed(h, word, False)
        h.hfence_vvma(x[rs1] if rs1 else None, x[rs2] & 0x1FF if rs2 else None)
        return pc + 4

    return op


@semantic("hfence.gvma")
def hfence_gvma(f: Fields) -> Op:
    rs1, rs2, word = f.rs1, f.rs2, f.word

    def op(h: Hart, x: list[int], pc: int) -> int:
        _hfence_allowed(h, word, True)
        # rs1 holds the guest physical address shifted right by 2 (Priv 8.3.2); rs2 the VMID.
        h.hfence_gvma((x[rs1] << 2) if rs1 else None, x[rs2] & 0x7F if rs2 else None)
        return pc + 4

    return op
