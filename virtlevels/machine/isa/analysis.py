"""Popek-Goldberg analysis of an instruction table: classes, Theorems 1 and 3, and an empirical check.

Popek and Goldberg ("Formal Requirements for Virtualizable Third Generation Architectures",
CACM 17(7), 1974) call an instruction

* **privileged** if it traps when executed in user mode (we read U-mode as user mode; ecall and
  ebreak trap in every mode and count as privileged, as :mod:`table` says);
* **control-sensitive** if it can change the configuration of the machine's resources: the mode,
  translation, trap setup, interrupt enables, whether the hart runs (any CSR, the privilege, the
  WFI state, the TLB);
* **behaviour-sensitive** if its effect depends on that configuration: on the current mode or
  on privileged state;
* **user-sensitive** (for Theorem 3) if it is sensitive even when executed in user mode: run in
  U-mode it changes privileged state, or its effect depends on privileged state other than the
  mode. Depending on the mode alone does not count, because under a hybrid monitor virtual user
  code runs in real user mode and sees "user" either way. For a privileged instruction, whose
  U-mode execution traps, user-sensitive means sensitive: it attempts the sensitive act and the
  trap hands it to the monitor.

**Theorem 1**: a virtual machine monitor (trap-and-emulate) can be constructed if the set of
sensitive instructions is a subset of the privileged ones. **Theorem 3**: a *hybrid* monitor,
which interprets everything the guest runs in virtual supervisor mode and runs only virtual user
mode directly, can be constructed if the set of user-sensitive instructions is a subset of the
privileged ones. Robin and Irvine (USENIX Security 2000) showed that the Pentium breaks
Theorem 1 with seventeen sensitive, unprivileged instructions; :mod:`x86like` models them.

Declared classes come from the table (:class:`~virtlevels.machine.isa.table.PgClass`; a row
may use :class:`ExplainedPgClass` to declare user-sensitivity and say why). The *empirical*
check runs one representative encoding of each instruction on fresh machines in U, S and M mode
under two privileged configurations that differ in what a guest OS sets and a VMM virtualizes
(status enables and previous-mode fields, trap vectors, scratch, exception PCs and causes,
satp's ASID and root with translation off) and observes:

* privileged: it traps in U-mode under both configurations;
* control-sensitive: some run that does not trap changes privileged state (a CSR, the privilege,
  the WFI state, the TLB);
* behaviour-sensitive: under one configuration, runs in different modes that do not trap differ
  in effect (registers, next pc, memory, or the change of privileged state), or in one mode the
  result (registers, next pc, memory) differs between the configurations, or traps differ in cause;
* user-sensitive: for one that traps in U, observed sensitive; otherwise a U-mode run changes
  privileged state or the U-mode results differ between the configurations.

Registers, memory and pending interrupts are the same in every run: the experiment varies only
the mode and privileged state, as the definitions do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels.machine.isa import encodings as E
from virtlevels.machine.isa.table import Instruction, InstructionTable, PgClass
from virtlevels.machine.trap import LOAD, Trap, cause_name

if TYPE_CHECKING:
    from virtlevels.cost import CostModel
    from virtlevels.machine.hart import Hart
    from virtlevels.world import World

M32 = 0xFFFFFFFF
U_MODE, S_MODE, M_MODE = 0, 1, 3
MODES = (U_MODE, S_MODE, M_MODE)
MODE_LETTER = {U_MODE: "U", S_MODE: "S", M_MODE: "M"}
BASE_PROFILE = "rv32ima"
CLASS_NAMES = ("privileged", "control-sensitive", "behaviour-sensitive", "user-sensitive", "innocuous")

POPEK_GOLDBERG = (
    "G. J. Popek and R. P. Goldberg, Formal Requirements for Virtualizable Third Generation "
    "Architectures, CACM 17(7), 1974"
)
ROBIN_IRVINE = (
    "J. S. Robin and C. E. Irvine, Analysis of the Intel Pentium's Ability to Support a Secure "
    "Virtual Machine Monitor, USENIX Security 2000"
)


@attrs.frozen
class ExplainedPgClass(PgClass):
    """A :class:`PgClass` that also declares user-sensitivity (Theorem 3) and says why.

    ``user_sensitive=None`` means "as sensitive": the conservative reading for a row that says
    nothing. ``models`` names the instruction of another architecture the row imitates."""

    user_sensitive: bool | None = None
    reason: str = ""
    models: str = ""


@attrs.frozen
class Classes:
    """One instruction's Popek-Goldberg classes (declared or observed)."""

    privileged: bool
    control_sensitive: bool
    behaviour_sensitive: bool
    user_sensitive: bool

    @property
    def sensitive(self) -> bool:
        return self.control_sensitive or self.behaviour_sensitive

    @property
    def innocuous(self) -> bool:
        return not self.sensitive

    def marks(self) -> dict[str, bool]:
        """Class name -> membership, in :data:`CLASS_NAMES` order."""
        return dict(zip(CLASS_NAMES, (self.privileged, self.control_sensitive, self.behaviour_sensitive,
                                      self.user_sensitive, self.innocuous), strict=True))  # fmt: skip

    def names(self) -> tuple[str, ...]:
        return tuple(name for name, member in self.marks().items() if member)


