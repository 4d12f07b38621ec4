"""The instruction table: encodings joined with semantics and Popek-Goldberg classes.

One table drives decoding, execution, cost (each instruction's cost class) and classification,
as py65's opcode table drives its 6502. Decoding is by the ``match``/``mask`` columns of
:mod:`encodings`; profiles and plugins add rows with :meth:`InstructionTable.extend` (for
example an ``x86-like`` profile that adds sensitive but unprivileged instructions).

Popek and Goldberg ("Formal Requirements for Virtualizable Third Generation Architectures",
CACM 17(7), 1974) sort instructions into:

* **privileged** - traps when executed in user mode (we read "user mode" as any mode below M
  for M-only state, and as U for S-level state; ecall and ebreak trap everywhere, so they count);
* **control-sensitive** - changes the configuration of resources (mode, translation, interrupts);
* **behaviour-sensitive** - its effect depends on that configuration (the current mode,
  translation settings);
* **innocuous** - neither sensitive kind.

Theorem 1 holds for an architecture when every sensitive instruction is privileged;
:meth:`InstructionTable.sensitive_unprivileged` lists the instructions that break it (none for
RV32; the x86-like profile adds some).
CSR instructions are classified by the CSR number in the word: the user counters are innocuous,
every other CSR is privileged and sensitive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from virtlevels.cost import INSTRUCTION_CLASSES
from virtlevels.machine.csr import USER_COUNTERS
from virtlevels.machine.isa.encodings import ENCODINGS, H_ENCODINGS, Encoding
from virtlevels.machine.isa.semantics import (
    PURE,
    SEMANTICS,
    Fields,
    Op,
    SemanticFn,
    illegal,
    next_instruction,
)

if TYPE_CHECKING:
    from virtlevels.machine.hart import Hart

#: Cost classes whose instructions may change what the engine must re-check (privilege,
#: translation, interrupt enables): the engine ends its inner loop after them. They come last
#: in the class order so that the check is one comparison. Classes added by extensions are
#: appended after them and are treated the same way.
SYNC_CLASSES = ("fence", "csr", "system")


@attrs.frozen
class PgClass:
    """Popek-Goldberg classification of an instruction."""

    privileged: bool = False
    control_sensitive: bool = False
    behaviour_sensitive: bool = False

    @property
    def sensitive(self) -> bool:
        return self.control_sensitive or self.behaviour_sensitive

    @property
    def innocuous(self) -> bool:
        return not self.sensitive

    def names(self) -> tuple[str, ...]:
        out = []
        if self.privileged:
            out.append("privileged")
        if self.control_sensitive:
            out.append("control-sensitive")
        if self.behaviour_sensitive:
            out.append("behaviour-sensitive")
        if self.innocuous:
            out.append("innocuous")
        return tuple(out)


INNOCUOUS = PgClass()
_PRIV_SENSITIVE = PgClass(True, True, True)

# Classification of the standard rows (everything not named here is innocuous).
STANDARD_PG: dict[str, PgClass] = {
    # Always trap; the cause depends on the current mode, so ecall is behaviour-sensitive.
    "ecall": PgClass(privileged=True, behaviour_sensitive=True),
    "ebreak": PgClass(privileged=True),
    # Priv 3.3.2: xRET changes mode and interrupt enables; illegal below its mode.
    "mret": _PRIV_SENSITIVE,
    "sret": _PRIV_SENSITIVE,
    # Priv 3.3.3: WFI is illegal in U-mode (when S exists) and stalls the hart.
    "wfi": PgClass(privileged=True, control_sensitive=True),
    # Priv 4.2.1: SFENCE.VMA changes what translations are in effect.
    "sfence.vma": PgClass(privileged=True, control_sensitive=True),
    # H extension (Priv 8.3): HLV/HSV read or write guest memory as the guest would see it
    # (behaviour depends on vsatp/hgatp/SPVP); the HFENCEs change which translations are in effect.
    **{n: PgClass(privileged=True, behaviour_sensitive=True) for n in (
        "hlv.b", "hlv.bu", "hlv.h", "hlv.hu", "hlv.w", "hlvx.hu", "hlvx.wu", "hsv.b", "hsv.h", "hsv.w")},
    "hfence.vvma": PgClass(privileged=True, control_sensitive=True),
    "hfence.gvma": PgClass(privileged=True, control_sensitive=True),
    # CSR rows: the general case; classify(word) refines by CSR number.
    **{n: _PRIV_SENSITIVE for n in ("csrrw", "csrrs", "csrrc", "csrrwi", "csrrsi", "csrrci")},
}

CSR_INSTRUCTIONS = frozenset({"csrrw", "csrrs", "csrrc", "csrrwi", "csrrsi", "csrrci"})


def _classify_csr(word: int) -> PgClass:
    return INNOCUOUS if (word >> 20) in USER_COUNTERS else _PRIV_SENSITIVE


@attrs.frozen
class Instruction:
    """One row of the table: encoding, semantics, classification."""

    encoding: Encoding
    semantics: SemanticFn
    pg: PgClass = INNOCUOUS
    pure: bool = False  # writes only rd: rd = x0 makes it a HINT (Unpriv 2.9)
    classify_word: Callable[[int], PgClass] | None = None

    @property
    def name(self) -> str:
        return self.encoding.name

    @property
    def cls(self) -> str:
        return self.encoding.cls

    def matches(self, word: int) -> bool:
        return word & self.encoding.mask == self.encoding.match

    def fields(self, word: int) -> Fields:
        return Fields.decode(word, self.encoding.fmt)

    def bind(self, word: int) -> Op:
        """The op for this word (operands decoded once)."""
        f = self.fields(word)
        if self.pure and f.rd == 0:
            return next_instruction
        return self.semantics(f)

    def execute(self, hart: Hart, word: int) -> None:
        """Run this instruction once on ``hart`` at its pc (a Trap propagates to the caller)."""
        hart.pc = self.bind(word)(hart, hart.x, hart.pc)

    def classify(self, word: int | None = None) -> PgClass:
        if word is not None and self.classify_word is not None:
            return self.classify_word(word)
        return self.pg


#: The ISA profile whose table includes the H extension rows (and whose harts implement H).
HYPERVISOR_PROFILE = "rv32imah"


def standard_instructions() -> list[Instruction]:
    """The RV32IMA + Zicsr + Zifencei + privileged rows, one per encoding."""
    return _instructions(ENCODINGS)


def hypervisor_instructions() -> list[Instruction]:
    """The H extension rows (Priv 8.3): HLV, HLVX, HSV, HFENCE.VVMA, HFENCE.GVMA."""
    return _instructions(H_ENCODINGS)


def _instructions(encodings: Iterable[Encoding]) -> list[Instruction]:
    out = []
    for enc in encodings:
        sem = SEMANTICS.get(enc.name)
        if sem is None:  # pragma: no cover - guarded by a test
            raise LookupError(f"no semantics for {enc.name}")
        out.append(
            Instruction(
                enc,
                sem,
                STANDARD_PG.get(enc.name, INNOCUOUS),
                pure=enc.name in PURE,
                classify_word=_classify_csr if enc.name in CSR_INSTRUCTIONS else None,
            )
        )
    return out


DecodeEntry = tuple[Op, int]  # (op, cost-class index)


@attrs.define(eq=False)
class InstructionTable:
    """Decoder and classifier over a list of instructions.

    ``decode(word)`` returns ``(op, class_index)`` from a cache keyed by the instruction word, so
    self-modifying code needs no invalidation in the interpreter. ``classes`` lists cost classes
    by index (the hart counts retired instructions per index).
    """

    profile: str = "rv32ima"
    instructions: list[Instruction] = attrs.field(factory=standard_instructions)
    classes: list[str] = attrs.field(factory=lambda: list(INSTRUCTION_CLASSES))
    cache: dict[int, DecodeEntry] = attrs.field(factory=dict, repr=False)
    cache_limit: int = 1 << 16
    _by_opcode: dict[int, list[Instruction]] = attrs.field(factory=dict, repr=False)
    _other: list[Instruction] = attrs.field(factory=list, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.profile == HYPERVISOR_PROFILE and not self.hypervisor:
            self.instructions.extend(hypervisor_instructions())
        for name in SYNC_CLASSES:  # sync classes last, in a fixed order
            self.classes.remove(name)
            self.classes.append(name)
        self._index()

    @property
    def hypervisor(self) -> bool:
        """Whether the H extension's instructions are in the table (its harts then implement H)."""
        return any(ins.encoding.ext == "H" for ins in self.instructions)

    @property
    def sync_index(self) -> int:
        """Instructions whose class index is at least this end the engine's inner loop."""
        return self.classes.index(SYNC_CLASSES[0])

    def _index(self) -> None:
        self._by_opcode = {}
        self._other = []
        # Most specific first, so a fully fixed encoding (ecall) wins over a wider one (csrrw...).
        for ins in sorted(self.instructions, key=lambda i: -bin(i.encoding.mask).count("1")):
            if ins.encoding.mask & 0x7F == 0x7F:
                self._by_opcode.setdefault(ins.encoding.match & 0x7F, []).append(ins)
            else:
                self._other.append(ins)
        self.cache.clear()

    def extend(self, instructions: Iterable[Instruction], profile: str | None = None) -> None:
        """Add instructions (a plugin's ISA extension, a profile); new cost classes are appended."""
        names = {i.name for i in self.instructions}
        for ins in instructions:
            if ins.name in names:
                raise ValueError(f"instruction {ins.name!r} is already in the table")
            names.add(ins.name)
            self.instructions.append(ins)
            if ins.cls not in self.classes:
                self.classes.append(ins.cls)
        if profile is not None:
            self.profile = profile
        self._index()

    def lookup(self, word: int) -> Instruction | None:
        """The instruction whose encoding matches ``word``, or None (an illegal instruction)."""
        for ins in self._by_opcode.get(word & 0x7F, ()):
            if word & ins.encoding.mask == ins.encoding.match:
                return ins
        for ins in self._other:
            if word & ins.encoding.mask == ins.encoding.match:
                return ins
        return None

    def decode(self, word: int) -> DecodeEntry:
        entry = self.cache.get(word)
        if entry is not None:
            return entry
        ins = self.lookup(word)
        if ins is None:
            entry = (illegal(word), len(self.classes) - 1)
        else:
            entry = (ins.bind(word), self.classes.index(ins.cls))
        if len(self.cache) >= self.cache_limit:
            self.cache.clear()  # a bound on memory for programs that execute data
        self.cache[word] = entry
        return entry

    def by_name(self, name: str) -> Instruction:
        for ins in self.instructions:
            if ins.name == name:
                return ins
        raise KeyError(name)

    def classify(self, word: int | None = None) -> Mapping[str, PgClass] | PgClass:
        """With a word: that word's classification (illegal words are privileged: they trap).
        Without: every instruction's general classification, by name."""
        if word is None:
            return {ins.name: ins.pg for ins in self.instructions}
        ins = self.lookup(word)
        if ins is None:
            return PgClass(privileged=True)
        return ins.classify(word)

    def sensitive_unprivileged(self) -> list[str]:
        """Popek-Goldberg Theorem 1: the names of sensitive instructions that are not privileged
        (empty means a trap-and-emulate monitor can be built for this instruction set)."""
        return [ins.name for ins in self.instructions if ins.pg.sensitive and not ins.pg.privileged]
