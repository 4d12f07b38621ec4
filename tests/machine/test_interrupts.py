"""Interrupts: the CLINT timer and software interrupts, priorities, delegation, WFI, two harts."""

from __future__ import annotations

from encode import enc, flatten, image, li, machine_with

from virtlevels.machine import csr as C
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.memmap import CLINT_BASE, RAM_BASE

U, S, M = 0, 1, 3
HANDLER = RAM_BASE + 0x800
MTIMECMP = CLINT_BASE + 0x4000
MTIME = CLINT_BASE + 0xBFF8


def set_mtimecmp(ticks: int, hart: int = 0) -> list[int]:
    # RV32 writes the 64-bit mtimecmp as two words, low then high.
    return flatten(li(1, MTIMECMP + 8 * hart), li(2, ticks), enc("sw", rs1=1, rs2=2),
                   enc("sw", rs1=1, rs2=0, imm=4))  # fmt: skip


def timer_program(enable_mie: bool = True) -> PhysicalMachine:
    code = flatten(
        set_mtimecmp(5),  # due when mtime reaches 5: cycle 500 with the default profile
        li(3, C.MTIP),
        enc("csrrs", rs1=3, csr="mie"),
        enc("csrrsi", imm=8, csr="mstatus") if enable_mie else enc("addi"),
        enc("addi", rd=4, rs1=4, imm=1),  # loop: count
        enc("jal", rd=0, imm=-4),
    )
    handler = [enc("csrrs", rd=5, csr="mcause"), enc("csrrs", rd=6, csr="mepc"),
               enc("csrrs", rd=8, csr="mcycle"), enc("jal", rd=0, imm=0)]  # fmt: skip
    m = PhysicalMachine()
    m.load(image({RAM_BASE: code, HANDLER: handler}))
    m.harts[0].csr.mtvec = HANDLER
    return m


def test_timer_interrupt_through_the_clint() -> None:
    m = timer_program()
    r = m.run(max_instructions=2000)
    h = m.harts[0]
    assert r.traps == {"machine_timer_interrupt": 1}
    assert h.x[5] == (1 << 31) | 7
    assert RAM_BASE <= h.x[6] < HANDLER and h.x[4] > 100  # interrupted inside the loop
    # Taken at the first quantum boundary at or after cycle 500 (mtime = 5 ticks of 100 cycles).
    assert 500 <= h.x[8] <= 500 + m.cost.quantum * 2
    assert m.harts[0].mmio_count == 2


def test_timer_interrupts_are_deterministic() -> None:
    runs = []
    for _ in range(2):
        m = timer_program()
        r = m.run(max_instructions=2000)
        runs.append((r, list(m.harts[0].x)))
    assert runs[0] == runs[1]


def test_mie_off_masks_the_timer_in_m_mode() -> None:
    m = timer_program(enable_mie=False)
    r = m.run(max_instructions=2000)
    assert r.traps == {} and m.harts[0].csr.mip_hw & C.MTIP


def test_wfi_sleeps_until_the_timer_and_counts_idle_cycles() -> None:
    code = flatten(
        set_mtimecmp(50),
        li(3, C.MTIP),
        enc("csrrs", rs1=3, csr="mie"),  # enabled in mie, but MIE=0: WFI wakes without a trap
        enc("wfi"),
        enc("addi", rd=7, imm=1),
        enc("jal", rd=0, imm=0),
    )
    m = machine_with(code)
    r = m.run(max_instructions=100)
    h = m.harts[0]
    assert h.x[7] == 1 and r.traps == {}
    assert r.cycles_by_category["idle"] > 0
    assert r.cycles >= 50 * m.cost.timebase_divisor


def test_wfi_with_nothing_to_wake_it_is_a_deadlock() -> None:
    m = machine_with([enc("wfi"), enc("addi", rd=7, imm=1)])
    r = m.run(max_instructions=100)
    assert r.status == "wfi-deadlock" and m.harts[0].x[7] == 0


def test_software_interrupt_via_msip() -> None:
    code = flatten(
        li(3, C.MSIP), enc("csrrs", rs1=3, csr="mie"), enc("csrrsi", imm=8, csr="mstatus"),
        li(1, CLINT_BASE), enc("addi", rd=2, imm=1), enc("sw", rs1=1, rs2=2),
        enc("addi", rd=4, imm=1), enc("jal", rd=0, imm=0),
    )  # fmt: skip
    m = PhysicalMachine()
    m.load(image({RAM_BASE: code, HANDLER: [enc("csrrs", rd=5, csr="mcause"), enc("jal", rd=0, imm=0)]}))
    m.harts[0].csr.mtvec = HANDLER
    r = m.run(max_instructions=200)
    assert r.traps == {"machine_software_interrupt": 1} and m.harts[0].x[5] == (1 << 31) | 3