def declared_classes(pg: PgClass) -> Classes:
    """The classes a row declares; user-sensitivity per the rules in the module docstring."""
    explicit = getattr(pg, "user_sensitive", None)
    if pg.privileged or explicit is None:
        user = pg.sensitive
    else:
        user = bool(explicit) and pg.sensitive
    return Classes(pg.privileged, pg.control_sensitive, pg.behaviour_sensitive, user)


# -- representative encodings --------------------------------------------------------------------
PROBE_RD, PROBE_RS1, PROBE_RS2 = 5, 6, 7
PROBE_CSR = 0x140  # sscratch: a supervisor CSR, so the CSR rows show their general class

# Operand bits per format (Unpriv 2.2-2.3): rd=x5, rs1=x6, rs2=x7, immediates 8 (a word offset,
# a short forward branch), shamt 3, uimm 5. Only the bits a row leaves free are used.
_REGS = PROBE_RD << 7 | PROBE_RS1 << 15 | PROBE_RS2 << 20
_OPERAND_BITS: dict[str, int] = {
    E.R: _REGS,
    E.I: PROBE_RD << 7 | PROBE_RS1 << 15 | 8 << 20,
    E.SHIFT: PROBE_RD << 7 | PROBE_RS1 << 15 | 3 << 20,
    E.S: 8 << 7 | PROBE_RS1 << 15 | PROBE_RS2 << 20,
    E.B: 4 << 8 | PROBE_RS1 << 15 | PROBE_RS2 << 20,  # imm[4:1] = 4: offset 8
    E.U: PROBE_RD << 7 | 0x12345 << 12,
    E.J: PROBE_RD << 7 | 4 << 21,  # imm[10:1] = 4: offset 8
    E.CSR: PROBE_RD << 7 | PROBE_RS1 << 15 | PROBE_CSR << 20,
    E.CSRI: PROBE_RD << 7 | 5 << 15 | PROBE_CSR << 20,
    E.AMO: _REGS,
    E.LR: _REGS,
    E.FENCE: 0xFF << 20,  # fence iorw, iorw
    E.SYS: 0,
    E.SFENCE: 0,  # sfence.vma zero, zero: every address, every ASID
}


def representative(ins: Instruction) -> int:
    """An encoding of ``ins`` with the probe operands in its free bits (the match alone if it
    takes no operands)."""
    enc = ins.encoding
    if not enc.syntax:
        return enc.match
    return enc.match | (_OPERAND_BITS.get(enc.fmt, _REGS) & ~enc.mask & M32)


# -- the analysis --------------------------------------------------------------------------------
@attrs.frozen
class Empirical:
    """What running one encoding showed."""

    classes: Classes
    user_trap: str | None  # the cause of the U-mode trap, None if it ran
    evidence: tuple[str, ...]
    mismatches: tuple[str, ...] = ()  # class names where observation and declaration differ


