"""Register names (and, re-exported, CSR names) for the assembler and the disassembler.

Registers: Unprivileged ISA 20191213, chapter 25 "RISC-V Assembly Programmer's Handbook",
table 25.1 (ABI names). CSR names come from :mod:`virtlevels.machine.isa.csr_names`, the one
table the machine uses too.
"""

from __future__ import annotations

from virtlevels.machine.isa.csr_names import CSR_NAMES, CSRS

__all__ = ["ABI_NAMES", "CSRS", "CSR_NAMES", "REGISTERS"]

ABI_NAMES: tuple[str, ...] = (
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2",
    "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
    "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7",
    "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
)  # fmt: skip

REGISTERS: dict[str, int] = {name: i for i, name in enumerate(ABI_NAMES)}
REGISTERS.update({f"x{i}": i for i in range(32)})
REGISTERS["fp"] = 8  # Unprivileged 25.1: s0 doubles as the frame pointer
