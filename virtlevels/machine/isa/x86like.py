"""The ``x86-like`` ISA profile: RV32IMA plus sensitive but unprivileged instructions.

Classic x86 could not be virtualized by trap-and-emulate because some instructions that read or
change privileged state do not trap when run outside ring 0. Robin and Irvine ("Analysis of the
Intel Pentium's Ability to Support a Secure Virtual Machine Monitor", USENIX Security 2000,
section 4) list seventeen of them in two groups: *sensitive register instructions* (SGDT, SIDT,
SLDT, SMSW, PUSHF, POPF) and *protection system references* (LAR, LSL, VERR, VERW, POP, PUSH,
CALL, JMP, INT n, RET, STR, MOV with segment registers). This profile adds their RISC-V
analogues, so that ``virtlevels isa analyze --profile x86-like`` shows Popek-Goldberg's
Theorem 1 failing for the same reasons:

==========  ============  ====================================================================
ours        x86 original  what it does here
==========  ============  ====================================================================
popf rs1    POPF          sstatus.SIE <- rs1[1] in S and M mode; in U-mode the change is
                          silently dropped (x86: IF is kept when CPL > IOPL), no trap
pushf rd    PUSHF         rd <- sstatus.{SIE,SPIE,SPP} | privilege << 12 (x86: EFLAGS with IF
                          and IOPL in bits 12-13)
smsw rd     SMSW          rd <- mstatus[15:0] (x86: the machine status word, CR0[15:0])
sgdt rd     SGDT          rd <- satp, the root of the memory-descriptor tables (x86: GDTR)
sidt rd     SIDT          rd <- stvec, the trap vector (x86: IDTR, the interrupt table)
sldt rd     SLDT          rd <- satp.ASID, the current address space (x86: the LDT selector)
str rd      STR           rd <- sscratch, the per-task pointer a kernel keeps there (x86: TR)
rdcs rd     MOV r,CS      rd <- the current privilege, 0 U / 1 S / 3 M (x86: CS.RPL = CPL,
            PUSH CS       also seen by PUSH CS and far CALL/RET)
verr rd,c   VERR, LAR     rd <- 1 if CSR c may be read at the current privilege, else 0
verw rd,c   VERW, LSL     rd <- 1 if CSR c may be written at the current privilege, else 0
==========  ============  ====================================================================

Not modelled: far CALL/JMP/RET and INT n through gates, and POP/MOV into segment registers —
their x86 problem is segment-descriptor privilege checks, which RISC-V has no counterpart for.

Encodings use the RISC-V *custom-0* (0x0B) and *custom-1* (0x2B) major opcodes (Unpriv 19.1,
table 19.1: reserved for custom extensions, never used by standard ones), selected by funct3;
unused operand fields are fixed to zero, so every other word stays illegal. All rows have the
``csr`` cost class, which ends the engine's inner loop: popf can enable an interrupt.

Every instruction reads the *real* hart state. That is the point: a guest kernel run
deprivileged in U-mode under trap-and-emulate gets the host's answers and no trap lets the VMM
substitute the virtual ones. With the H extension, as for the CSR instructions (Priv 8.2), the
supervisor state these read or write is the VS copy when V=1 (vsstatus, vsatp, vstvec,
vsscratch): hardware assistance gives the guest its own copy of the state, as VT-x's guest-state
area does for SGDT/SIDT/SMSW/PUSHF/POPF.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from virtlevels.machine.csr import (
    MSTATUS_SIE,
    MSTATUS_SPIE,
    MSTATUS_SPP,
    SATP_ASID_MASK,
    SATP_ASID_SHIFT,
    VS_SWAP,
)
from virtlevels.machine.isa import encodings as E
from virtlevels.machine.isa.analysis import ExplainedPgClass
from virtlevels.machine.isa.encodings import Encoding
from virtlevels.machine.isa.semantics import Fields, Op, SemanticFn
from virtlevels.machine.isa.table import Instruction, InstructionTable
from virtlevels.registry import IsaExtension

if TYPE_CHECKING:
    from virtlevels.machine.hart import Hart

NAME = "x86-like"
CUSTOM_0, CUSTOM_1 = 0x0B, 0x2B
U_MODE = 0
SSTATUS = 0x100
#: Bits of sstatus that pushf reports (x86 EFLAGS: IF and friends).
FLAGS_MASK = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP
#: Where pushf puts the current privilege (x86 EFLAGS.IOPL is bits 12-13).
FLAGS_PRIV_SHIFT = 12

# Fixed bits per operand syntax: what is not an operand must be zero.
_MASK_RS1 = 0xFFF07FFF  # imm, rd, funct3, opcode fixed: "popf rs1"
_MASK_RD = 0xFFFFF07F  # imm, rs1, funct3, opcode fixed: "pushf rd"
_MASK_RD_CSR = 0x000FF07F  # rs1, funct3, opcode fixed: "verr rd, csr"


def _row(name: str, opcode: int, funct3: int, fmt: str, mask: int, syntax: str) -> Encoding:
    return Encoding(name, fmt, opcode | funct3 << 12, mask, syntax, "csr", NAME)


# -- semantics (the Fields/Op conventions of semantics.py) ---------------------------------------
def popf(f: Fields) -> Op:
    rs1 = f.rs1

    def op(h: Hart, x: list[int], pc: int) -> int:
        # x86 POPF with CPL > IOPL leaves IF unchanged and raises no fault (Intel SDM vol. 2, POPF):
        # here U-mode plays that part. Written through sstatus so its WARL rules apply.
        if h.priv != U_MODE:
            csr = h.csr
            num = VS_SWAP[SSTATUS] if h.virt else SSTATUS  # V=1: vsstatus (Priv 8.2)
            csr.write(num, (csr.read(num) & ~MSTATUS_SIE) | (x[rs1] & MSTATUS_SIE))
        return pc + 4

    return op


def _read_rd(get: Callable[[Hart], int]) -> SemanticFn:
    """An instruction that writes one value read from the hart into rd, and does nothing else."""

    def build(f: Fields) -> Op:
        rd = f.rd

        def op(h: Hart, x: list[int], pc: int) -> int:
            x[rd] = get(h) & 0xFFFFFFFF  # pure: rd = x0 is a HINT, handled by the table
            return pc + 4

        return op

    return build


def _verify(write: bool) -> SemanticFn:
    def build(f: Fields) -> Op:
        rd, num = f.rd, f.csr

        def op(h: Hart, x: list[int], pc: int) -> int:
            # VERR/VERW answer "may this privilege access it?" in ZF instead of faulting.
            x[rd] = 1 if h.csr.check_access(num, h.priv, write) else 0
            return pc + 4

        return op

    return build


def _status(h: Hart) -> int:
    return h.csr.vsstatus if h.virt else h.csr.mstatus


def _satp(h: Hart) -> int:
    return h.csr.vsatp if h.virt else h.csr.satp


def _pushf(h: Hart) -> int:
    return (_status(h) & FLAGS_MASK) | h.priv << FLAGS_PRIV_SHIFT


def _smsw(h: Hart) -> int:
    return _status(h) & 0xFFFF


def _sgdt(h: Hart) -> int:
    return _satp(h)


def _sidt(h: Hart) -> int:
    return h.csr.vstvec if h.virt else h.csr.stvec


def _sldt(h: Hart) -> int:
    return (_satp(h) >> SATP_ASID_SHIFT) & SATP_ASID_MASK


def _str(h: Hart) -> int:
    return h.csr.vsscratch if h.virt else h.csr.sscratch


def _rdcs(h: Hart) -> int:
    return h.priv


def _reads_state(models: str, what: str, user: bool) -> ExplainedPgClass:
    if user:
        why = "in U-mode too, so guest code (kernel or user) sees the host's value, not the virtual one"
    else:
        why = "a guest kernel run deprivileged sees U-mode (in user mode the answer is the real one)"
    return ExplainedPgClass(behaviour_sensitive=True, user_sensitive=user, models=models,
                            reason=f"reads {what} without trapping: {why}")


PG: dict[str, ExplainedPgClass] = {
    "popf": ExplainedPgClass(
        control_sensitive=True, behaviour_sensitive=True, user_sensitive=False, models="POPF",
        reason="sets sstatus.SIE in S and M mode, silently drops the change in U-mode without trapping: "
        "a deprivileged guest kernel's interrupt enable/disable never reaches the VMM",
    ),
    "pushf": _reads_state("PUSHF", "sstatus.SIE/SPIE/SPP and the current privilege", True),
    "smsw": _reads_state("SMSW", "mstatus[15:0]", True),
    "sgdt": _reads_state("SGDT", "satp (the page-table root)", True),
    "sidt": _reads_state("SIDT", "stvec (the trap vector)", True),
    "sldt": _reads_state("SLDT", "satp.ASID", True),
    "str": _reads_state("STR", "sscratch", True),
    "rdcs": _reads_state("MOV r,CS / PUSH CS", "the current privilege", False),
    "verr": _reads_state("VERR / LAR", "whether a CSR is readable at the privilege", False),
    "verw": _reads_state("VERW / LSL", "whether a CSR is writable at the privilege", False),
}  # fmt: skip

_ROWS: tuple[tuple[Encoding, SemanticFn, bool], ...] = (
    (_row("popf", CUSTOM_0, 0, E.I, _MASK_RS1, "rs1"), popf, False),
    (_row("pushf", CUSTOM_0, 1, E.I, _MASK_RD, "rd"), _read_rd(_pushf), True),
    (_row("smsw", CUSTOM_0, 2, E.I, _MASK_RD, "rd"), _read_rd(_smsw), True),
    (_row("sgdt", CUSTOM_0, 3, E.I, _MASK_RD, "rd"), _read_rd(_sgdt), True),
    (_row("sidt", CUSTOM_0, 4, E.I, _MASK_RD, "rd"), _read_rd(_sidt), True),
    (_row("sldt", CUSTOM_0, 5, E.I, _MASK_RD, "rd"), _read_rd(_sldt), True),
    (_row("str", CUSTOM_0, 6, E.I, _MASK_RD, "rd"), _read_rd(_str), True),
    (_row("rdcs", CUSTOM_0, 7, E.I, _MASK_RD, "rd"), _read_rd(_rdcs), True),
    (_row("verr", CUSTOM_1, 0, E.CSR, _MASK_RD_CSR, "rd, csr"), _verify(False), True),
    (_row("verw", CUSTOM_1, 1, E.CSR, _MASK_RD_CSR, "rd, csr"), _verify(True), True),
)

#: The encodings this profile adds (pass ``ENCODINGS + x86like.ENCODINGS`` to the assembler).
ENCODINGS: tuple[Encoding, ...] = tuple(enc for enc, _sem, _pure in _ROWS)


def instructions() -> list[Instruction]:
    """The rows this profile adds to RV32IMA, with their declared Popek-Goldberg classes."""
    return [Instruction(enc, sem, PG[enc.name], pure=pure) for enc, sem, pure in _ROWS]


def apply(table: InstructionTable) -> None:
    """Add the x86-like rows to ``table`` (the IsaExtension's ``apply``)."""
    table.extend(instructions(), profile=NAME)


EXTENSION = IsaExtension(
    NAME,
    "RV32IMA plus sensitive, unprivileged instructions modelled on Robin & Irvine's x86 list "
    "(popf, pushf, smsw, sgdt, sidt, sldt, str, rdcs, verr, verw): not virtualizable by trap-and-emulate",
    apply,
    profile=True,
)