@attrs.frozen
class Row:
    """One instruction of the analysed table."""

    name: str
    ext: str
    word: int  # the representative encoding (its declared class is the row's)
    declared: Classes
    reason: str = ""
    models: str = ""
    empirical: Empirical | None = None

    def why(self, theorem: int) -> str:
        """Why this unprivileged instruction breaks ``theorem``."""
        if self.reason:
            return self.reason
        kinds = []
        if self.declared.control_sensitive:
            kinds.append("changes privileged state")
        if self.declared.behaviour_sensitive:
            kinds.append("depends on the mode or privileged state")
        where = "in user mode " if theorem == 3 else ""
        return f"{' and '.join(kinds)} {where}but does not trap in user mode"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "ext": self.ext, "word": f"0x{self.word:08x}",
            "declared": self.declared.marks(), "models": self.models, "reason": self.reason,
        }  # fmt: skip
        if self.empirical is not None:
            e = self.empirical
            out["empirical"] = {
                "classes": e.classes.marks(), "user_trap": e.user_trap, "evidence": list(e.evidence),
                "mismatches": list(e.mismatches),
            }  # fmt: skip
        return out


@attrs.frozen
class Violation:
    name: str
    why: str
    models: str = ""


@attrs.frozen
class Verdict:
    """A theorem's condition for one instruction table."""

    theorem: int
    holds: bool
    violators: tuple[Violation, ...]

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.violators]

    def line(self) -> str:
        """One line: ``Theorem 1: holds — ...`` or ``Theorem 1: fails — ...: names``."""
        if self.theorem == 1:
            if self.holds:
                return ("Theorem 1: holds — every sensitive instruction is privileged: "
                        "a trap-and-emulate VMM can be built")  # fmt: skip
            return f"Theorem 1: fails — sensitive but unprivileged: {', '.join(self.names)}"
        if self.holds:
            return ("Theorem 3: holds — every user-sensitive instruction is privileged: "
                    "a hybrid VMM can be built")  # fmt: skip
        return f"Theorem 3: fails — user-sensitive but unprivileged: {', '.join(self.names)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "theorem": self.theorem, "holds": self.holds, "summary": self.line(),
            "violators": [{"name": v.name, "models": v.models, "why": v.why} for v in self.violators],
        }  # fmt: skip


@attrs.frozen
class Analysis:
    """The classes of every instruction of a table and the verdicts of Theorems 1 and 3."""

    profile: str
    rows: tuple[Row, ...]
    theorem1: Verdict
    theorem3: Verdict
    empirical: bool = False

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def mismatches(self) -> dict[str, tuple[str, ...]]:
        """Instruction -> the classes where the empirical check disagrees with the table."""
        return {r.name: r.empirical.mismatches for r in self.rows if r.empirical and r.empirical.mismatches}

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "references": [POPEK_GOLDBERG, ROBIN_IRVINE],
            "instructions": [r.to_dict() for r in self.rows],
            "theorem1": self.theorem1.to_dict(),
            "theorem3": self.theorem3.to_dict(),
            "empirical": (
                {"checked": len(self.rows), "mismatches": {k: list(v) for k, v in self.mismatches.items()}}
                if self.empirical else None
            ),
        }  # fmt: skip


def analyze(
    table: InstructionTable,
    *,
    empirical: bool = False,
    representatives: Mapping[str, int] | None = None,
    cost: CostModel | None = None,
) -> Analysis:
    """Classify every instruction of ``table`` and decide Theorems 1 and 3.

    With ``empirical``, also run each instruction's representative encoding (``representatives``
    overrides it by name) on fresh machines and compare what it did with what the table says.
    """
    reps = dict(representatives or {})
    prober = _Prober(table, cost) if empirical else None
    rows = []
    for ins in table.instructions:
        word = reps.get(ins.name, representative(ins))
        pg = ins.classify(word)
        declared = declared_classes(pg)
        emp = prober.observe(ins, word, declared) if prober is not None else None
        rows.append(Row(ins.name, ins.encoding.ext, word, declared, getattr(pg, "reason", ""),
                        getattr(pg, "models", ""), emp))  # fmt: skip
    unprivileged = [r for r in rows if not r.declared.privileged]
    t1 = [Violation(r.name, r.why(1), r.models) for r in unprivileged if r.declared.sensitive]
    t3 = [Violation(r.name, r.why(3), r.models) for r in unprivileged if r.declared.user_sensitive]
    return Analysis(table.profile, tuple(rows), Verdict(1, not t1, tuple(t1)), Verdict(3, not t3, tuple(t3)),
                    empirical)  # fmt: skip


