"""Popek-Goldberg classification of a random instruction set (hardware level).

The ISA is a random subset of RV32IMA plus some rows of the x86-like profile; the solver builds
that very instruction table and runs :func:`virtlevels.machine.isa.analysis.analyze` on it with
the empirical check (each instruction executed in U, S and M mode on fresh machines)."""

from __future__ import annotations

from typing import Any

from virtlevels.exercises.base import Answer, Problem, rng

NAME = "pg-classify"
PRIVILEGED_POOL = ("csrrw", "csrrs", "sret", "mret", "wfi", "sfence.vma", "ecall")
INNOCUOUS_POOL = ("add", "addi", "lw", "sw", "beq", "jal", "lui", "mul", "amoswap.w", "xor")
#: what the x86-like rows do, said without giving away their class (the student reasons it out)
X86_DOES: dict[str, str] = {
    "popf": "rs1 -> sstatus.SIE in S/M mode; in U-mode the write is silently ignored (models POPF)",
    "pushf": "rd <- sstatus.SIE/SPIE/SPP and the current privilege, in any mode (models PUSHF)",
    "smsw": "rd <- mstatus[15:0], in any mode (models SMSW)",
    "sgdt": "rd <- satp, in any mode (models SGDT)",
    "sidt": "rd <- stvec, in any mode (models SIDT)",
    "sldt": "rd <- satp.ASID, in any mode (models SLDT)",
    "str": "rd <- sscratch, in any mode (models STR)",
    "rdcs": "rd <- the current privilege level (models MOV r,CS)",
    "verr": "rd <- 1 if the CSR is readable at the current privilege (models VERR)",
    "verw": "rd <- 1 if the CSR is writable at the current privilege (models VERW)",
}


def _choose(seed: int) -> list[str]:
    r = rng(NAME, seed)
    names = r.sample(PRIVILEGED_POOL, r.randint(2, 3)) + r.sample(INNOCUOUS_POOL, r.randint(2, 4))
    names += r.sample(sorted(X86_DOES), r.randint(0, 3))
    r.shuffle(names)
    return names


def table_for_seed(seed: int) -> Any:
    """The random instruction table of ``seed`` (rows taken from RV32IMA + x86-like)."""
    from virtlevels.machine.isa.analysis import table_for
    from virtlevels.machine.isa.table import InstructionTable

    full = table_for("x86-like")
    return InstructionTable(profile=f"random-{seed}", instructions=[full.by_name(n) for n in _choose(seed)])


def generate(seed: int) -> Problem:
    names = _choose(seed)
    lines = [
        f"A machine has this instruction set (seed {seed}): RISC-V rows behave as in the RISC-V",
        "specifications; the custom rows behave as described.",
        "",
    ]
    for n in names:
        lines.append(f"  {n:12s} {X86_DOES.get(n, 'standard RISC-V (Unpriv / Priv spec)')}")
    lines += [
        "",
        "For each instruction say whether it is privileged, control-sensitive, behaviour-sensitive,",
        "user-sensitive or innocuous (Popek & Goldberg 1974). Then: does Theorem 1 hold (can a",
        "trap-and-emulate VMM be built)? Does Theorem 3 hold (a hybrid VMM)? Name the violators.",
    ]
    return Problem(NAME, seed, "\n".join(lines), {"instructions": names})


def solve(seed: int) -> Answer:
    from virtlevels.machine.isa.analysis import analyze

    analysis = analyze(table_for_seed(seed), empirical=True)
    rows = {}
    lines = []
    for row in analysis.rows:
        seen = row.empirical.classes if row.empirical is not None else row.declared
        rows[row.name] = list(seen.names())
        lines.append(f"  {row.name:12s} {', '.join(seen.names())}")
    lines += ["", analysis.theorem1.line(), analysis.theorem3.line()]
    data = {
        "classes": rows,
        "theorem1": analysis.theorem1.holds,
        "theorem1_violators": analysis.theorem1.names,
        "theorem3": analysis.theorem3.holds,
        "theorem3_violators": analysis.theorem3.names,
        "mismatches": {k: list(v) for k, v in analysis.mismatches.items()},
    }
    return Answer(NAME, seed, "\n".join(lines), data,
                  "virtlevels.machine.isa.analysis.analyze(table, empirical=True): each instruction run "
                  "in U, S and M mode under two privileged configurations")  # fmt: skip
