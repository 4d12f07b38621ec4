"""Privilege modes, CSRs and the trap architecture (Priv chapters 2-4)."""

from __future__ import annotations

import pytest
from encode import enc, machine_with

from virtlevels.machine import csr as C
from virtlevels.machine.hart import Hart
from virtlevels.machine.isa.table import InstructionTable, PgClass
from virtlevels.machine.memmap import RAM_BASE

U, S, M = 0, 1, 3
MTVEC = RAM_BASE + 0x400
STVEC = RAM_BASE + 0x800


def hart_at(priv: int, *words: int, **csrs: int) -> Hart:
    m = machine_with(list(words))
    h = m.harts[0]
    h.csr.mtvec, h.csr.stvec = MTVEC, STVEC
    for name, value in csrs.items():
        setattr(h.csr, name, value)
    h.set_priv(priv)
    return h


def run(h: Hart, n: int = 1) -> Hart:
    h.machine.run(max_instructions=n)
    return h


# -- trap entry and delegation ----------------------------------------------------------------
@pytest.mark.parametrize(("priv", "cause"), [(U, 8), (S, 9), (M, 11)])
def test_ecall_traps_to_m_with_the_mode_in_the_cause(priv: int, cause: int) -> None:
    h = run(hart_at(priv, enc("ecall"), mstatus=C.MSTATUS_MIE if priv == M else 0))
    assert (h.priv, h.pc, h.csr.mcause, h.csr.mepc) == (M, MTVEC, cause, RAM_BASE)
    ms = h.csr.mstatus
    assert (ms & C.MSTATUS_MPP) >> C.MSTATUS_MPP_SHIFT == priv
    assert not ms & C.MSTATUS_MIE
    assert bool(ms & C.MSTATUS_MPIE) == (priv == M)  # MPIE <- old MIE


def test_delegated_exception_goes_to_s_mode() -> None:
    h = run(hart_at(U, enc("ecall"), medeleg=1 << 8, mstatus=C.MSTATUS_SIE))
    assert (h.priv, h.pc, h.csr.scause, h.csr.sepc) == (S, STVEC, 8, RAM_BASE)
    ms = h.csr.mstatus
    assert not ms & C.MSTATUS_SPP and ms & C.MSTATUS_SPIE and not ms & C.MSTATUS_SIE
    assert h.csr.mcause == 0  # M-mode CSRs untouched


def test_delegation_never_lowers_privilege() -> None:
    # Priv 3.1.8: a trap in M-mode is never delegated to S, even with the medeleg bit set.
    h = run(hart_at(M, enc("ebreak"), medeleg=1 << 3))
    assert h.priv == M and h.csr.mcause == 3 and h.csr.scause == 0


def test_illegal_instruction_from_s_delegated_records_the_bits_in_stval() -> None:
    h = run(hart_at(S, 0xFFFFFFFF, medeleg=1 << 2))
    assert (h.priv, h.csr.scause, h.csr.stval) == (S, 2, 0xFFFFFFFF)
    assert h.csr.mstatus & C.MSTATUS_SPP


# -- returns ------------------------------------------------------------------------------------
def test_mret_restores_mode_and_enables() -> None:
    mstatus = C.MSTATUS_MPIE | (S << C.MSTATUS_MPP_SHIFT) | C.MSTATUS_MPRV
    h = run(hart_at(M, enc("mret"), mstatus=mstatus, mepc=RAM_BASE + 0x100))
    assert h.priv == S and h.pc == RAM_BASE + 0x100
    ms = h.csr.mstatus
    assert ms & C.MSTATUS_MIE and ms & C.MSTATUS_MPIE
    assert ms & C.MSTATUS_MPP == 0  # MPP <- U
    assert not ms & C.MSTATUS_MPRV  # Priv 3.1.6.3: returning below M clears MPRV


def test_sret_restores_mode_and_enables() -> None:
    mstatus = C.MSTATUS_SPIE | C.MSTATUS_SPP
    h = run(hart_at(S, enc("sret"), mstatus=mstatus, sepc=RAM_BASE + 0x40))
    assert h.priv == S and h.pc == RAM_BASE + 0x40
    assert h.csr.mstatus & C.MSTATUS_SIE and not h.csr.mstatus & C.MSTATUS_SPP


