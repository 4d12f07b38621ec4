"""The binary translator: one guest-kernel basic block in, a rewritten block for the translation cache out.

VMware's classic monitor (Adams & Agesen, "A Comparison of Software and Hardware Techniques for x86
Virtualization", ASPLOS 2006, section 3.1) translates guest kernel code block by block, just before
it first runs, into a translation cache: *innocuous* instructions are copied ("IDENT"), pc-relative
ones are fixed up, and *sensitive* instructions become calls into the monitor that emulate them on
the virtual CPU. We do the same for RV32 (and for ISA profiles such as ``x86-like`` whose sensitive
instructions do not trap). Which instruction is sensitive is not decided here: the instruction
table's Popek-Goldberg class of each word is (``InstructionTable.classify``; privileged *or*
control-/behaviour-sensitive, so ``popf``/``smsw``/``sidt`` are caught although they never trap).

One guest basic block (at most :data:`MAX_BLOCK` instructions, never crossing a guest page) becomes:

==========================  ======================================================================
guest                       translation
==========================  ======================================================================
innocuous (ALU, load, ...)  the same word (loads and stores go through the shadow page tables)
``auipc rd, imm``           ``lui``/``addi`` of the value the guest would compute (``pc + imm``)
``fence.i``                 ``nop``: guest code stores already invalidate translations (watched pages)
``jal rd, off``             ``rd`` <- guest return address (``lui``/``addi``), then an exit to the target
``bCC rs1, rs2, off``       ``bCC rs1, rs2, +8`` / exit to the fall-through / exit to the target
``jalr rd, off(rs1)``       a callout: the monitor computes the guest target and finds its translation
sensitive or privileged     a callout: the monitor emulates the original word on the vCPU
end of page / block limit   an exit to the next guest pc
==========================  ======================================================================

An *exit* is one word: first an ``ecall`` the monitor treats as "continue at guest pc G" (it finds or
makes G's translation), later patched into ``jal x0, tc(G)`` (block chaining). A *callout* is an
``ecall`` too; the monitor tells them apart by the address (:class:`Callout` records per word).

Every emitted word has a guest pc in ``pcmap``: where the guest is if the host stops *before* that
word (a fault, an interrupt). Copied words map to their own guest pc; the words of an expansion map
to the guest instruction they implement (re-running it is harmless: it writes only ``rd`` with a
constant); an exit maps to the guest pc it continues at. So a fault in translated code is delivered
to the guest with the right ``sepc``, and any word can be replaced by a "stale" exit to its own
guest pc when the guest overwrites the code it came from.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from virtlevels.machine.isa.table import Instruction, InstructionTable, PgClass
from virtlevels_hypervisor.bt import encode

M32 = 0xFFFFFFFF
PAGE_MASK = 0xFFF
MAX_BLOCK = 32  # guest instructions per translated block
GROUP_WINDOW = 8  # how far a callout looks ahead for more sensitive instructions to take along

BRANCHES = frozenset(("beq", "bne", "blt", "bge", "bltu", "bgeu"))
#: Sensitive instructions after which nothing in the block is translated: they always leave the
#: straight line (trap, return, wait) or change the translation the rest would run under.
TERMINAL = frozenset(("ecall", "ebreak", "mret", "sret", "wfi", "sfence.vma", "hfence.vvma", "hfence.gvma"))

#: Instructions that only compute registers (Unpriv 2.4, 7.1): a callout may emulate them between
#: two sensitive instructions (never memory accesses: those must go through the shadow tables).
GROUPABLE = frozenset((
    "lui", "auipc", "addi", "slti", "sltiu", "xori", "ori", "andi", "slli", "srli", "srai", "add", "sub",
    "sll", "slt", "sltu", "xor", "srl", "sra", "or", "and", "mul", "mulh", "mulhsu", "mulhu", "div",
    "divu", "rem", "remu",
))  # fmt: skip

# Callout kinds.
EMULATE = "emulate"  # emulate the original word on the vCPU
EXIT = "exit"  # continue at guest pc ``gpc`` (patchable into a chained jal)
JALR = "jalr"  # an indirect jump: the monitor computes the guest target
STALE = "stale"  # the code this word came from was overwritten: re-translate from ``gpc``


@attrs.frozen
class Callout:
    """What an ``ecall`` word in the translation cache asks of the monitor."""

    kind: str
    gpc: int  # emulate/jalr: the guest instruction; exit/stale: the guest pc to continue at
    word: int = 0  # emulate/jalr: the original guest word
    name: str = ""  # the instruction's name (emulate), for statistics and docs
    terminal: bool = False  # emulate: nothing after it was translated (the monitor must exit)
    #: emulate: the instructions that follow in the same callout, as (guest pc, word, name): more
    #: sensitive ones, with the register-only instructions between them (one callout, not several)
    more: tuple[tuple[int, int, str], ...] = ()

    @property
    def steps(self) -> tuple[tuple[int, int, str], ...]:
        """Every instruction the callout stands for, in order."""
        return ((self.gpc, self.word, self.name), *self.more)


@attrs.define(eq=False)
class Translation:
    """One translated guest block, position-independent until it is placed in the cache."""

    gva: int  # guest virtual pc of its first instruction
    gpa: int  # guest physical address of that instruction
    words: list[int]
    pcmap: list[int]  # per word: the guest pc the host is at before running it
    callouts: dict[int, Callout]  # word index -> callout
    guest_instructions: int
    lo: int  # guest bytes [lo, hi) of the page it was translated from (page offsets)
    hi: int
    tc: int = -1  # its address in the translation cache once placed
    valid: bool = True
    chained_from: list[int] = attrs.field(factory=list)  # TC addresses of exits patched to jump here

    @property
    def gppn(self) -> int:
        return self.gpa >> 12

    @property
    def size(self) -> int:
        return 4 * len(self.words)

    def exits(self) -> list[tuple[int, int]]:
        """(word index, guest target) of each exit stub."""
        return [(i, c.gpc) for i, c in self.callouts.items() if c.kind == EXIT]


class _Builder:
    def __init__(self) -> None:
        self.words: list[int] = []
        self.pcmap: list[int] = []
        self.callouts: dict[int, Callout] = {}

    def emit(self, word: int, gpc: int) -> None:
        self.words.append(word)
        self.pcmap.append(gpc)

    def callout(self, callout: Callout, gpc: int) -> None:
        self.callouts[len(self.words)] = callout
        self.emit(encode.ECALL, gpc)

    def exit(self, target: int) -> None:
        self.callout(Callout(EXIT, target & M32), target & M32)


def translate_block(
    table: InstructionTable,
    read_word: Callable[[int], int],
    gva: int,
    gpa: int,
    max_block: int = MAX_BLOCK,
    monitored: Callable[[int], bool] | None = None,
) -> Translation:
    """Translate the guest block at virtual ``gva`` (physical ``gpa``).

    ``read_word(offset)`` returns the guest word at that byte offset of the block's page; the block
    never leaves the page (the next page may be mapped elsewhere, or not at all: the dispatcher
    translates it, with its own fetch checks, when execution gets there). ``monitored(word)`` names
    innocuous words the monitor wants as callouts anyway (the counters, when it virtualizes time)."""
    if gva & 3:
        raise ValueError(f"guest pc 0x{gva:08x} is not word-aligned")

    def classify(at: int) -> tuple[Instruction | None, str, bool]:
        w = read_word(at & PAGE_MASK)
        ins = table.lookup(w)
        pg = table.classify(w)
        assert isinstance(pg, PgClass)
        name = ins.name if ins is not None else "(illegal)"
        callout = ins is None or pg.privileged or pg.sensitive or (monitored is not None and monitored(w))
        return ins, name, callout

    b = _Builder()
    pc = gva
    count = 0
    page = gva & ~PAGE_MASK
    while True:
        if count >= max_block or pc & ~PAGE_MASK != page:
            b.exit(pc)
            break
        word = read_word(pc & PAGE_MASK)
        count += 1
        ins, name, callout = classify(pc)
        if callout:
            terminal = ins is None or name in TERMINAL
            more: list[tuple[int, int, str]] = []
            if not terminal and name != "ecall":
                more, terminal = _group(classify, read_word, pc, min(GROUP_WINDOW, max_block - count))
                count += len(more)
            b.callout(Callout(EMULATE, pc, word, name, terminal, tuple(more)), pc)
            if terminal:
                break
            pc = (more[-1][0] if more else pc) + 4
            continue
        assert ins is not None
        f = ins.fields(word)
        if name == "auipc":
            for w in encode.load_constant(f.rd, pc + f.imm) if f.rd else [encode.NOP]:
                b.emit(w, pc)
        elif name == "fence.i":
            b.emit(encode.NOP, pc)
        elif name == "jal":
            if f.imm & 3:  # a misaligned target: the guest's jal raises the exception (Unpriv 2.5)
                b.callout(Callout(EMULATE, pc, word, name, True), pc)
                break
            if f.rd:
                for w in encode.load_constant(f.rd, pc + 4):
                    b.emit(w, pc)
            b.exit(pc + f.imm)
            break
        elif name == "jalr":
            b.callout(Callout(JALR, pc, word, name, True), pc)
            break
        elif name in BRANCHES:
            if f.imm & 3:
                b.callout(Callout(EMULATE, pc, word, name, True), pc)
                break
            b.emit(encode.retarget_branch(word, 8), pc)
            b.exit(pc + 4)
            b.exit(pc + f.imm)
            break
        else:
            b.emit(word, pc)
        pc += 4
    lo = gva & PAGE_MASK
    hi = lo + 4 * count
    return Translation(
        gva=gva, gpa=gpa, words=b.words, pcmap=b.pcmap, callouts=b.callouts,
        guest_instructions=count, lo=lo, hi=hi,
    )  # fmt: skip


def _group(
    classify: Callable[[int], tuple[Instruction | None, str, bool]],
    read_word: Callable[[int], int],
    pc: int,
    window: int,
) -> tuple[list[tuple[int, int, str]], bool]:
    """The instructions after the callout at ``pc`` that one callout can take along: later sensitive
    ones within ``window`` instructions on this page, with the register-only ones between them (a
    trailing register-only run stays translated code). Returns them and whether the last one ends
    the block. The guest's ``ecall`` is never taken along: it is an SBI call, not an emulation."""
    taken: list[tuple[int, int, str]] = []
    pending: list[tuple[int, int, str]] = []
    at = pc + 4
    while len(taken) + len(pending) < window and at & PAGE_MASK:
        ins, name, callout = classify(at)
        step = (at, read_word(at & PAGE_MASK), name)
        if callout and ins is not None and name != "ecall":
            taken += [*pending, step]
            pending = []
            if name in TERMINAL:
                return taken, True
        elif ins is not None and name in GROUPABLE:
            pending.append(step)
        else:
            break
        at += 4
    return taken, False
