"""Guest code to Python source: the code generator of the fast engine (see :mod:`.fast`).

The generated function is ``blk(h, left) -> steps`` (negative steps: it stopped at a sync point,
where the run loop checks interrupts). Its shape, for a loop of L instructions::

    def blk(h, left):
        x = h.x; rc = h.rcache.get; wc = h.wcache.get
        r5 = x[5]; r6 = x[6]                 # guest registers the block uses, as locals
        lim = left // L                      # whole iterations the budget allows
        for it in range(lim):
            r5 = (r5 + 1) & 0xFFFFFFFF       # addi x5, x5, 1
            a = (r6 + 8) & 0xFFFFFFFF        # lw x7, 8(x6): the hart's page cache, inline
            p = rc(a >> 12)
            if p is None or a & 3:
                ...                          # flush counters, write back, h.load_slow(...)
            else:
                r7 = p[2][(a & 4095) >> 2]
            if not (r5 != r7):               # bne x5, x7, head: the back edge
                cn = h.counts; cn[0] += it * 1 + 1; ...; x[5] = r5; x[7] = r7
                h.pc = 0x8000000c; return it * 3 + 3
        it = lim                             # the budget ran out at the loop head
        ...

Retired instructions are counted per cost class only at exits (``counts[c] += it * k + j``, the
constants precomputed). Before any call that can observe the hart (a slow memory path, an
interpreter op) the counters and modified registers are made exact; a Trap raised there is
turned into trap entry with the faulting instruction's pc as epc and only the instructions
before it retired (a precise trap).
"""

from __future__ import annotations

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

