"""A VS-mode guest under an HS-mode hypervisor written in assembly (programs_h/hext_guest.S), run by
both engines: demand G-stage paging from guest-page faults, an injected VS timer interrupt, a
virtual-instruction exit; the fast engine must match the interpreter exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hext_util import HX, hmachine

from virtlevels.machine.asm import assemble_file
from virtlevels.machine.machine import PhysicalMachine, RunResult

SOURCE = Path(__file__).parent / "programs_h" / "hext_guest.S"


def run(engine: str) -> tuple[PhysicalMachine, RunResult]:
    m = hmachine()
    m.load(assemble_file(SOURCE, encodings=HX))
    return m, m.run(max_instructions=20_000, engine=engine)


def state(m: PhysicalMachine) -> dict[str, Any]:
    h = m.harts[0]
    snap = h.snapshot()
    snap["mmu"].pop("hits")  # see test_engines_differential: slow-path lookups differ by design
    return snap


@pytest.mark.parametrize("engine", ["interp", "fast"])
def test_guest_runs_under_the_hypervisor(engine: str) -> None:
    m, result = run(engine)
    h = m.harts[0]
    assert result.status == "pass", (result, h.x[10])
    assert h.x[24] == 1  # s8: one virtual-instruction exit (WFI with VTW=1)
    assert h.x[25] == 1  # s9: one guest-page fault, mapped on demand
    assert result.traps["store_guest_page_fault"] == 1
    assert result.traps["virtual_instruction"] == 1
    assert result.traps["ecall_from_vs"] == 3  # inject, clear, exit
    assert result.traps["supervisor_timer_interrupt"] == 1  # delivered to VS-mode as STI
    assert result.cycles_by_category["virtual supervisor"] > 0
    assert h.mmu.gstage_refs > 0


def test_engines_agree_on_the_h_program() -> None:
    mi, ri = run("interp")
    mf, rf = run("fast")
    assert ri == rf
    assert state(mi) == state(mf)
    assert mi.memory.read_bytes(0x8000_0000, 0x20000) == mf.memory.read_bytes(0x8000_0000, 0x20000)
