"""Pass 1: statements to sections of bytes, instructions and symbols.

Pass 1 walks the statements once. Every statement's size is known when it is read (we never
relax), so labels get their section offsets immediately; expressions that need final
addresses are kept as trees and evaluated in pass 2 (:mod:`.layout`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from virtlevels.errors import AssemblyError
from virtlevels.machine.isa import encodings as E

from . import expr as X
from .encoder import AQRL_SUFFIXES, FieldError, Insn, InsnSet, fence_set, place_reg
from .lexer import Statement, split_operands, statements
from .names import CSRS, REGISTERS

TEXT, RODATA, DATA, BSS = ".text", ".rodata", ".data", ".bss"
GROUPS = (TEXT, RODATA, DATA, BSS)  # output order (the layout a default linker script gives)

NOP = 0x00000013  # addi x0, x0, 0 (Unprivileged 2.4, "NOP Instruction")

_IMM_FORMS = {"sltu": "sltiu"}  # register-register op -> its immediate form, where not name + "i"
_MEM = re.compile(r"(.*)\(\s*([\w$.]+)\s*\)\Z", re.S)


@attrs.define(eq=False)
class Section:
    """One input section: bytes so far, instructions and data still to be filled in by pass 2."""

    name: str
    group: str  # which output group (TEXT, RODATA, DATA or BSS) it is laid out in
    order: int
    data: bytearray = attrs.Factory(bytearray)
    align: int = 1
    insns: list[tuple[int, Insn, Statement]] = attrs.Factory(list)
    fixups: list[tuple[int, int, X.Node, Statement]] = attrs.Factory(list)
    pcrel_hi: dict[int, X.Node] = attrs.Factory(dict)  # auipc offset -> its %pcrel_hi target
    nobits: bool = False


@attrs.define(eq=False)
class Symbol:
    """A label (section + offset), an absolute value, or an expression deferred to pass 2."""

    name: str
    section: str | None
    value: int
    node: X.Node | None = None
    stmt: Statement | None = None
    is_label: bool = False


def group_for(name: str, flags: str = "", sect_type: str = "") -> str:
    """Which output group an input section joins, by name first (as ld's default script) then flags."""
    if name == ".text" or name.startswith(".text."):
        return TEXT
    if name in (".rodata", ".srodata") or name.startswith((".rodata.", ".srodata.")):
        return RODATA
    if name in (".bss", ".sbss") or name.startswith((".bss.", ".sbss.")) or "nobits" in sect_type:
        return BSS
    if name in (".data", ".sdata") or name.startswith((".data.", ".sdata.")):
        return DATA
    if "x" in flags:
        return TEXT
    if "w" in flags:
        return DATA
    if flags:
        return RODATA
    return DATA


def _display(name: str) -> str:
    """How a symbol is named in messages (local labels are stored as 'N\\x02k')."""
    return f"local label {name.split(chr(2))[0]}" if "\x02" in name else f"`{name}`"


class Assembler:
    """The state of one assembly: sections, symbols and the statement being read."""

    def __init__(self, source: str, filename: str, insn_set: InsnSet) -> None:
        self.source = source
        self.filename = filename
        self.isa = insn_set
        self.sections: dict[str, Section] = {}
        self.symbols: dict[str, Symbol] = {}
        self.constants: dict[str, int] = {}  # absolute symbols, substituted at parse time
        self.globals: set[str] = set()
        self.local_counts: dict[str, int] = {}
        self.stmt: Statement = Statement(0, "", (), "", "")
        self.cur: Section = self.section(TEXT)
        self.cur.align = 4  # GNU as: .text is word aligned without the C extension
        self.ended = False
        self._pass1 = X.Evaluator(self._lookup_pass1)

    # -- messages ---------------------------------------------------------------------------

    def error(self, msg: str, stmt: Statement | None = None) -> AssemblyError:
        st = stmt or self.stmt
        return AssemblyError(f"{self.filename}:{st.line}: {msg}: {st.text}")

    # -- sections and symbols ---------------------------------------------------------------

    def section(self, name: str, flags: str = "", sect_type: str = "") -> Section:
        sec = self.sections.get(name)
        if sec is None:
            group = group_for(name, flags, sect_type)
            sec = Section(name, group, len(self.sections), nobits=group == BSS)
            self.sections[name] = sec
        return sec

    def local_ref(self, digits: str, direction: str) -> str:
        count = self.local_counts.get(digits, 0)
        if direction == "b":
            if count == 0:
                raise self.error(f"backward reference {digits}b to a local label not yet defined")
            return f"{digits}\x02{count}"
        return f"{digits}\x02{count + 1}"

    def define_label(self, name: str) -> None:
        if name.isdigit():
            count = self.local_counts.get(name, 0) + 1
            self.local_counts[name] = count
            name = f"{name}\x02{count}"
        elif name in self.symbols:
            raise self.error(f"symbol `{name}` is already defined")
        self.symbols[name] = Symbol(name, self.cur.name, len(self.cur.data), None, self.stmt, True)

    def define_symbol(self, name: str, node: X.Node, *, redefine: bool) -> None:
        old = self.symbols.get(name)
        if old is not None and (old.is_label or not redefine):
            raise self.error(f"symbol `{name}` is already defined")
        try:
            value, sect = self.value_now(node)
        except X.Unresolved:
            self.constants.pop(name, None)
            self.symbols[name] = Symbol(name, None, 0, node, self.stmt)
            return
        self.symbols[name] = Symbol(name, sect, value, None, self.stmt)
        if sect is None:
            self.constants[name] = value
        else:
            self.constants.pop(name, None)

    def _lookup_pass1(self, name: str) -> X.Value:
        sym = self.symbols.get(name)
        if sym is None:
            raise X.Unresolved(f"undefined symbol {_display(name)}")
        if sym.node is not None:
            return self.value_now(sym.node)
        return sym.value, sym.section

    def value_now(self, node: X.Node) -> X.Value:
        """Evaluate with what pass 1 knows: labels are (offset, section) until layout."""
        ev = self._pass1
        ev.pc = (len(self.cur.data), self.cur.name)
        return ev.value(node)

    def absolute_now(self, node: X.Node, what: str) -> int:
        """A value that must be known now (sizes, counts); errors name what needed it."""
        try:
            v, sect = self.value_now(node)
        except X.Unresolved as exc:
            raise self.error(f"{what} must be a constant known here ({exc})") from None
        except X.ExprError as exc:
            raise self.error(str(exc)) from None
        if sect is not None:
            raise self.error(f"{what} must be a constant, not an address")
        return v

    # -- operands ---------------------------------------------------------------------------

    def expr(self, text: str) -> X.Node:
        try:
            return X.parse(text, self.local_ref, self.constants)
        except X.ExprError as exc:
            raise self.error(str(exc)) from None

    def reg(self, text: str) -> int:
        r = REGISTERS.get(text.strip().lower())
        if r is None:
            raise self.error(f"expected a register, got `{text}`")
        return r

    @staticmethod
    def is_reg(text: str) -> bool:
        return text.strip().lower() in REGISTERS

    def mem(self, text: str) -> tuple[X.Node, int] | None:
        """``offset(reg)`` or ``(reg)``; None when ``text`` has no register in parentheses."""
        m = _MEM.match(text.strip())
        if m is None or not self.is_reg(m.group(2)):
            return None
        off = m.group(1).strip()
        return (self.expr(off) if off else ("n", 0)), self.reg(m.group(2))

    def csr(self, text: str) -> X.Node:
        num = CSRS.get(text.strip().lower())
        return ("n", num) if num is not None else self.expr(text)

    # -- instructions -----------------------------------------------------------------------

    def make(
        self, name: str, *, rd: int = 0, rs1: int = 0, rs2: int = 0, extra: int = 0, **fields: X.Node
    ) -> Insn:
        """A base instruction from the table (pseudo-instructions expand into these)."""
        enc = self.isa.by_name.get(name)
        if enc is None:
            raise self.error(f"instruction `{name}` is not in the instruction table")
        regs = (rd << 7) | (rs1 << 15) | (rs2 << 20) | extra
        return Insn(enc, regs, tuple(fields.items()))

    def emit(self, insns: list[Insn]) -> None:
        sec = self.cur
        if sec.nobits:
            raise self.error(f"instructions in {sec.name}, which holds no data")
        data = sec.data
        if len(data) & 3:
            raise self.error(f"instruction at misaligned offset {len(data)} in {sec.name}")
        for insn in insns:
            off = len(data)
            for field, node in insn.fields:
                if field == "imm" and node[0] == "%" and node[1] == "pcrel_hi":
                    sec.pcrel_hi[off] = node[2]
            sec.insns.append((off, insn, self.stmt))
            data += b"\0\0\0\0"

    def generic(self, mnemonic: str, ops: list[str]) -> Insn:
        """Parse operands by the row's syntax string, e.g. "rd, imm(rs1)"."""
        name, aqrl = mnemonic, 0
        enc = self.isa.by_name.get(name)
        if enc is None:
            for suffix in (".aqrl", ".aq", ".rl"):
                base = mnemonic[: -len(suffix)]
                if mnemonic.endswith(suffix) and base in self.isa.by_name:
                    enc = self.isa.by_name[base]
                    if enc.fmt in (E.AMO, E.LR):
                        name, aqrl = base, AQRL_SUFFIXES[suffix]
                        break
                    enc = None
        if enc is None:
            raise self.error(f"unknown instruction `{mnemonic}`")
        syntax = self.isa.syntax[name]
        if len(ops) != len(syntax):
            imm_form = _IMM_FORMS.get(name, name + "i")
            if enc.fmt == E.R and len(ops) == 3 and not self.is_reg(ops[2]) and imm_form in self.isa.by_name:
                return self.generic(imm_form, ops)  # GNU as: "add a0, a1, 5" means addi
            want = f"`{' '.join((name, enc.syntax))}`" if syntax else "no operands"
            raise self.error(f"wrong number of operands for {name} (expected {want})")
        regs = aqrl << 25
        fields: list[tuple[str, X.Node]] = []
        for tok, op in zip(syntax, ops, strict=True):
            if tok in ("rd", "rs1", "rs2"):
                imm_form = _IMM_FORMS.get(name, name + "i")
                if tok == "rs2" and enc.fmt == E.R and not self.is_reg(op) and imm_form in self.isa.by_name:
                    return self.generic(imm_form, ops)
                regs |= place_reg(tok, self.reg(op))
            elif tok in ("imm(rs1)", "(rs1)"):
                parsed = self.mem(op)
                if parsed is None:
                    raise self.error(f"expected `{tok.replace('rs1', 'register')}`, got `{op}`")
                offset, base_reg = parsed
                regs |= base_reg << 15
                if tok == "imm(rs1)":
                    fields.append(("imm", offset))
                elif offset != ("n", 0):
                    raise self.error(f"{name} takes no offset, got `{op}`")
            elif tok == "csr":
                fields.append(("csr", self.csr(op)))
            elif tok in ("pred", "succ"):
                try:
                    regs |= fence_set(op) << (24 if tok == "pred" else 20)
                except FieldError as exc:
                    raise self.error(str(exc)) from None
            elif tok in ("imm", "shamt", "uimm", "target"):
                fields.append((tok, self.expr(op)))
            else:
                raise self.error(f"cannot parse operand kind {tok!r} of {name}")
        return Insn(enc, regs, tuple(fields))

    # -- the pass ---------------------------------------------------------------------------

    def run(
        self,
        directives: dict[str, Callable[[Assembler, str], None]],
        pseudos: dict[str, Callable[[Assembler, list[str]], list[Insn] | None]],
    ) -> None:
        for st in statements(self.source, self.filename):
            self.stmt = st
            for label in st.labels:
                self.define_label(label)
            if not st.mnemonic:
                continue
            if st.operands.startswith("=") and not st.operands.startswith("=="):
                # GNU as: "name = expr" is .set
                self.define_symbol(st.mnemonic, self.expr(st.operands[1:]), redefine=True)
                continue
            m = st.mnemonic.lower()
            if m[0] == ".":
                handler = directives.get(m)
                if handler is None:
                    raise self.error(f"unknown directive `{m}`")
                handler(self, st.operands)
                if self.ended:
                    return
                continue
            ops = split_operands(st.operands)
            pseudo = pseudos.get(m)
            if pseudo is not None:
                out = pseudo(self, ops)
                if out is not None:
                    self.emit(out)
                    continue
            self.emit([self.generic(m, ops)])