_GLOBALS: dict[str, Any] = {
    "Trap": Trap,
    "HaltRequest": HaltRequest,
    "div_signed": sem.div_signed,
    "div_unsigned": sem.div_unsigned,
    "rem_signed": sem.rem_signed,
    "rem_unsigned": sem.rem_unsigned,
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


class _Emitter:
    """Writes the source of one block."""

    def __init__(self, items: list[_Item], loop: bool, end_pc: int | None, sync: int) -> None:
        self.items = items
        self.loop = loop
        self.end_pc = end_pc
        self.sync = sync
        self.n = len(items)
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        # prefix[k]: class -> count of items[:k]
        self.prefix: list[dict[int, int]] = [{}]
        for it in items:
            d = dict(self.prefix[-1])
            d[it.ci] = d.get(it.ci, 0) + 1
            self.prefix.append(d)
        self.all_written = sorted({_writes(it) for it in items} - {0})

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def r(n: int) -> str:
        return f"r{n}" if n else "0"

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
        if self.loop:
            return self.all_written
        return sorted({_writes(it) for it in self.items[:k]} - {0})

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

    def after_slow(self, depth: int, k: int, reg: int) -> None:
        """After a slow memory path: stop if the code page left the fetch cache or was written."""
        it = self.items[k]
        self.emit(depth, f"if h.xcache.get({it.pc >> 12:#x}) is not VIEW or not B.valid:")
        self.emit(depth + 1, f"cn[{it.ci}] += 1")
        if reg:
            self.emit(depth + 1, f"x[{reg}] = r{reg}")
        self.emit(depth + 1, f"h.pc = {it.pc + 4:#x}")
        self.emit(depth + 1, f"return {self.steps(k)} + 1")
        for line in self.count_lines(k, "-"):
            self.emit(depth, line)

    # -- instructions -------------------------------------------------------------------------
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
            if name == "lui":
                self.emit(depth, f"r{d} = {f.imm & M32:#x}")
            elif name == "auipc":
                self.emit(depth, f"r{d} = {(it.pc + f.imm) & M32:#x}")
            elif name in _ALU_IMM:
                expr = _ALU_IMM[name].format(a=a, i=f.imm, u=f.imm & M32, f=(f.imm & M32) ^ 0x80000000)
                self.emit(depth, f"r{d} = {expr}")
            else:
                self.emit(depth, f"r{d} = {_ALU_REG[name].format(a=a, b=b)}")
        elif kind == "load":
            self.emit_load(depth, k, name, a, d, f.imm)
        elif kind == "store":
            self.emit_store(depth, k, name, a, b, f.imm)
        elif kind == "branch":
            target = (it.pc + f.imm) & M32
            cond = _BRANCH[name].format(a=a, b=b)
            if self.loop and k == self.n - 1 and target == self.items[0].pc:
                # the back edge: taken goes round the ``for`` loop again, not taken leaves
                self.emit(depth, f"if not ({cond}):")
                self.exit(depth + 1, k + 1, f"{it.pc + 4:#x}")
            else:
                self.emit(depth, f"if {cond}:")
                self.exit(depth + 1, k + 1, f"{target:#x}")
        elif kind == "jal":
            target = (it.pc + f.imm) & M32
            if d:
                self.emit(depth, f"r{d} = {(it.pc + 4) & M32:#x}")
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

    def inline_trap(self, depth: int, k: int, cause: int, tval: str) -> None:
        self.flush_before_call(depth, k)
        self.emit(depth, f"h.pc = {self.items[k].pc:#x}")
        self.emit(depth, f"h.take_trap({cause}, {tval})")
        self.emit(depth, f"return -({self.steps(k)} + 1)")

    def address(self, depth: int, a: str, imm: int) -> None:
        if a == "0":
            self.emit(depth, f"a = {imm & M32:#x}")
        else:
            self.emit(depth, f"a = ({a} + {imm}) & 0xFFFFFFFF")

    def emit_load(self, depth: int, k: int, name: str, a: str, d: int, imm: int) -> None:
        width, signed = _LOADS[name]
        self.address(depth, a, imm)
        self.emit(depth, "p = rc(a >> 12)")
        cond = "p is None" + (f" or a & {width - 1}" if width > 1 else "")
        self.emit(depth, f"if {cond}:")
        self.flush_before_call(depth + 1, k)
        self.emit(depth + 1, "try:")
        self.emit(depth + 2, f"{f'r{d}' if d else 'v'} = h.load_slow(a, {width}, {signed})")
        self.trap_handler(depth + 1, k, halt=False)
        self.after_slow(depth + 1, k, d)
        if not d:
            return  # a load to x0 still accesses memory (and may fault), but keeps nothing
        self.emit(depth, "else:")
        if width == 4:
            self.emit(depth + 1, f"r{d} = p[2][(a & 4095) >> 2]")
        elif width == 2:
            self.emit(depth + 1, f"r{d} = p[1][(a & 4095) >> 1]")
        else:
            self.emit(depth + 1, f"r{d} = p[0][a & 4095]")
        if signed:
            bit, ext = (0x8000, 0xFFFF0000) if width == 2 else (0x80, 0xFFFFFF00)
            self.emit(depth + 1, f"if r{d} & {bit:#x}:")
            self.emit(depth + 2, f"r{d} |= {ext:#x}")

    def emit_store(self, depth: int, k: int, name: str, a: str, b: str, imm: int) -> None:
        width = _STORES[name]
        self.address(depth, a, imm)
        self.emit(depth, "p = wc(a >> 12)")
        cond = "p is None" + (f" or a & {width - 1}" if width > 1 else "")
        self.emit(depth, f"if {cond}:")
        self.flush_before_call(depth + 1, k)
        self.emit(depth + 1, "try:")
        self.emit(depth + 2, f"h.store_slow(a, {width}, {b})")
        self.trap_handler(depth + 1, k, halt=True)
        self.after_slow(depth + 1, k, 0)
        self.emit(depth, "else:")
        if width == 4:
            self.emit(depth + 1, f"p[2][(a & 4095) >> 2] = {b}")
        elif width == 2:
            self.emit(depth + 1, f"p[1][(a & 4095) >> 1] = {b} & 0xFFFF")
        else:
            self.emit(depth + 1, f"p[0][a & 4095] = {b} & 0xFF")

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
        if any(it.kind == "load" for it in items):
            self.emit(1, "rc = h.rcache.get")
        if any(it.kind == "store" for it in items):
            self.emit(1, "wc = h.wcache.get")
        for r in sorted(used):
            self.emit(1, f"r{r} = x[{r}]")
        depth = 1
        if self.loop:
            # ``it`` counts the iterations completed before the current one
            self.emit(1, f"lim = left // {self.n}")
            self.emit(1, "for it in range(lim):")
            depth = 2
        for k in range(self.n):
            self.item(depth, k)
        last = items[-1]
        if self.loop:
            self.emit(1, "it = lim")  # every iteration the budget allows went round
            self.exit(1, 0, f"{items[0].pc:#x}")
        elif last.kind in ("op", "jalr") or (last.kind == "jal" and self.end_pc is None):
            pass  # that item ended the block itself
        else:
            assert self.end_pc is not None
            self.exit(depth, self.n, f"{self.end_pc:#x}")
        return "\n".join(self.lines) + "\n"


def translate(table: InstructionTable, view: memoryview, ppn: int, pc: int) -> Block:
    """Translate the trace at virtual ``pc`` on the page whose 32-bit view is ``view``."""
    items, loop, end_pc = _trace(table, view, pc)
    em = _Emitter(items, loop, end_pc, table.sync_index)
    src = em.source()
    offsets = [it.pc & 0xFFF for it in items]
    lo, hi = min(offsets), max(offsets) + 4
    buf = view.obj
    assert isinstance(buf, bytearray)
    namespace: dict[str, Any] = dict(_GLOBALS)
    namespace.update(em.consts)
    namespace["VIEW"] = view
    code = compile(src, f"<block {pc:#010x}>", "exec")
    exec(code, namespace)  # noqa: S102 - our own generated source
    blk = Block(
        vpc=pc, view=view, buf=buf, ppn=ppn, lo=lo, hi=hi, code=bytes(buf[lo:hi]),
        length=len(items), loop=loop, source=src, fn=namespace["blk"],
    )  # fmt: skip
    namespace["B"] = blk
    return blk
