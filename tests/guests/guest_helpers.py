"""Shared helpers for the guest-software tests: engines, booting teachos, counting privileged ops."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from virtlevels.guests import boot_teachos, build_teachos
from virtlevels.machine.board import virt_machine
from virtlevels.machine.machine import PhysicalMachine, RunResult

S_MODE = 1


def _fast_available() -> bool:
    try:
        importlib.import_module("virtlevels.machine.engines.fast")
    except ImportError:
        return False
    return True


ENGINES = [
    "interp",
    pytest.param("fast", marks=pytest.mark.skipif(not _fast_available(), reason="no fast engine yet")),
]


def run_teachos(
    programs: list[Any], *, paravirt: bool = False, engine: str = "interp", limit: int = 3_000_000,
    machine: PhysicalMachine | None = None, **build: Any,
) -> RunResult:
    image = build_teachos(programs, paravirt=paravirt, **build)
    m = machine if machine is not None else virt_machine()
    boot_teachos(m, image)
    return m.run(limit, engine=engine)


class PrivilegedCounter:
    """A machine tracer counting the privileged instructions executed in S-mode, by name.

    "Privileged" is the instruction table's Popek-Goldberg class (CSR instructions on anything
    but the user counters, sret, wfi, sfence.vma, mret); ecall and ebreak trap everywhere and
    are the hypercall mechanism itself, so they are not counted.
    """

    def __init__(self, machine: PhysicalMachine) -> None:
        self.table = machine.table
        self.counts: dict[str, int] = {}

    def instruction(self, hart: Any, pc: int, word: int) -> None:
        if hart.priv != S_MODE:
            return
        insn = self.table.lookup(word)
        if insn is None or insn.name in ("ecall", "ebreak"):
            return
        if insn.classify(word).privileged:
            self.counts[insn.name] = self.counts.get(insn.name, 0) + 1

    def trap(self, *args: Any) -> None:
        pass