def test_one_hart_wakes_another_with_an_ipi() -> None:
    # hart 0: write msip[1]; hart 1 (a0 = 1): enable MSIE, wfi, then mark x7.
    hart0 = flatten(li(1, CLINT_BASE + 4), enc("addi", rd=2, imm=1), enc("sw", rs1=1, rs2=2),
                    enc("jal", imm=0))  # fmt: skip
    hart1 = flatten(li(3, C.MSIP), enc("csrrs", rs1=3, csr="mie"), enc("wfi"), enc("addi", rd=7, imm=1),
                    enc("jal", imm=0))  # fmt: skip
    entry = [enc("bne", rs1=10, rs2=0, imm=0x100)] + [enc("jal", imm=0x10)] + [0] * 3
    m = PhysicalMachine(num_harts=2)
    m.load(image({RAM_BASE: entry, RAM_BASE + 0x14: hart0, RAM_BASE + 0x100: hart1}))
    assert [h.x[10] for h in m.harts] == [0, 1]  # a0 = hartid
    m.run(max_instructions=5000)  # two quanta: hart 1 runs after hart 0
    assert m.harts[1].x[7] == 1
    assert m.harts[1].trap_count == 0  # MIE was 0: WFI resumed without taking the interrupt


def test_interrupt_priority() -> None:
    m = machine_with([])
    h = m.harts[0]
    h.csr.mie = C.MIE_MASK
    h.csr.mstatus = C.MSTATUS_MIE
    order = []
    h.csr.mip_hw = C.MEIP | C.MSIP | C.MTIP
    h.csr.mip_sw = C.SEIP | C.SSIP | C.STIP
    pending = h.csr.mip_hw | h.csr.mip_sw
    while pending:
        code = h.pending_interrupt()
        assert code is not None
        order.append(code)
        pending &= ~(1 << code)
        h.csr.mip_hw &= pending
        h.csr.mip_sw &= pending
    assert order == [11, 3, 7, 9, 1, 5]  # Priv 3.1.9: MEI, MSI, MTI, SEI, SSI, STI


def test_global_enables_by_privilege() -> None:
    m = machine_with([])
    h = m.harts[0]
    h.csr.mie = C.MTIP | C.STIP
    h.csr.mip_hw = C.MTIP
    assert h.pending_interrupt() is None  # M-mode, MIE=0
    h.set_priv(S)
    assert h.pending_interrupt() == 7  # below M, M-level interrupts are always enabled
    h.csr.mip_hw = 0
    h.csr.mip_sw = C.STIP
    h.csr.mideleg = C.STIP
    assert h.pending_interrupt() is None  # delegated to S, SIE=0
    h.set_priv(U)
    assert h.pending_interrupt() == 5  # below S, S-level interrupts are always enabled
    h.set_priv(M)
    h.csr.mstatus = C.MSTATUS_MIE | C.MSTATUS_SIE
    assert h.pending_interrupt() is None  # a delegated interrupt is never taken in M


def test_delegated_timer_interrupt_enters_s_mode() -> None:
    m = machine_with([enc("addi", rd=1, imm=1)])
    h = m.harts[0]
    h.csr.stvec = HANDLER
    h.csr.mideleg = C.STIP
    h.csr.mie = C.STIP
    h.csr.mip_sw = C.STIP
    h.csr.mstatus = C.MSTATUS_SIE
    h.set_priv(S)
    assert h.check_interrupts()
    assert (h.priv, h.pc, h.csr.scause, h.csr.sepc) == (S, HANDLER, (1 << 31) | 5, RAM_BASE)


def test_time_csr_matches_the_clint() -> None:
    code = flatten(enc("addi", rd=9, imm=1), li(1, MTIME), enc("lw", rd=2, rs1=1),
                   enc("csrrs", rd=3, csr="time"))  # fmt: skip
    m = machine_with(code)
    m.run(max_instructions=200)  # runs off into zeros (illegal) after; we only read the registers
    h = m.harts[0]
    assert h.x[3] >= h.x[2]
    assert h.x[3] - h.x[2] <= 1


def test_mtime_write_moves_time() -> None:
    m = machine_with([])
    assert m.clint is not None
    m.clint.write(0xBFF8, 4, 1000)
    assert m.mtime() == 1000