@pytest.mark.parametrize(
    ("priv", "word", "mstatus"),
    [
        (S, enc("mret"), 0),
        (U, enc("mret"), 0),
        (U, enc("sret"), 0),
        (S, enc("sret"), C.MSTATUS_TSR),  # Priv 3.1.6.5 TSR
        (U, enc("wfi"), 0),
        (S, enc("wfi"), C.MSTATUS_TW),  # TW
        (U, enc("sfence.vma"), 0),
        (S, enc("sfence.vma"), C.MSTATUS_TVM),  # TVM
        (S, enc("csrrs", rd=1, csr="satp"), C.MSTATUS_TVM),
        (U, enc("csrrs", rd=1, csr="sstatus"), 0),
        (S, enc("csrrs", rd=1, csr="mstatus"), 0),
        (M, enc("csrrw", rd=1, rs1=2, csr="mhartid"), 0),  # read-only
        (M, enc("csrrs", rd=1, csr=0x7C0), 0),  # not implemented
    ],
)
def test_privileged_instructions_trap_as_illegal(priv: int, word: int, mstatus: int) -> None:
    h = run(hart_at(priv, word, mstatus=mstatus))
    assert (h.priv, h.csr.mcause, h.csr.mtval, h.csr.mepc) == (M, 2, word, RAM_BASE)


def test_allowed_in_s_without_the_trap_bits() -> None:
    for word in (enc("wfi"), enc("sfence.vma"), enc("csrrs", rd=1, csr="satp")):
        # A pending SSIP delegated to S with SIE=0 is not taken, but it makes wfi return at once.
        h = run(hart_at(S, word, mie=C.SSIP, mip_sw=C.SSIP, mideleg=C.SSIP))
        assert h.trap_count == 0 and h.pc == RAM_BASE + 4


def test_reading_a_read_only_csr_with_csrrs_x0_is_allowed() -> None:
    h = run(hart_at(M, enc("csrrs", rd=1, rs1=0, csr="mhartid")))
    assert h.trap_count == 0 and h.x[1] == 0


# -- Zicsr semantics --------------------------------------------------------------------------
def test_csr_read_modify_write() -> None:
    words = [
        enc("csrrw", rd=1, rs1=2, csr="mscratch"),
        enc("csrrs", rd=3, rs1=4, csr="mscratch"),
        enc("csrrc", rd=5, rs1=6, csr="mscratch"),
        enc("csrrwi", rd=7, imm=0x15, csr="mscratch"),
        enc("csrrsi", rd=8, imm=0x0A, csr="mscratch"),
        enc("csrrci", rd=9, imm=0x01, csr="mscratch"),
    ]
    h = hart_at(M, *words, mscratch=0x100)
    h.x[2], h.x[4], h.x[6] = 0xF0, 0x0F, 0x3C
    run(h, 6)
    assert (h.x[1], h.x[3], h.x[5], h.x[7], h.x[8], h.x[9]) == (0x100, 0xF0, 0xFF, 0xC3, 0x15, 0x1F)
    assert h.csr.mscratch == 0x1E


# -- WARL fields --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "written", "expect"),
    [
        ("mtvec", RAM_BASE | 3, RAM_BASE | 0),  # reserved mode: the old (direct) mode stays
        ("mtvec", RAM_BASE | 1, RAM_BASE | 1),
        ("medeleg", 0xFFFFFFFF, C.MEDELEG_MASK),  # bit 11 read-only zero
        ("mideleg", 0xFFFFFFFF, C.SSIP | C.STIP | C.SEIP),
        ("mie", 0xFFFFFFFF, 0xAAA),
        ("mepc", RAM_BASE | 3, RAM_BASE),
        ("misa", 0, C.MISA),
        ("mstatus", 0xFFFFFFFF, C.MSTATUS_WMASK),  # FS/VS/XS/SD stay 0
        ("mstatus", 2 << C.MSTATUS_MPP_SHIFT, 0),  # MPP=2 is reserved: keep the old value
        ("pmpaddr3", 0x12345678, 0x12345678),
        ("pmpcfg1", 0x1F1F1F1F, 0x1F1F1F1F),
        ("mcountinhibit", 0xFFFFFFFF, 0),
        ("satp", 0x80000000 | (5 << 22) | 0x1234, 0x80000000 | (5 << 22) | 0x1234),
    ],
)
def test_warl(name: str, written: int, expect: int) -> None:
    num = C.CSR_BY_NAME[name]
    h = hart_at(M)
    h.csr.write(num, written)
    assert h.csr.read(num) == expect


