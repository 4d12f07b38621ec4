"""Counting VM exits for a small guest program under trap-and-emulate and hardware assistance.

The program is an S-mode guest kernel loop (assembled with the project's assembler, started by
the SBI firmware) mixing ALU instructions with supervisor CSR accesses. The solver runs it
under both techniques through the hypervisor backend found in the registry
(``registry.backends["hypervisor"]``); without that plugin it predicts the exits from the
instruction table's Popek-Goldberg classes (each privileged instruction executed in the
deprivileged guest traps once; the final SBI shutdown exits under both) and says so."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from virtlevels.exercises.base import Answer, Problem, registry_backend, rng

NAME = "exit-count"
TECHNIQUES = ("trap", "hw")
ALU = ("addi t0, t0, 3", "add t1, t1, t0", "xor t2, t2, t1", "slli t3, t0, 2", "mul t4, t0, t1")
PRIV = ("csrr t1, sscratch", "csrw sscratch, t0", "csrr t2, sstatus", "csrr t3, sepc", "csrw stval, t1")


def program(seed: int) -> tuple[int, list[str]]:
    r = rng(NAME, seed)
    body = [r.choice(ALU) for _ in range(r.randint(2, 5))] + [r.choice(PRIV) for _ in range(r.randint(1, 3))]
    r.shuffle(body)
    return r.randint(2, 6), body


def source(iterations: int, body: list[str]) -> str:
    lines = ["    .text", "    .globl _start", "_start:", f"    li s0, {iterations}", "loop:"]
    lines += [f"    {b}" for b in body]
    lines += ["    addi s0, s0, -1", "    bnez s0, loop",
              # SBI SRST shutdown (SBI 2.0 chapter 10): the guest's only way out.
              "    li a7, 0x53525354", "    li a6, 0", "    li a0, 0", "    li a1, 0",
              "    ecall", "1:  j 1b"]  # fmt: skip
    return "\n".join(lines) + "\n"


def generate(seed: int) -> Problem:
    n, body = program(seed)
    text = (f"This guest kernel runs in virtual S-mode on one vCPU:\n\n{source(n, body)}\n"
            "How many VM exits does it cause (a) under trap-and-emulate (the guest runs deprivileged in\n"
            "U-mode, shadow page tables) and (b) under hardware-assisted virtualization (RISC-V H\n"
            "extension, guest in VS-mode)? Give the exits by reason.")  # fmt: skip
    return Problem(NAME, seed, text, {"iterations": n, "body": body})


def privileged_count(body: list[str]) -> int:
    """How many of ``body``'s instructions the instruction table classes as privileged."""
    from virtlevels.machine.asm import assemble
    from virtlevels.machine.isa.table import InstructionTable

    table = InstructionTable()
    count = 0
    for line in body:
        word = int.from_bytes(assemble(f"    {line}\n", base=0).segments[0].data[:4], "little")
        count += bool(table.classify(word).privileged)  # type: ignore[union-attr]
    return count


def _run(backend: Any, path: str, technique: str) -> dict[str, int]:
    from virtlevels.world import World

    world = World(0)
    dom = backend.define(
        world, {"name": "exercise", "technique": technique, "kernel": {"type": "elf", "path": path}}
    )
    dom.start()
    result = dom.run()
    dom.destroy()
    return dict(sorted(result.traps.items()))


def solve(seed: int) -> Answer:
    n, body = program(seed)
    backend = registry_backend("hypervisor")
    if backend is None:
        priv = n * privileged_count(body)
        exits = {"trap": {"privileged": priv, "sbi": 1}, "hw": {"sbi": 1}}
        method = ("predicted from the instruction table's privileged class (the hypervisor plugin is not "
                  "installed): each privileged instruction traps once under trap-and-emulate")  # fmt: skip
    else:
        from virtlevels.guests.builder import build_firmware
        from virtlevels.guests.layout import KERNEL_BASE
        from virtlevels.machine.asm import assemble
        from virtlevels.machine.elf.writer import write_elf
        from virtlevels.machine.image import Image

        fw = build_firmware()
        kernel = assemble(source(n, body), base=KERNEL_BASE)
        image = Image(fw.segments + kernel.segments, fw.entry, {**fw.symbols, **kernel.symbols}, source=NAME)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "guest.elf")
            with open(path, "wb") as f:
                f.write(write_elf(image))
            exits = {t: _run(backend, path, t) for t in TECHNIQUES}
        method = "run under each technique by the hypervisor backend (registry.backends['hypervisor'])"
    lines = []
    for t in TECHNIQUES:
        parts = ", ".join(f"{k} {v}" for k, v in exits[t].items())
        lines.append(f"  {t:5s}: {sum(exits[t].values())} exits ({parts})")
    lines.append(
        "  (privileged: a deprivileged CSR access trapped and was emulated; page_fault: a shadow page-table"
    )
    lines.append("   fill; sbi: the guest's SBI shutdown call)")
    return Answer(NAME, seed, "\n".join(lines), {"exits": exits}, method)
