"""Native code entries (Python trap handlers at addresses in the native region) and hart.execute."""

from __future__ import annotations

import pytest

from virtlevels.errors import ConfigError
from virtlevels.machine import privops
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.hart import PrivilegedInstructionError
from virtlevels.machine.memmap import NATIVE_BASE
from virtlevels.machine.trap import YieldToHost

STVEC = NATIVE_BASE + 0x100
MTVEC = NATIVE_BASE + 0x200
SEPC, SCAUSE, STVAL, SSTATUS = 0x141, 0x142, 0x143, 0x100
MEPC = 0x341
ENGINES = ["interp", "fast"]

# M-mode sets up delegation and stvec (a native entry), drops to U; U-mode makes "system calls"
# (a7 = 1: a0 += 1 in the handler; a7 = 2: the handler yields to the host) and finally stops
# the machine through the test finisher.
PROGRAM = f"""
    .text
_start:
    li t0, 0x100          # delegate ecall from U
    csrw medeleg, t0
    li t0, {STVEC}
    csrw stvec, t0
    li t0, 0x1800         # mstatus.MPP = U
    csrc mstatus, t0
    la t0, user
    csrw mepc, t0
    mret
user:
    li a0, 40
    li a7, 1
    ecall
    ecall
    mv s1, a0
    li a7, 2
    ecall
    li t0, 0x100000
    li t1, 0x5555
    sw t1, 0(t0)
1:  j 1b
"""


def boot(engine: str) -> tuple[object, list[tuple[int, int, int]]]:
    m = virt_machine()
    m.load(assemble(PROGRAM))
    seen: list[tuple[int, int, int]] = []

    def kernel(hart: object) -> None:
        h = hart
        cause = h.csr_read(SCAUSE, pc=STVEC)  # type: ignore[attr-defined]
        epc = h.csr_read(SEPC, pc=STVEC + 4)  # type: ignore[attr-defined]
        seen.append((cause, epc, h.priv))  # type: ignore[attr-defined]
        h.csr_write(SEPC, epc + 4, pc=STVEC + 8)  # type: ignore[attr-defined]
        if h.x[17] == 1:  # type: ignore[attr-defined]
            h.x[10] += 1  # type: ignore[attr-defined]
        elif h.x[17] == 2:  # type: ignore[attr-defined]
            raise YieldToHost()
        h.exec_sret(pc=STVEC + 12)  # type: ignore[attr-defined]

    m.add_native_entry(STVEC, kernel)
    return m, seen


@pytest.mark.parametrize("engine", ENGINES)
def test_trap_to_a_native_entry_runs_the_handler_and_sret_resumes(engine: str) -> None:
    m, seen = boot(engine)
    r = m.run(max_instructions=10_000, engine=engine)  # type: ignore[attr-defined]
    h = m.harts[0]  # type: ignore[attr-defined]
    assert r.status == "halt"  # the third call yielded to the host; run() has none: it stops
    assert [c for c, _e, _p in seen] == [8, 8, 8]
    assert all(p == 1 for _c, _e, p in seen)  # the handler runs in S-mode
    assert h.x[9] == 42 and h.priv == 1 and h.pc == STVEC + 12
    # A host that runs the hart itself resumes it with sret; the program then finishes.
    h.exec_sret(pc=STVEC + 12)
    r2 = m.run(max_instructions=10_000, engine=engine)  # type: ignore[attr-defined]
    assert r2.status == "pass"
    assert r.traps == {"ecall_from_u": 3}


@pytest.mark.parametrize("engine", ENGINES)
def test_run_hart_returns_when_the_handler_yields(engine: str) -> None:
    m, seen = boot(engine)
    h = m.harts[0]  # type: ignore[attr-defined]
    used = m.run_hart(h, 1_000_000, engine=engine)  # type: ignore[attr-defined]
    assert len(seen) == 3 and h.x[9] == 42
    assert used == h.work_cycles() and used > 0


def test_execute_counts_and_charges_like_a_fetched_instruction() -> None:
    m = virt_machine()
    h = m.harts[0]
    before = h.work_cycles()
    h.execute(privops.csrrwi_word(0x340, 0, 7), pc=NATIVE_BASE)  # csrwi mscratch, 7 (in M-mode)
    assert h.csr.mscratch == 7
    assert h.pc == NATIVE_BASE + 4
    assert h.retired() == 1 and h.counts_by_priv[3][m.table.classes.index("csr")] == 1
    assert h.work_cycles() - before == m.cost.instruction_cost("csr")
    h.csr_write(0x340, 0x1234_5678)  # needs a register: t0 carries it and is restored
    assert h.csr.mscratch == 0x1234_5678 and h.x[5] == 0
    h.x[5] = 99
    assert h.csr_read(0x340) == 0x1234_5678 and h.x[5] == 99
    h.csr_set(0x340, 0x8000_0000)
    h.csr_clear(0x340, 0x8)
    assert h.csr.mscratch == 0x9234_5670


def test_a_trapping_execute_completes_only_if_a_handler_emulates_it() -> None:
    m = virt_machine()
    h = m.harts[0]
    # Drop to S-mode, then try an M-only CSR: illegal instruction, to M (not delegated).
    h.execute(privops.csrrw_word(0x341, 0, 0), pc=NATIVE_BASE)  # mepc = 0 (x0)
    h.csr_write(0x341, NATIVE_BASE + 0x10)
    h.csr_clear(0x300, 0x1800)
    h.csr_set(0x300, 0x0800)  # MPP = S
    h.exec_mret(pc=NATIVE_BASE + 0xC)
    assert h.priv == 1 and h.pc == NATIVE_BASE + 0x10
    h.csr.mtvec = MTVEC
    with pytest.raises(PrivilegedInstructionError, match="illegal_instruction"):
        h.csr_write(0x340, 5, pc=NATIVE_BASE + 0x20)  # nothing handles the trap at MTVEC

    # A "hypervisor" at MTVEC emulates the access (trap-and-emulate) and returns to epc + 4.
    emulated: list[int] = []

    def monitor(hart: object) -> None:
        hh = hart
        epc = hh.csr_read(MEPC)  # type: ignore[attr-defined]
        emulated.append(hh.csr.mtval)  # type: ignore[attr-defined]
        hh.csr.mscratch = 5  # type: ignore[attr-defined]  # the monitor's own (M-mode) emulation
        hh.csr_write(MEPC, epc + 4)  # type: ignore[attr-defined]
        hh.exec_mret()  # type: ignore[attr-defined]

    m.add_native_entry(MTVEC, monitor)
    h.set_priv(1)
    h.csr_write(0x340, 5, pc=NATIVE_BASE + 0x30)
    assert h.csr.mscratch == 5 and h.priv == 1 and h.pc == NATIVE_BASE + 0x34
    assert emulated == [privops.csrrwi_word(0x340, 0, 5)]  # tval: the instruction bits


def test_native_entries_live_in_the_native_region() -> None:
    m = virt_machine()
    with pytest.raises(ConfigError, match="native region"):
        m.add_native_entry(0x8000_0000, lambda h: None)
    with pytest.raises(ConfigError, match="native region"):
        m.add_native_entry(NATIVE_BASE + 2, lambda h: None)
    m.add_native_entry(NATIVE_BASE, lambda h: None)
    m.remove_native_entry(NATIVE_BASE)
    assert m.native_entries == {}
