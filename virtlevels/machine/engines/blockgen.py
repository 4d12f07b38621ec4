"""Guest code to Python source: the code generator of the fast engine (see :mod:`.fast`).

The generated function is ``blk(h, left) -> steps`` (negative steps: it stopped at a sync point,
where the run loop checks interrupts). Its shape, for a loop of L instructions::

    def blk(h, left):
        x = h.x; rc = h.rcache.get; wc = h.wcache.get
        r5 = x[5]; r6 = x[6]                 # guest registers the block uses, as locals
        lim = left // L                      # whole iterations the budget allows
        for it in range(lim):
            r5 = (r5 + 1) & 0xFFFFFFFF       # addi x5, x5, 1
            a = r6 + 8                       # lw x7, 8(x6): the block's cached page, inline
            if a & 0xfffff003 == lk:         # (page and alignment in one test)
                r7 = l2[(a & 4095) >> 2]
            else:
                ...                          # refill from h.rcache, or LD(h, a, it, D1)
            if r5 == r7:                     # bne x5, x7, head: the back edge leaves when not taken
                cn = h.counts; cn[0] += it * 1 + 1; ...; x[5] = r5; x[7] = r7
                h.pc = 0x8000000c; return it * 3 + 3
        it = lim                             # the budget ran out at the loop head
        ...

Loads and stores off one base register share one page/alignment/range check (:meth:`_Emitter.emit_group`),
and a loop's ``addi r, r, c`` induction registers drop their mask when a check before the loop shows
they cannot wrap (:meth:`_Emitter.induction`); docs/engines.md describes both.

Retired instructions are counted per cost class only at exits (``counts[c] += it * k + j``, the
constants precomputed). Before any call that can observe the hart (a slow memory path, an
interpreter op) the counters and modified registers are made exact; a Trap raised there is
turned into trap entry with the faulting instruction's pc as epc and only the instructions
before it retired (a precise trap).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.machine.isa import semantics as sem
from virtlevels.machine.isa.semantics import SEMANTICS, Fields
from virtlevels.machine.isa.table import Instruction, InstructionTable
from virtlevels.machine.trap import INSTRUCTION_ADDRESS_MISALIGNED, HaltRequest, Trap

if TYPE_CHECKING:
    from virtlevels.machine.hart import Hart

MAX_TRACE = 48  # instructions per block: longer traces rarely pay and need a bigger budget
M32 = 0xFFFFFFFF

BlockFn = Callable[["Hart", int], int]


@attrs.define(eq=False, slots=True)
class Block:
    """One translated trace."""

    vpc: int  # virtual pc of its first instruction
    view: memoryview  # the 32-bit view of the physical page it was read from
    buf: bytearray  # that page's bytes (for re-verification)
    ppn: int
    lo: int  # byte range [lo, hi) of the page it was translated from
    hi: int
    code: bytes  # those bytes when it was translated
    length: int  # the most steps one pass (one loop iteration) can take
    loop: bool
    source: str
    fn: BlockFn
    valid: bool = True


# Inline templates (Unpriv 2.4, 7.1): "{d}" = rd, "{a}"/"{b}" = rs1/rs2 as locals, "{i}" = imm.
_S = "0x80000000"
_ALU_IMM = {
    "addi": "({a} + {i}) & 0xFFFFFFFF",
    "slti": "1 if ({a} ^ " + _S + ") < {f} else 0",  # signed compare by flipping the sign bit
    "sltiu": "1 if {a} < {u} else 0",  # Unpriv 2.4: the immediate is sign-extended, compared unsigned
    "xori": "{a} ^ {u}",
    "ori": "{a} | {u}",
    "andi": "{a} & {u}",
    "slli": "({a} << {i}) & 0xFFFFFFFF",
    "srli": "{a} >> {i}",
    "srai": "((({a} ^ " + _S + ") - " + _S + ") >> {i}) & 0xFFFFFFFF",
}
_ALU_REG = {
    "add": "({a} + {b}) & 0xFFFFFFFF",
    "sub": "({a} - {b}) & 0xFFFFFFFF",
    "sll": "({a} << ({b} & 31)) & 0xFFFFFFFF",  # Unpriv 2.4: shift amount is rs2[4:0]
    "slt": "1 if ({a} ^ " + _S + ") < ({b} ^ " + _S + ") else 0",
    "sltu": "1 if {a} < {b} else 0",
    "xor": "{a} ^ {b}",
    "srl": "{a} >> ({b} & 31)",
    "sra": "((({a} ^ " + _S + ") - " + _S + ") >> ({b} & 31)) & 0xFFFFFFFF",
    "or": "{a} | {b}",
    "and": "{a} & {b}",
    "mul": "({a} * {b}) & 0xFFFFFFFF",
    "mulh": "(((({a} ^ " + _S + ") - " + _S + ") * (({b} ^ " + _S + ") - " + _S + ")) >> 32) & 0xFFFFFFFF",
    "mulhsu": "(((({a} ^ " + _S + ") - " + _S + ") * {b}) >> 32) & 0xFFFFFFFF",
    "mulhu": "({a} * {b}) >> 32",
    # Unpriv 7.2 (division by zero, overflow) lives in the interpreter's helpers: call them.
    "div": "div_signed({a}, {b})",
    "divu": "div_unsigned({a}, {b})",
    "rem": "rem_signed({a}, {b})",
    "remu": "rem_unsigned({a}, {b})",
}
_BRANCH = {
    "beq": "{a} == {b}",
    "bne": "{a} != {b}",
    "blt": "({a} ^ " + _S + ") < ({b} ^ " + _S + ")",
    "bge": "({a} ^ " + _S + ") >= ({b} ^ " + _S + ")",
    "bltu": "{a} < {b}",
    "bgeu": "{a} >= {b}",
}
# name -> (width, signed)
_LOADS = {"lb": (1, True), "lh": (2, True), "lw": (4, False), "lbu": (1, False), "lhu": (2, False)}
_STORES = {"sb": 1, "sh": 2, "sw": 4}


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    """Raised by a slow-path helper to leave the block: ``n`` is what the block returns."""

    def __init__(self, n: int) -> None:
        self.n = n


@attrs.define(eq=False, slots=True)
class _Slow:
    """What a slow memory path needs to know about its instruction (item ``k`` of the block)."""

    pc: int
    ci: int  # its cost class
    rd: int  # the loaded register (0: none)
    width: int
    signed: bool
    counts: tuple[tuple[int, int, int], ...]  # (class, per loop iteration, before item k)
    n: int  # instructions per loop iteration (0: not a loop)
    k: int
    vpn: int  # the block's virtual page and page view, re-checked after the call
    view: memoryview
    block: Block | None = None


def _flush(cn: list[int], it: int, d: _Slow, sign: int) -> None:
    for ci, per, j in d.counts:
        cn[ci] += sign * (it * per + j)


def _load_slow(h: Hart, a: int, it: int, d: _Slow) -> int:
    """A load that missed the page cache (or is misaligned, or MMIO): exact counters, then the
    hart's slow path. A trap, or a code page that left the fetch cache or was written, leaves
    the block (:class:`_Stop`) after this instruction - a precise trap."""
    cn = h.counts
    _flush(cn, it, d, 1)
    try:
        v = h.load_slow(a, d.width, d.signed)
    except Trap as e:
        h.pc = d.pc
        h.take_trap(e.cause, e.tval)
        raise _Stop(-(it * d.n + d.k + 1)) from None
    blk = d.block
    if h.xcache.get(d.vpn) is not d.view or blk is None or not blk.valid:
        cn[d.ci] += 1
        if d.rd:
            h.x[d.rd] = v
        h.pc = d.pc + 4
        raise _Stop(it * d.n + d.k + 1)
    _flush(cn, it, d, -1)
    return v


def _store_slow(h: Hart, a: int, v: int, it: int, d: _Slow) -> None:
    """A store that missed the page cache (see :func:`_load_slow`); an MMIO store that asks the
    machine to stop (HaltRequest) retires and leaves at a sync point."""
    cn = h.counts
    _flush(cn, it, d, 1)
    try:
        h.store_slow(a, d.width, v)
    except Trap as e:
        h.pc = d.pc
        h.take_trap(e.cause, e.tval)
        raise _Stop(-(it * d.n + d.k + 1)) from None
    except HaltRequest:
        cn[d.ci] += 1
        h.pc = d.pc + 4
        raise _Stop(-(it * d.n + d.k + 1)) from None
    blk = d.block
    if h.xcache.get(d.vpn) is not d.view or blk is None or not blk.valid:
        cn[d.ci] += 1
        h.pc = d.pc + 4
        raise _Stop(it * d.n + d.k + 1)
    _flush(cn, it, d, -1)


_GLOBALS: dict[str, Any] = {
    "Trap": Trap,
    "HaltRequest": HaltRequest,
    "div_signed": sem.div_signed,
    "div_unsigned": sem.div_unsigned,
    "rem_signed": sem.rem_signed,
    "rem_unsigned": sem.rem_unsigned,
    "Stop": _Stop,
    "LD": _load_slow,
    "ST": _store_slow,
}


@attrs.define(slots=True)
class _Item:
    pc: int
    word: int
    ins: Instruction | None
    f: Fields | None
    ci: int
    kind: str  # nop alu lui auipc load store branch jal jalr op
    op: Any


def _kind(ins: Instruction | None, f: Fields | None, op: Any, ci: int, sync: int) -> str:
    if ins is None or f is None or ci >= sync:
        return "op"
    name = ins.name
    if SEMANTICS.get(name) is not ins.semantics:
        return "op"  # replaced semantics (a plugin): run its op
    if ins.pure and f.rd == 0:
        return "nop"  # a HINT (Unpriv 2.9): retires, does nothing
    if name in _ALU_IMM or name in _ALU_REG or name in ("lui", "auipc"):
        return "alu"
    if name in _LOADS:
        return "load"
    if name in _STORES:
        return "store"
    if name in _BRANCH:
        return "op" if f.imm & 3 else "branch"  # a misaligned target: the op raises the trap
    if name == "jal":
        return "op" if f.imm & 3 else "jal"
    if name == "jalr":
        return "jalr"
    return "op"


def _trace(table: InstructionTable, view: memoryview, pc: int) -> tuple[list[_Item], bool, int | None]:
    """Decode the trace at ``pc``: (items, is_loop, fall-through exit pc or None)."""
    sync = table.sync_index
    page = pc >> 12
    items: list[_Item] = []
    seen: set[int] = set()
    cur = pc
    while True:
        if cur >> 12 != page or cur in seen or len(items) >= MAX_TRACE:
            return items, False, cur
        seen.add(cur)
        word = int(view[(cur & 0xFFF) >> 2])
        op, ci = table.decode(word)
        ins = table.lookup(word)
        f = ins.fields(word) if ins is not None else None
        kind = _kind(ins, f, op, ci, sync)
        items.append(_Item(cur, word, ins, f, ci, kind, op))
        if kind in ("op", "jalr"):
            return items, False, None
        if kind == "jal":
            assert f is not None
            t = (cur + f.imm) & M32
            if t == pc:
                return items, True, None
            if t >> 12 == page and t not in seen and len(items) < MAX_TRACE:
                cur = t  # follow a direct jump on the same page
                continue
            return items, False, None
        if kind == "branch":
            assert f is not None
            if (cur + f.imm) & M32 == pc:
                return items, True, None  # the back edge of a loop on this block
        cur += 4


def _reads(it: _Item) -> tuple[int, ...]:
    f = it.f
    if f is None or it.kind in ("nop", "op", "jal"):
        return ()
    name = it.ins.name if it.ins is not None else ""
    if name in ("lui", "auipc"):
        return ()
    if it.kind in ("store", "branch") or name in _ALU_REG:
        return (f.rs1, f.rs2)
    return (f.rs1,)


def _writes(it: _Item) -> int:
    f = it.f
    if f is None or it.kind in ("nop", "op", "store", "branch"):
        return 0
    return f.rd


_REG = re.compile(r"\br\d+\b")
_NEGATE = {"beq": "bne", "bne": "beq", "blt": "bge", "bge": "blt", "bltu": "bgeu", "bgeu": "bltu"}
# The fast-path check of an access: its page is the cached one and it is aligned, in one compare.
# The address need not be reduced to 32 bits first: these masks keep only bits 31..0, which are the
# guest address whether ``base + imm`` went below 0 or above 0xFFFFFFFF (Unpriv 2.6 wraps).
_ALIGN_MASK = {4: 0xFFFFF003, 2: 0xFFFFF001, 1: 0xFFFFF000}


class _Emitter:
    """Writes the source of one block."""

    def __init__(
        self, items: list[_Item], loop: bool, end_pc: int | None, sync: int, view: memoryview
    ) -> None:
        self.items = items
        self.loop = loop
        self.end_pc = end_pc
        self.sync = sync
        self.view = view
        self.n = len(items)
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.slow: list[_Slow] = []
        # prefix[k]: class -> count of items[:k]; wprefix[k]: registers written by items[:k]
        self.prefix: list[dict[int, int]] = [{}]
        self.wprefix: list[list[int]] = [[]]
        written: set[int] = set()
        for it in items:
            d = dict(self.prefix[-1])
            d[it.ci] = d.get(it.ci, 0) + 1
            self.prefix.append(d)
            written.add(_writes(it))
            self.wprefix.append(sorted(written - {0}))
        self.all_written = self.wprefix[-1]
        self.known: dict[int, int] = {}  # registers holding a constant known at translation time
        self.unmasked: dict[int, int] = {}  # induction registers whose addi needs no mask (no wrap)
        self.dead = False  # a branch decided at translation time left: emit no more

    # -- helpers ------------------------------------------------------------------------------
    def r(self, n: int) -> str:
        if not n:
            return "0"
        v = self.known.get(n)
        return f"r{n}" if v is None else f"{v:#x}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def steps(self, k: int) -> str:
        """Steps done once ``k`` items of the current pass are done."""
        if self.loop:
            return f"it * {self.n} + {k}" if k else f"it * {self.n}"
        return str(k)

    def count_lines(self, k: int, sign: str = "+") -> list[str]:
        out = []
        total = self.prefix[self.n]
        for ci in sorted(total):
            j = self.prefix[k].get(ci, 0)
            if self.loop:
                expr = f"it * {total[ci]}" + (f" + {j}" if j else "")
            elif j:
                expr = str(j)
            else:
                continue
            out.append(f"cn[{ci}] {sign}= {expr}")
        return out

    def written_before(self, k: int) -> list[int]:
        return self.all_written if self.loop else self.wprefix[k]

    def writeback(self, depth: int, regs: list[int]) -> None:
        if regs:
            self.emit(depth, "; ".join(f"x[{r}] = r{r}" for r in regs))

    def exit(self, depth: int, k: int, pc: str, sync: bool = False) -> None:
        """Leave after ``k`` items of this pass, continuing at ``pc``."""
        counts = self.count_lines(k)
        if counts:
            self.emit(depth, "cn = h.counts")
            for line in counts:
                self.emit(depth, line)
        self.writeback(depth, self.written_before(k))
        self.emit(depth, f"h.pc = {pc}")
        steps = self.steps(k)
        self.emit(depth, f"return -({steps})" if sync else f"return {steps}")

    def flush_before_call(self, depth: int, k: int) -> None:
        """Make counters and registers exact before item ``k`` calls out."""
        self.emit(depth, "cn = h.counts")
        for line in self.count_lines(k):
            self.emit(depth, line)
        self.writeback(depth, self.written_before(k))

    def trap_handler(self, depth: int, k: int, halt: bool) -> None:
        it = self.items[k]
        self.emit(depth, "except Trap as e:")
        self.emit(depth + 1, f"h.pc = {it.pc:#x}")
        self.emit(depth + 1, "h.take_trap(e.cause, e.tval)")
        self.emit(depth + 1, f"return -({self.steps(k)} + 1)")
        if halt:  # the store that asked the machine to stop did retire
            self.emit(depth, "except HaltRequest:")
            self.emit(depth + 1, f"cn[{it.ci}] += 1")
            self.emit(depth + 1, f"h.pc = {it.pc + 4:#x}")
            self.emit(depth + 1, f"return -({self.steps(k)} + 1)")

    def slow_desc(self, k: int, rd: int, width: int, signed: bool) -> str:
        """A constant describing item ``k`` for the slow-path helpers :func:`_load_slow` and
        :func:`_store_slow`, which keep the long, rarely run code out of the block."""
        it = self.items[k]
        total = self.prefix[self.n]
        counts = []
        for ci in sorted(total):
            per = total[ci] if self.loop else 0
            j = self.prefix[k].get(ci, 0)
            if per or j:
                counts.append((ci, per, j))
        d = _Slow(
            pc=it.pc, ci=it.ci, rd=rd, width=width, signed=signed, counts=tuple(counts),
            n=self.n if self.loop else 0, k=k, vpn=it.pc >> 12, view=self.view,
        )  # fmt: skip
        self.slow.append(d)
        name = f"D{k}"
        self.consts[name] = d
        return name

    # -- instructions -------------------------------------------------------------------------
    def alu(self, depth: int, name: str, it: _Item, f: Fields) -> None:
        a, b, d = self.r(f.rs1), self.r(f.rs2), f.rd
        if name == "lui":
            expr = f"{f.imm & M32:#x}"
        elif name == "auipc":
            expr = f"{(it.pc + f.imm) & M32:#x}"
        elif name in _ALU_IMM:
            if name in ("addi", "ori", "xori") and f.imm == 0:
                expr = a  # mv: the source is already a 32-bit value
            elif name == "addi" and d in self.unmasked and f.rs1 == d:
                expr = f"{a} + {f.imm}"  # the loop checked that it cannot wrap (see source)
            else:
                expr = _ALU_IMM[name].format(a=a, i=f.imm, u=f.imm & M32, f=(f.imm & M32) ^ 0x80000000)
        elif name in ("add", "or", "xor") and (a == "0" or b == "0"):
            expr = b if a == "0" else a
        elif name == "sub" and b == "0":
            expr = a
        else:
            expr = _ALU_REG[name].format(a=a, b=b)
        if not _REG.search(expr):
            # every operand is known: fold (the templates are Python over 32-bit values)
            expr = f"{eval(expr, dict(_GLOBALS)) & M32:#x}"  # noqa: S307 - our own template
            self.known[d] = int(expr, 16)
        else:
            self.known.pop(d, None)
        self.emit(depth, f"r{d} = {expr}")

    def item(self, depth: int, k: int) -> None:
        it = self.items[k]
        f = it.f
        kind = it.kind
        if kind == "nop":
            return
        if kind == "op":
            self.emit_op(depth, k)
            return
        assert f is not None and it.ins is not None
        name = it.ins.name
        a, b, d = self.r(f.rs1), self.r(f.rs2), f.rd
        if kind == "alu":
            self.alu(depth, name, it, f)
        elif kind == "load":
            self.emit_load(depth, k, name, a, d, f.imm)
            self.known.pop(d, None)
        elif kind == "store":
            self.emit_store(depth, k, name, a, b, f.imm)
        elif kind == "branch":
            target = (it.pc + f.imm) & M32
            back = self.loop and k == self.n - 1 and target == self.items[0].pc
            # the back edge: taken goes round the ``for`` loop again, not taken leaves
            cond = self.cond(_NEGATE[name] if back else name, a, b)
            if not _REG.search(cond):  # both operands known: decided now
                if eval(cond):  # noqa: S307 - our own template over constants
                    self.exit(depth, k + 1, f"{it.pc + 4 if back else target:#x}")
                    self.dead = True  # the rest of the trace cannot run
                return
            self.emit(depth, f"if {cond}:")
            self.exit(depth + 1, k + 1, f"{it.pc + 4 if back else target:#x}")
        elif kind == "jal":
            target = (it.pc + f.imm) & M32
            if d:
                self.emit(depth, f"r{d} = {(it.pc + 4) & M32:#x}")
                self.known[d] = (it.pc + 4) & M32
            if self.loop and k == self.n - 1:
                self.emit(depth, "pass")  # the back edge: round the ``for`` loop again
            elif k + 1 < self.n and self.items[k + 1].pc == target:
                pass  # the trace follows the jump
            else:
                self.exit(depth, k + 1, f"{target:#x}")
        elif kind == "jalr":
            # Unpriv 2.5: target = (rs1 + imm) with bit 0 cleared; rd is written after rs1 is read.
            self.emit(depth, f"t = ({a} + {f.imm}) & 0xFFFFFFFE")
            self.emit(depth, "if t & 2:")
            self.inline_trap(depth + 1, k, INSTRUCTION_ADDRESS_MISALIGNED, "t")
            if d:
                self.emit(depth, f"r{d} = {(it.pc + 4) & M32:#x}")
            self.exit(depth, k + 1, "t")

    @staticmethod
    def cond(name: str, a: str, b: str) -> str:
        # signed compares against zero need no sign flip (bltz, bgez, bgtz, blez)
        if name == "blt" and b == "0":
            return f"{a} >= {_S}"
        if name == "bge" and b == "0":
            return f"{a} < {_S}"
        if name == "blt" and a == "0":
            return f"0 < {b} < {_S}"
        if name == "bge" and a == "0":
            return f"not 0 < {b} < {_S}"
        return _BRANCH[name].format(a=a, b=b)

    def inline_trap(self, depth: int, k: int, cause: int, tval: str) -> None:
        self.flush_before_call(depth, k)
        self.emit(depth, f"h.pc = {self.items[k].pc:#x}")
        self.emit(depth, f"h.take_trap({cause}, {tval})")
        self.emit(depth, f"return -({self.steps(k)} + 1)")

    def address(self, depth: int, a: str, imm: int) -> str:
        """Emit the (unreduced) address computation; returns the expression naming it."""
        if not _REG.search(a):
            self.emit(depth, f"a = {(int(a, 0) + imm) & M32:#x}")
            return "a"
        if imm == 0:
            return a
        self.emit(depth, f"a = {a} + {imm}")
        return "a"

    def reduce(self, depth: int, addr: str) -> None:
        self.emit(depth, "a &= 0xFFFFFFFF" if addr == "a" else f"a = {addr}")

    @staticmethod
    def read(view: str, addr: str, width: int) -> str:
        if width == 4:
            return f"{view}2[({addr} & 4095) >> 2]"
        if width == 2:
            return f"{view}1[({addr} & 4095) >> 1]"
        return f"{view}0[{addr} & 4095]"

    def load_value(self, depth: int, d: int, src: str, signed: bool, width: int) -> None:
        if not d:
            self.emit(depth, "pass")  # a load to x0 still needs its page (it may fault) but keeps nothing
            return
        self.emit(depth, f"r{d} = {src}")
        if signed:
            bit, ext = (0x8000, 0xFFFF0000) if width == 2 else (0x80, 0xFFFFFF00)
            self.emit(depth, f"if r{d} & {bit:#x}:")
            self.emit(depth + 1, f"r{d} |= {ext:#x}")

    def emit_load(self, depth: int, k: int, name: str, a: str, d: int, imm: int) -> None:
        """A load through the block's cached read page (``lk``: its base address, ``l0``/``l1``/``l2``:
        its views); on a miss, the hart's read cache refills it; past that, the slow path."""
        width, signed = _LOADS[name]
        addr = self.address(depth, a, imm)
        self.emit(depth, f"if {addr} & {_ALIGN_MASK[width]:#x} == lk:")
        self.load_value(depth + 1, d, self.read("l", addr, width), signed, width)
        self.emit(depth, "else:")
        self.reduce(depth + 1, addr)
        self.emit(depth + 1, "p = rc(a >> 12)")
        self.emit(depth + 1, "if p is None" + (f" or a & {width - 1}:" if width > 1 else ":"))
        self.writeback(depth + 2, self.written_before(k))
        desc = self.slow_desc(k, d, width, signed)
        call = f"LD(h, a, {'it' if self.loop else 0}, {desc})"
        self.emit(depth + 2, f"r{d} = {call}" if d else call)
        # a slow path may have changed the hart's caches (a walk, an eviction): look them up again
        self.emit(depth + 2, "lk = sk = -1")
        self.emit(depth + 1, "else:")
        self.emit(depth + 2, "lk = a & 0xFFFFF000; l0, l1, l2 = p")
        self.load_value(depth + 2, d, self.read("l", "a", width), signed, width)

    def emit_store(self, depth: int, k: int, name: str, a: str, b: str, imm: int) -> None:
        """A store through the block's cached write page (``sk``, ``s0``/``s1``/``s2``), as loads."""
        width = _STORES[name]
        value = b if width == 4 or b == "0" else f"{b} & {(1 << 8 * width) - 1:#x}"
        addr = self.address(depth, a, imm)
        self.emit(depth, f"if {addr} & {_ALIGN_MASK[width]:#x} == sk:")
        self.emit(depth + 1, f"{self.read('s', addr, width)} = {value}")
        self.emit(depth, "else:")
        self.reduce(depth + 1, addr)
        self.emit(depth + 1, "p = wc(a >> 12)")
        self.emit(depth + 1, "if p is None" + (f" or a & {width - 1}:" if width > 1 else ":"))
        self.writeback(depth + 2, self.written_before(k))
        desc = self.slow_desc(k, 0, width, False)
        self.emit(depth + 2, f"ST(h, a, {b}, {'it' if self.loop else 0}, {desc})")
        self.emit(depth + 2, "lk = sk = -1")
        self.emit(depth + 1, "else:")
        self.emit(depth + 2, "sk = a & 0xFFFFF000; s0, s1, s2 = p")
        self.emit(depth + 2, f"{self.read('s', 'a', width)} = {value}")

    # -- groups of accesses off one base register ----------------------------------------------
    def group_end(self, k: int) -> int:
        """If item ``k`` starts a group - at least two loads/stores off the same base register,
        with only computational items between them and no write to the base before the last
        one - return the index after its last access, else 0."""
        first = self.items[k]
        if first.kind not in ("load", "store") or first.f is None:
            return 0
        base = first.f.rs1
        if not base or base in self.known:
            return 0  # x0 or a constant address: the plain path already folds it
        accesses: list[tuple[int, int]] = []  # (offset, width)
        end = 0
        for j in range(k, self.n):
            it = self.items[j]
            f = it.f
            if it.kind in ("load", "store"):
                assert f is not None and it.ins is not None
                if f.rs1 != base:
                    break
                name = it.ins.name
                width = _LOADS[name][0] if it.kind == "load" else _STORES[name]
                trial = [*accesses, (f.imm, width)]
                lo = min(o for o, _w in trial)
                # every access must be aligned whenever the first address is aligned to the widest
                if any((o - lo) % w for o, w in trial) or max(o + w for o, w in trial) - lo > 4096:
                    break
                accesses = trial
                end = j + 1
                if _writes(it) == base:
                    break  # a load into the base register ends the group (its address used the old one)
            elif it.kind in ("alu", "nop"):
                if _writes(it) == base:
                    break
            else:
                break
        return end if len(accesses) >= 2 else 0

    def emit_group(self, depth: int, k: int, end: int) -> None:
        """Items ``k..end-1``: one check that every access of the group lies in the page both
        cached views (``lk``, ``sk``) hold and is aligned, then constant-offset indexing; when the
        check fails, each access goes its own way (:meth:`emit_load`, :meth:`emit_store`)."""
        items = self.items[k:end]
        acc = [it for it in items if it.kind in ("load", "store")]
        base = self.r(acc[0].f.rs1)  # type: ignore[union-attr]

        def width_of(it: _Item) -> int:
            assert it.ins is not None
            return _LOADS[it.ins.name][0] if it.kind == "load" else _STORES[it.ins.name]

        offs = [(it.f.imm, width_of(it)) for it in acc]  # type: ignore[union-attr]
        lo = min(o for o, _w in offs)
        span = max(o + w for o, w in offs) - lo
        widest = max(w for _o, w in offs)
        loads = any(it.kind == "load" for it in acc)
        stores = any(it.kind == "store" for it in acc)
        addr = self.address(depth, base, lo)  # the group's lowest address, unreduced
        keys = " == ".join(["lk"] * loads + [f"{addr} & {_ALIGN_MASK[widest]:#x}"] + ["sk"] * stores)
        # the page's offset of the lowest byte (go): the last byte must stay on the page
        widths = {w for _o, w in offs}
        if len(widths) == 1:  # one index, computed in the check (go is a multiple of the width)
            shift = widest.bit_length() - 1
            var = {4: "g2", 2: "g1", 1: "go"}[widest]
            index = f"({addr} & 4095) >> {shift}" if shift else f"{addr} & 4095"
            self.emit(depth, f"if {keys} and ({var} := {index}) <= {(4096 - span) >> shift}:")
        else:
            self.emit(depth, f"go = {addr} & 4095")
            self.emit(depth, f"if {keys} and go <= {4096 - span}:")
            if 4 in widths:
                self.emit(depth + 1, "g2 = go >> 2")
            if 2 in widths:
                self.emit(depth + 1, "g1 = go >> 1")
        saved = dict(self.known)
        for it in items:
            f = it.f
            assert f is not None and it.ins is not None
            if it.kind == "alu":
                self.alu(depth + 1, it.ins.name, it, f)
                continue
            if it.kind == "nop":
                continue
            width = width_of(it)
            c = (f.imm - lo) // width  # an exact multiple (see group_end)
            idx = {4: "g2", 2: "g1", 1: "go"}[width]
            idx = f"{idx} + {c}" if c else idx
            view = f"{width >> 1}[{idx}]"
            if it.kind == "load":
                signed = _LOADS[it.ins.name][1]
                self.load_value(depth + 1, f.rd, f"l{view}", signed, width)
                self.known.pop(f.rd, None)
            else:
                b = self.r(f.rs2)
                value = b if width == 4 or b == "0" else f"{b} & {(1 << 8 * width) - 1:#x}"
                self.emit(depth + 1, f"s{view} = {value}")
        after = self.known
        self.known = saved
        self.emit(depth, "else:")
        for j in range(k, end):
            self.item(depth + 1, j)
        assert self.known == after

    def emit_op(self, depth: int, k: int) -> None:
        """Run the interpreter's op for item ``k`` (always the last of the block)."""
        it = self.items[k]
        name = f"OP{k}"
        self.consts[name] = it.op
        self.flush_before_call(depth, k)
        self.emit(depth, "try:")
        self.emit(depth + 1, f"npc = {name}(h, x, {it.pc:#x})")
        self.trap_handler(depth, k, halt=True)
        self.emit(depth, f"cn[{it.ci}] += 1")
        self.emit(depth, "h.pc = npc")
        steps = f"{self.steps(k)} + 1"
        self.emit(depth, f"return -({steps})" if it.ci >= self.sync else f"return {steps}")

    # -- the function -------------------------------------------------------------------------
    def body(self, depth: int) -> None:
        """One pass over the items (a loop's body)."""
        k = 0
        while k < self.n:
            end = self.group_end(k)
            if end:
                self.emit_group(depth, k, end)
                k = end
                continue
            self.item(depth, k)
            if self.dead:
                break
            k += 1

    def induction(self) -> dict[int, int]:
        """A loop's induction registers: register -> step, for each register whose only write in
        the body is one ``addi r, r, c`` (c != 0)."""
        writers: dict[int, list[_Item]] = {}
        for it in self.items:
            w = _writes(it)
            if w:
                writers.setdefault(w, []).append(it)
        steps = {}
        for r, its in writers.items():
            (it, *more) = its
            f = it.f
            if (
                not more and f is not None and it.kind == "alu" and it.ins is not None
                and it.ins.name == "addi" and f.rs1 == r and f.imm
            ):  # fmt: skip
                steps[r] = f.imm
        return steps

    def source(self) -> str:
        items = self.items
        used: set[int] = set()
        for it in items:
            used.update(_reads(it))
        if self.loop:
            used.update(self.all_written)
        else:
            # load only registers read before this trace writes them
            used = set()
            written: set[int] = set()
            for it in items:
                used.update(r for r in _reads(it) if r not in written)
                written.add(_writes(it))
        used.discard(0)
        self.emit(0, "def blk(h, left):")
        self.emit(1, "x = h.x")
        memory = False
        if any(it.kind == "load" for it in items):
            self.emit(1, "rc = h.rcache.get")
            memory = True
        if any(it.kind == "store" for it in items):
            self.emit(1, "wc = h.wcache.get")
            memory = True
        for r in sorted(used):
            self.emit(1, f"r{r} = x[{r}]")
        depth = 1
        if memory:
            # the pages this block last loaded from / stored to (valid until a call out)
            self.emit(1, "lk = sk = -1")
            self.emit(1, "try:")
            depth = 2
        if self.loop:
            # ``it`` counts the iterations completed before the current one
            self.emit(depth, f"lim = left // {self.n}")
            steps = self.induction()
            if steps:
                # no induction register leaves 0..2**32-1 in the iterations the budget allows (each
                # moves one way), so a copy of the body without their masks gives the same values
                self.emit(depth, "if " + " and ".join(
                    f"r{r} + lim * {c} <= 0xFFFFFFFF" if c > 0 else f"r{r} + lim * {c} >= 0"
                    for r, c in sorted(steps.items())
                ) + ":")  # fmt: skip
                self.emit(depth + 1, "for it in range(lim):")
                saved = dict(self.known)
                self.unmasked = steps
                self.body(depth + 2)
                self.unmasked = {}
                self.known = saved
                self.dead = False
                self.emit(depth, "else:")
                self.emit(depth + 1, "for it in range(lim):")
                self.body(depth + 2)
            else:
                self.emit(depth, "for it in range(lim):")
                self.body(depth + 1)
        else:
            self.body(depth)
        last = items[-1]
        if self.loop:
            self.emit(depth, "it = lim")  # every iteration the budget allows went round
            self.known = {}
            self.exit(depth, 0, f"{items[0].pc:#x}")
        elif self.dead or last.kind in ("op", "jalr") or (last.kind == "jal" and self.end_pc is None):
            pass  # that item ended the block itself
        else:
            assert self.end_pc is not None
            self.exit(depth, self.n, f"{self.end_pc:#x}")
        if memory:
            self.emit(1, "except Stop as e:")  # a slow path left the block
            self.emit(2, "return e.n")
        return "\n".join(self.lines) + "\n"


def translate(table: InstructionTable, view: memoryview, ppn: int, pc: int) -> Block:
    """Translate the trace at virtual ``pc`` on the page whose 32-bit view is ``view``."""
    items, loop, end_pc = _trace(table, view, pc)
    em = _Emitter(items, loop, end_pc, table.sync_index, view)
    src = em.source()
    offsets = [it.pc & 0xFFF for it in items]
    lo, hi = min(offsets), max(offsets) + 4
    buf = view.obj
    assert isinstance(buf, bytearray)
    namespace: dict[str, Any] = dict(_GLOBALS)
    namespace.update(em.consts)
    code = compile(src, f"<block {pc:#010x}>", "exec")
    exec(code, namespace)  # noqa: S102 - our own generated source
    blk = Block(
        vpc=pc, view=view, buf=buf, ppn=ppn, lo=lo, hi=hi, code=bytes(buf[lo:hi]),
        length=len(items), loop=loop, source=src, fn=namespace["blk"],
    )  # fmt: skip
    for d in em.slow:
        d.block = blk
    return blk