# -- profiles ------------------------------------------------------------------------------------
def profile_names(world: World) -> list[str]:
    """The base profile and every registered ISA profile (extensions marked ``profile``)."""
    return [BASE_PROFILE] + [n for n, ext in world.registry.isa_extensions.items() if ext.profile]


def table_for(name: str, world: World | None = None, extensions: Sequence[str] = ()) -> InstructionTable:
    """A fresh instruction table: RV32IMA, or a registered profile, plus registered add-ons."""
    from virtlevels.machine.isa import table as table_module

    builtin = {BASE_PROFILE, getattr(table_module, "HYPERVISOR_PROFILE", BASE_PROFILE)}  # rv32imah: H rows
    table = InstructionTable(profile=name) if name in builtin else InstructionTable()
    names = ([] if name in builtin else [name]) + list(extensions)
    if not names:
        return table
    if world is None:
        from virtlevels.world import World

        world = World(0, entry_points=False)
    known = world.registry.isa_extensions
    for ext_name in names:
        ext = known.get(ext_name)
        if ext is None:
            choices = ", ".join([BASE_PROFILE, *sorted(known)])
            raise ConfigError(f"unknown ISA profile or extension {ext_name!r} (known: {choices})")
        ext.apply(table)
        if ext.profile:
            table.profile = ext_name
    return table


# -- the empirical check -------------------------------------------------------------------------
CODE = 0x8000_0000  # where the instruction is said to be
DATA = 0x8000_0C00  # x6 (rs1) points here: loads, stores and AMOs stay in RAM
DATA_BYTES = 64
PT_ROOT = 0x8000_F000  # a page table used only to put one entry in the TLB
_SIE, _SPIE, _MIE, _MPIE, _SPP = 1 << 1, 1 << 5, 1 << 3, 1 << 7, 1 << 8
_SUM, _MXR = 1 << 18, 1 << 19


def _mpp(mode: int) -> int:
    return mode << 11


# Two privileged configurations (CsrFile fields). satp keeps MODE=Bare: translation stays off so
# loads and stores behave alike in every mode, while its ASID and root differ.
CONFIGS: dict[str, dict[str, int]] = {
    "A": {
        "mstatus": _SPIE | _SPP | _MPIE | _mpp(S_MODE), "stvec": 0x8000_2000, "mtvec": 0x8000_4000,
        "sepc": 0x8000_6000, "mepc": 0x8000_8000, "sscratch": 0x1234_5670, "mscratch": 0x0BAD_F00D,
        "scause": 8, "mcause": 2, "stval": 0x100, "mtval": 0x200, "satp": 1 << 22 | 0x80010,
    },
    "B": {
        "mstatus": _SIE | _MIE | _mpp(U_MODE) | _SUM | _MXR, "stvec": 0x8000_3000, "mtvec": 0x8000_5000,
        "sepc": 0x8000_7000, "mepc": 0x8000_9000, "sscratch": 0x89AB_CDEF, "mscratch": 0xFEED_FACE,
        "scause": 13, "mcause": 5, "stval": 0x300, "mtval": 0x400, "satp": 2 << 22 | 0x80020,
    },
}  # fmt: skip


@attrs.frozen
class _Run:
    mode: int
    config: str
    trap: tuple[int, int] | None
    result: tuple[Any, ...]  # registers, next pc, memory window (None when it trapped)
    delta: tuple[tuple[str, Any], ...]  # privileged state that changed: (name, new value)


