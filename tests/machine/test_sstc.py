"""Sstc: stimecmp drives STIP (time >= stimecmp) once menvcfg.STCE is set."""

from __future__ import annotations

import pytest

from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.csr import STIP
from virtlevels.machine.memmap import NATIVE_BASE
from virtlevels.machine.trap import YieldToHost

STIMECMP, STIMECMPH, MENVCFGH, MCOUNTEREN, MIP = 0x14D, 0x15D, 0x31A, 0x306, 0x344


def s_mode_program(stce: bool, delay_ticks: int) -> str:
    # M-mode: delegate the S timer, enable Sstc (or not), go to S. S-mode: arm stimecmp, enable the
    # interrupt, spin. The S handler records scause and time, then stops the machine.
    return f"""
    .text
_start:
    li t0, 0x20
    csrw mideleg, t0
    li t0, {0x8000_0000 if stce else 0}
    csrw menvcfgh, t0
    li t0, 2
    csrw mcounteren, t0       # TM: S may use time and stimecmp
    la t0, handler
    csrw stvec, t0
    li t0, 0x1800
    csrc mstatus, t0
    li t0, 0x0800
    csrs mstatus, t0          # MPP = S
    la t0, smode
    csrw mepc, t0
    mret
smode:
    csrr t1, time
    addi t1, t1, {delay_ticks}
    li t2, -1
    csrw stimecmp, t2         # the 64-bit write order of the Sstc spec: low to max first
    csrw stimecmph, zero
    csrw stimecmp, t1
    li t0, 0x20
    csrs sie, t0
    csrsi sstatus, 2
1:  addi s2, s2, 1
    j 1b
    .align 2
handler:
    csrr s0, scause
    csrr s1, time
    li t0, 0x100000
    li t1, 0x5555
    sw t1, 0(t0)
2:  j 2b
"""


@pytest.mark.parametrize("engine", ["interp", "fast"])
def test_stimecmp_raises_a_supervisor_timer_interrupt(engine: str) -> None:
    m = virt_machine()
    m.load(assemble(s_mode_program(True, 7)))
    r = m.run(max_instructions=100_000, engine=engine)
    h = m.harts[0]
    assert r.status == "pass"
    assert r.traps == {"supervisor_timer_interrupt": 1}
    assert h.x[8] == (1 << 31) | 5
    assert h.x[9] >= 7 and h.x[18] > 10  # it fired at or after the deadline, from the loop


def test_without_stce_stimecmp_is_an_illegal_instruction_in_s_mode() -> None:
    m = virt_machine()
    m.load(assemble(s_mode_program(False, 7)))
    h = m.harts[0]
    h.csr.mtvec = NATIVE_BASE
    causes: list[int] = []

    def firmware(hart: object) -> None:
        causes.append(hart.csr.mcause)  # type: ignore[attr-defined]
        raise YieldToHost()

    m.add_native_entry(NATIVE_BASE, firmware)
    m.run(max_instructions=10_000)
    assert causes == [2]  # csrw stimecmp from S


def test_stip_is_read_only_in_mip_when_stce_is_set() -> None:
    m = virt_machine()
    h = m.harts[0]
    h.csr_set(MIP, STIP)  # STCE = 0: M-mode software owns STIP
    assert h.csr_read(MIP) & STIP
    h.csr_write(MENVCFGH, 0x8000_0000)
    assert h.csr_read(MENVCFGH) == 0x8000_0000
    assert not h.csr_read(MIP) & STIP  # stimecmp resets to "never"
    h.csr_set(MIP, STIP)
    assert not h.csr_read(MIP) & STIP  # ignored: the comparator drives it
    h.csr_write(STIMECMPH, 0)
    h.csr_write(STIMECMP, 0)
    assert h.csr_read(MIP) & STIP  # time (0) >= stimecmp (0)
    h.csr_write(STIMECMP, 0xFFFF_FFFF)
    assert not h.csr_read(MIP) & STIP


def test_run_hart_raises_stip_at_the_deadline_without_world_events() -> None:
    m = virt_machine()
    m.load(assemble(s_mode_program(True, 50)))
    h = m.harts[0]
    used = m.run_hart(h, 10**6)
    assert m.exit_requested and m.exit_code == 0
    assert h.traps == {"supervisor_timer_interrupt": 1}
    divisor = m.cost.timebase_divisor
    assert 50 * divisor <= used
    assert h.x[9] >= 50


def test_stimecmp_survives_a_snapshot() -> None:
    m = virt_machine()
    h = m.harts[0]
    h.csr_write(MENVCFGH, 0x8000_0000)
    h.csr_write(STIMECMPH, 0)
    h.csr_write(STIMECMP, 1000)
    state = m.snapshot()
    m2 = virt_machine()
    m2.restore(state)
    assert m2.harts[0].csr.stimecmp == 1000 and m2.clint.stimecmp[0] == 1000
