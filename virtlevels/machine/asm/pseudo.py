"""Pseudo-instructions: the expansions of Unprivileged ISA 20191213 chapter 25, tables 25.2-25.3
("RISC-V Assembly Programmer's Handbook"), as GNU as performs them.

Each handler gets the operand strings and returns the base instructions, or None when the
operands are the real instruction's own form (``jal rd, label``, ``jalr rd, 0(rs)``, ``fence rw, w``),
which then goes through the table-driven parser.
"""

from __future__ import annotations

from collections.abc import Callable

from . import expr as X
from .encoder import Insn
from .names import CSRS
from .program import Assembler

RA, T1 = 1, 6
Handler = Callable[[Assembler, list[str]], "list[Insn] | None"]

PSEUDOS: dict[str, Handler] = {}


def _pseudo(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for n in names:
            PSEUDOS[n] = fn
        return fn

    return register


def _need(a: Assembler, ops: list[str], n: int, form: str) -> None:
    if len(ops) != n:
        raise a.error(f"wrong number of operands (expected `{form}`)")


def _pcrel_pair(
    a: Assembler,
    rd: int,
    target: X.Node,
    second: str,
    *,
    dest: int,
    base: int | None = None,
    store_src: int | None = None,
) -> list[Insn]:
    """auipc + a 12-bit-offset instruction reaching ``target`` (Unprivileged 2.5, "auipc")."""
    hi = a.make("auipc", rd=rd, imm=("%", "pcrel_hi", target))
    lo: X.Node = ("plo", target, -4)  # relative to the auipc, one instruction back
    if store_src is not None:
        return [hi, a.make(second, rs1=rd, rs2=store_src, imm=lo)]
    return [hi, a.make(second, rd=dest, rs1=rd if base is None else base, imm=lo)]


def li_expansion(a: Assembler, rd: int, value: int) -> list[Insn]:
    """lui and/or addi building a 32-bit constant, the way GNU as's load_const splits it."""
    v = value & 0xFFFFFFFF
    lower = X.lo12(v)
    upper = (v - lower) & 0xFFFFFFFF
    out: list[Insn] = []
    if upper:
        out.append(a.make("lui", rd=rd, imm=("n", upper >> 12)))
    if lower or not upper:
        out.append(a.make("addi", rd=rd, rs1=rd if upper else 0, imm=("n", lower)))
    return out


@_pseudo("li")
def _li(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 2, "li rd, imm")
    rd = a.reg(ops[0])
    node = a.expr(ops[1])
    try:
        value, sect = a.value_now(node)
    except X.ExprError:
        sect, value = "?", 0
    if sect is None:
        if not -(1 << 31) <= value < (1 << 32):
            raise a.error(f"li value {value:#x} does not fit in 32 bits")
        return li_expansion(a, rd, value)
    # Not known yet (a label or a later .equ): always lui+addi of the absolute value.
    return [a.make("lui", rd=rd, imm=("%", "hi", node)), a.make("addi", rd=rd, rs1=rd, imm=("%", "lo", node))]


@_pseudo("la", "lla")
def _la(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 2, "la rd, symbol")
    rd = a.reg(ops[0])
    return _pcrel_pair(a, rd, a.expr(ops[1]), "addi", dest=rd)


@_pseudo("lb", "lh", "lw", "lbu", "lhu")
def _load(a: Assembler, ops: list[str]) -> list[Insn] | None:
    if len(ops) != 2 or a.mem(ops[1]) is not None:
        return None
    rd = a.reg(ops[0])
    return _pcrel_pair(a, rd, a.expr(ops[1]), a.stmt.mnemonic.lower(), dest=rd)


@_pseudo("sb", "sh", "sw")
def _store(a: Assembler, ops: list[str]) -> list[Insn] | None:
    if len(ops) != 3:
        return None
    src, tmp = a.reg(ops[0]), a.reg(ops[2])
    return _pcrel_pair(a, tmp, a.expr(ops[1]), a.stmt.mnemonic.lower(), dest=0, store_src=src)


@_pseudo("nop")
def _nop(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 0, "nop")
    return [a.make("addi", imm=("n", 0))]


def _two_regs(a: Assembler, ops: list[str], form: str) -> tuple[int, int]:
    _need(a, ops, 2, form)
    return a.reg(ops[0]), a.reg(ops[1])


@_pseudo("mv")
def _mv(a: Assembler, ops: list[str]) -> list[Insn]:
    rd, rs = _two_regs(a, ops, "mv rd, rs")
    return [a.make("addi", rd=rd, rs1=rs, imm=("n", 0))]


@_pseudo("not")
def _not(a: Assembler, ops: list[str]) -> list[Insn]:
    rd, rs = _two_regs(a, ops, "not rd, rs")
    return [a.make("xori", rd=rd, rs1=rs, imm=("n", -1))]


@_pseudo("neg")
def _neg(a: Assembler, ops: list[str]) -> list[Insn]:
    rd, rs = _two_regs(a, ops, "neg rd, rs")
    return [a.make("sub", rd=rd, rs2=rs)]


@_pseudo("seqz")
def _seqz(a: Assembler, ops: list[str]) -> list[Insn]:
    rd, rs = _two_regs(a, ops, "seqz rd, rs")
    return [a.make("sltiu", rd=rd, rs1=rs, imm=("n", 1))]


@_pseudo("snez")
def _snez(a: Assembler, ops: list[str]) -> list[Insn]:
    rd, rs = _two_regs(a, ops, "snez rd, rs")
    return [a.make("sltu", rd=rd, rs2=rs)]


@_pseudo("sltz")
def _sltz(a: Assembler, ops: list[str]) -> list[Insn]:
    rd, rs = _two_regs(a, ops, "sltz rd, rs")
    return [a.make("slt", rd=rd, rs1=rs)]


@_pseudo("sgtz")
def _sgtz(a: Assembler, ops: list[str]) -> list[Insn]:
    rd, rs = _two_regs(a, ops, "sgtz rd, rs")
    return [a.make("slt", rd=rd, rs2=rs)]


@_pseudo("sgt", "sgtu")
def _sgt(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 3, "sgt rd, rs, rt")
    base = "slt" if a.stmt.mnemonic.lower() == "sgt" else "sltu"
    return [a.make(base, rd=a.reg(ops[0]), rs1=a.reg(ops[2]), rs2=a.reg(ops[1]))]


@_pseudo("zext.b")
def _zext_b(a: Assembler, ops: list[str]) -> list[Insn]:
    rd, rs = _two_regs(a, ops, "zext.b rd, rs")
    return [a.make("andi", rd=rd, rs1=rs, imm=("n", 255))]


# -- jumps and branches -------------------------------------------------------------------


@_pseudo("j")
def _j(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 1, "j offset")
    return [a.make("jal", target=a.expr(ops[0]))]


@_pseudo("jal")
def _jal(a: Assembler, ops: list[str]) -> list[Insn] | None:
    if len(ops) != 1:
        return None
    return [a.make("jal", rd=RA, target=a.expr(ops[0]))]


def _jalr_target(a: Assembler, op: str) -> tuple[int, X.Node]:
    mem = a.mem(op)
    if mem is not None:
        return mem[1], mem[0]
    return a.reg(op), ("n", 0)


@_pseudo("jr")
def _jr(a: Assembler, ops: list[str]) -> list[Insn]:
    if len(ops) == 1:
        rs, off = _jalr_target(a, ops[0])
    elif len(ops) == 2:
        rs, off = a.reg(ops[0]), a.expr(ops[1])
    else:
        raise a.error("wrong number of operands (expected `jr rs` or `jr rs, offset`)")
    return [a.make("jalr", rs1=rs, imm=off)]


@_pseudo("jalr")
def _jalr(a: Assembler, ops: list[str]) -> list[Insn] | None:
    if len(ops) == 1:
        rs, off = _jalr_target(a, ops[0])
        return [a.make("jalr", rd=RA, rs1=rs, imm=off)]
    if len(ops) == 2 and a.is_reg(ops[1]):
        return [a.make("jalr", rd=a.reg(ops[0]), rs1=a.reg(ops[1]), imm=("n", 0))]
    if len(ops) == 3:
        return [a.make("jalr", rd=a.reg(ops[0]), rs1=a.reg(ops[1]), imm=a.expr(ops[2]))]
    return None


@_pseudo("ret")
def _ret(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 0, "ret")
    return [a.make("jalr", rs1=RA, imm=("n", 0))]


@_pseudo("call")
def _call(a: Assembler, ops: list[str]) -> list[Insn]:
    if len(ops) == 1:
        return _pcrel_pair(a, RA, a.expr(ops[0]), "jalr", dest=RA)
    if len(ops) == 2:
        # GNU as: "call rd, symbol" links in rd but builds the address in t1.
        return _pcrel_pair(a, T1, a.expr(ops[1]), "jalr", dest=a.reg(ops[0]))
    raise a.error("wrong number of operands (expected `call symbol` or `call rd, symbol`)")


@_pseudo("tail")
def _tail(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 1, "tail symbol")
    return _pcrel_pair(a, T1, a.expr(ops[0]), "jalr", dest=0)


@_pseudo("jump")
def _jump(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 2, "jump symbol, temp-register")
    return _pcrel_pair(a, a.reg(ops[1]), a.expr(ops[0]), "jalr", dest=0)


# Branch-against-zero pseudos: (real branch, whether rs goes in rs2 instead of rs1).
_BZ = {"beqz": ("beq", False), "bnez": ("bne", False), "bltz": ("blt", False), "bgez": ("bge", False),
       "blez": ("bge", True), "bgtz": ("blt", True)}  # fmt: skip
# Swapped-operand branches: bgt a, b == blt b, a.
_BSWAP = {"bgt": "blt", "ble": "bge", "bgtu": "bltu", "bleu": "bgeu"}


@_pseudo(*_BZ)
def _bz(a: Assembler, ops: list[str]) -> list[Insn]:
    m = a.stmt.mnemonic.lower()
    _need(a, ops, 2, f"{m} rs, offset")
    real, swap = _BZ[m]
    rs = a.reg(ops[0])
    if swap:
        return [a.make(real, rs2=rs, target=a.expr(ops[1]))]
    return [a.make(real, rs1=rs, target=a.expr(ops[1]))]


@_pseudo(*_BSWAP)
def _bswap(a: Assembler, ops: list[str]) -> list[Insn]:
    m = a.stmt.mnemonic.lower()
    _need(a, ops, 3, f"{m} rs, rt, offset")
    return [a.make(_BSWAP[m], rs1=a.reg(ops[1]), rs2=a.reg(ops[0]), target=a.expr(ops[2]))]


# -- CSRs (Unprivileged 25.3 table 25.3; Zicsr chapter 9) ---------------------------------


@_pseudo("csrr")
def _csrr(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 2, "csrr rd, csr")
    return [a.make("csrrs", rd=a.reg(ops[0]), csr=a.csr(ops[1]))]


_CSR_WRITE = {"csrw": "csrrw", "csrs": "csrrs", "csrc": "csrrc"}
_CSR_WRITE_I = {"csrwi": "csrrwi", "csrsi": "csrrsi", "csrci": "csrrci"}


@_pseudo(*_CSR_WRITE, *_CSR_WRITE_I)
def _csrw(a: Assembler, ops: list[str]) -> list[Insn]:
    m = a.stmt.mnemonic.lower()
    _need(a, ops, 2, f"{m} csr, {'imm' if m in _CSR_WRITE_I else 'rs'}")
    csr = a.csr(ops[0])
    if m in _CSR_WRITE and a.is_reg(ops[1]):
        return [a.make(_CSR_WRITE[m], rs1=a.reg(ops[1]), csr=csr)]
    # GNU as: an immediate source selects the csrr*i form.
    base = _CSR_WRITE.get(m) or _CSR_WRITE_I[m]
    return [a.make(base if base.endswith("i") else base + "i", csr=csr, uimm=a.expr(ops[1]))]


@_pseudo("csrrw", "csrrs", "csrrc")
def _csrrx(a: Assembler, ops: list[str]) -> list[Insn] | None:
    if len(ops) != 3 or a.is_reg(ops[2]):
        return None
    return [a.make(a.stmt.mnemonic.lower() + "i", rd=a.reg(ops[0]), csr=a.csr(ops[1]), uimm=a.expr(ops[2]))]


_COUNTERS = {"rdcycle": "cycle", "rdcycleh": "cycleh", "rdtime": "time", "rdtimeh": "timeh",
             "rdinstret": "instret", "rdinstreth": "instreth"}  # fmt: skip


@_pseudo(*_COUNTERS)
def _rdcounter(a: Assembler, ops: list[str]) -> list[Insn]:
    m = a.stmt.mnemonic.lower()
    _need(a, ops, 1, f"{m} rd")
    return [a.make("csrrs", rd=a.reg(ops[0]), csr=("n", CSRS[_COUNTERS[m]]))]


@_pseudo("unimp")
def _unimp(a: Assembler, ops: list[str]) -> list[Insn]:
    # GNU as: "csrrw x0, cycle, x0", a write to a read-only CSR, always illegal (Priv 2.1).
    _need(a, ops, 0, "unimp")
    return [a.make("csrrw", csr=("n", CSRS["cycle"]))]


# -- fences and system --------------------------------------------------------------------


@_pseudo("fence")
def _fence(a: Assembler, ops: list[str]) -> list[Insn] | None:
    if ops:
        return None
    return [a.make("fence", extra=0xF << 24 | 0xF << 20)]  # fence iorw, iorw


@_pseudo("fence.tso")
def _fence_tso(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 0, "fence.tso")
    # Unprivileged 2.7: FENCE.TSO is fm=1000 with pred=succ=RW.
    return [a.make("fence", extra=0x8 << 28 | 0x3 << 24 | 0x3 << 20)]


def _fence_vma(name: str) -> Handler:
    """SFENCE.VMA and the H extension's HFENCE.VVMA/GVMA: rs1 and rs2 default to zero (GNU as)."""

    def handler(a: Assembler, ops: list[str]) -> list[Insn] | None:
        if len(ops) == 0:
            return [a.make(name)]
        if len(ops) == 1:
            return [a.make(name, rs1=a.reg(ops[0]))]
        return None  # two operands: the base instruction

    return handler


for _name in ("sfence.vma", "hfence.vvma", "hfence.gvma"):
    _pseudo(_name)(_fence_vma(_name))


@_pseudo("scall")
def _scall(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 0, "scall")
    return [a.make("ecall")]


@_pseudo("sbreak")
def _sbreak(a: Assembler, ops: list[str]) -> list[Insn]:
    _need(a, ops, 0, "sbreak")
    return [a.make("ebreak")]