def test_misa_says_rv32imasu() -> None:
    assert C.MISA >> 30 == 1
    assert {chr(ord("A") + i) for i in range(26) if C.MISA >> i & 1} == set("AIMSU")


def test_sstatus_is_a_view_of_mstatus() -> None:
    h = hart_at(M)
    h.csr.write(C.CSR_BY_NAME["sstatus"], 0xFFFFFFFF)
    assert h.csr.mstatus == C.SSTATUS_WMASK  # MIE, MPP, TVM... untouched
    h.csr.mstatus |= C.MSTATUS_MIE
    assert not h.csr.read(C.CSR_BY_NAME["sstatus"]) & C.MSTATUS_MIE


def test_sie_and_sip_only_show_delegated_interrupts() -> None:
    h = hart_at(M, mideleg=C.SSIP | C.STIP)
    h.csr.write(C.CSR_BY_NAME["sie"], 0xFFFFFFFF)
    assert h.csr.mie == C.SSIP | C.STIP
    h.csr.write(C.CSR_BY_NAME["sip"], 0xFFFFFFFF)
    assert h.csr.mip_sw == C.SSIP  # only SSIP is writable through sip
    h.csr.mip_hw = C.MTIP
    assert h.csr.read(C.CSR_BY_NAME["sip"]) == C.SSIP


# -- counters -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("priv", "mcounteren", "scounteren", "ok"),
    [(U, 0, 0, False), (U, 1, 0, False), (U, 1, 1, True), (S, 1, 0, True), (S, 0, 1, False), (M, 0, 0, True)],
)
def test_counter_access_is_gated_by_counteren(priv: int, mcounteren: int, scounteren: int, ok: bool) -> None:
    h = run(hart_at(priv, enc("csrrs", rd=1, csr="cycle"), mcounteren=mcounteren, scounteren=scounteren))
    assert (h.trap_count == 0) == ok


def test_cycle_and_instret_count() -> None:
    reads = [enc("csrrs", rd=1, csr="instret"), enc("csrrs", rd=2, csr="cycle")]
    words = [enc("addi", rd=5, imm=1)] * 10 + reads
    h = run(hart_at(M, *words), 12)
    assert h.x[1] == 10  # instructions retired before the read
    assert h.x[2] == 10 * h.machine.cost.instruction["alu"] + h.machine.cost.instruction["csr"]


def test_minstret_write_takes_effect_before_the_instruction_retires() -> None:
    h = hart_at(M, enc("csrrw", rs1=2, csr="minstret"), enc("csrrs", rd=1, csr="minstret"))
    h.x[2] = 1000
    run(h, 2)
    assert h.x[1] == 1000


# -- interrupts from the trap architecture's side ------------------------------------------------
def test_vectored_mtvec_sends_interrupts_to_base_plus_4_cause() -> None:
    h = hart_at(M, enc("addi", rd=1, imm=1), mtvec=MTVEC | 1, mie=C.MTIP, mstatus=C.MSTATUS_MIE)
    h.csr.mip_hw = C.MTIP
    assert h.check_interrupts()
    assert h.pc == MTVEC + 4 * 7 and h.csr.mcause == (1 << 31) | 7 and h.csr.mepc == RAM_BASE
    assert h.x[1] == 0  # taken before the instruction


def test_vectored_mtvec_sends_exceptions_to_base() -> None:
    h = run(hart_at(M, enc("ecall"), mtvec=MTVEC | 1))
    assert h.pc == MTVEC


# -- classification -------------------------------------------------------------------------------
def test_popek_goldberg_classification() -> None:
    t = InstructionTable()
    assert t.classify(enc("addi", rd=1, imm=1)) == PgClass()
    assert t.classify(enc("csrrs", rd=1, csr="cycle")).innocuous  # type: ignore[union-attr]
    assert t.classify(enc("csrrw", rs1=1, csr="mstatus")) == PgClass(True, True, True)
    assert t.classify(enc("sret")).privileged  # type: ignore[union-attr]
    assert t.classify(0xFFFFFFFF).privileged  # type: ignore[union-attr]
    by_name = t.classify()
    assert isinstance(by_name, dict) and by_name["sfence.vma"].control_sensitive
    assert t.sensitive_unprivileged() == []  # RV32 meets Popek-Goldberg theorem 1