class _Prober:
    """Runs single instructions on fresh machines sharing ``table``."""

    def __init__(self, table: InstructionTable, cost: CostModel | None) -> None:
        from virtlevels.cost import load_profile

        self.table = table
        self.cost = cost if cost is not None else load_profile("default")

    def run(self, word: int, mode: int, config: str) -> _Run:
        from virtlevels.machine.machine import PhysicalMachine

        machine = PhysicalMachine(table=self.table, profile=self.cost, with_clint=False, name="pg-probe")
        hart = machine.harts[0]
        self._prepare(machine, hart, config)
        hart.set_priv(mode)
        hart.pc = CODE
        before = _privileged_state(hart)
        op, _ci = self.table.decode(word)
        try:
            npc = op(hart, hart.x, hart.pc)
        except Trap as trap:
            return _Run(mode, config, (trap.cause, trap.tval & M32), (), ())
        after = _privileged_state(hart)
        delta = tuple((k, v) for k, v in after.items() if before.get(k) != v)
        result = (tuple(hart.x), npc & M32, machine.memory.read_bytes(DATA, DATA_BYTES))
        return _Run(mode, config, None, result, delta)

    @staticmethod
    def _prepare(machine: Any, hart: Hart, config: str) -> None:
        for i in range(1, 32):
            hart.x[i] = (0x0101_0101 * i) ^ 0x5A5A_0000
        hart.x[PROBE_RS1] = DATA
        machine.memory.write_bytes(DATA, bytes((7 * i + 3) & 0xFF for i in range(DATA_BYTES)))
        _fill_tlb(machine, hart)
        csr = hart.csr
        for name, value in CONFIGS[config].items():
            setattr(csr, name, value)
        hart.context_changed()

    def observe(self, ins: Instruction, word: int, declared: Classes) -> Empirical:
        runs = [self.run(word, mode, cfg) for mode in MODES for cfg in CONFIGS]
        user = [r for r in runs if r.mode == U_MODE]
        ran = [r for r in runs if r.trap is None]
        trapped = [r for r in runs if r.trap is not None]
        privileged = all(r.trap is not None for r in user)
        control = any(r.delta for r in ran)
        by_mode, by_config = _dependence(ran)
        behaviour = by_mode or by_config or len({r.trap for r in trapped}) > 1
        if privileged:
            user_sensitive = control or behaviour
        else:
            user_sensitive = any(r.delta for r in user) or len({r.result for r in user}) > 1
        observed = Classes(privileged, control, behaviour, user_sensitive)
        evidence = _evidence(runs, ran)
        if self.table.lookup(word) is not ins:
            evidence.insert(0, f"0x{word:08x} decodes to another row")
        said = declared.marks()
        mismatches = tuple(name for name, seen in observed.marks().items() if seen != said[name])
        utrap = user[0].trap
        return Empirical(observed, cause_name(utrap[0]) if utrap else None, tuple(evidence), mismatches)


def _privileged_state(hart: Hart) -> dict[str, Any]:
    state: dict[str, Any] = dict(hart.csr.snapshot())
    state["privilege"] = hart.priv
    state["wfi"] = hart.wfi
    state["tlb"] = len(hart.mmu.tlb)
    return state


def _fill_tlb(machine: Any, hart: Hart) -> None:
    """Put one translation in the TLB (a 4 MiB Sv32 megapage mapping CODE to itself), so a fence
    that drops translations shows as a change of privileged state."""
    pte = ((CODE >> 12) << 10) | 0xCF  # V R W X A D (Priv 4.3.1): a leaf at level 1
    machine.memory.write(PT_ROOT + (CODE >> 22) * 4, 4, pte)
    satp = 1 << 31 | PT_ROOT >> 12  # Sv32, ASID 0: used for this walk only, never written to satp
    hart.mmu.translate(CODE, LOAD, S_MODE, 0, satp)


def _evidence(runs: Iterable[_Run], ran: list[_Run]) -> list[str]:
    out = []
    traps: dict[int, set[str]] = {}
    for r in runs:
        if r.trap is not None:
            traps.setdefault(r.mode, set()).add(cause_name(r.trap[0]))
    for mode in MODES:
        if mode in traps:
            out.append(f"traps in {MODE_LETTER[mode]} ({', '.join(sorted(traps[mode]))})")
    changed = sorted({k for r in ran for k, _v in r.delta})
    if changed:
        out.append("changes " + ", ".join(changed))
    by_mode, by_config = _dependence(ran)
    if by_mode:
        out.append("result depends on the mode")
    if by_config:
        out.append("result depends on privileged state")
    return out


def _dependence(ran: list[_Run]) -> tuple[bool, bool]:
    """(the effect differs between modes under one configuration, the result differs between
    configurations in one mode). Across modes the whole effect counts, privileged-state changes
    included (popf); across configurations only the result does, since the changes themselves are
    relative to different starting states."""
    effects: dict[str, set[Any]] = {}
    results: dict[int, set[Any]] = {}
    for r in ran:
        effects.setdefault(r.config, set()).add((r.result, r.delta))
        results.setdefault(r.mode, set()).add(r.result)
    return any(len(v) > 1 for v in effects.values()), any(len(v) > 1 for v in results.values())
