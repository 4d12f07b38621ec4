"""H extension traps (Priv 8.5-8.6): delegation M -> HS -> VS, SPV/SPVP/MPV/GVA, SRET and MRET
with V, VS-level interrupts, and the virtual-instruction exception."""

from __future__ import annotations

import pytest
from hext_util import (
    HS_VEC,
    M_VEC,
    PTE_U,
    RAM_BASE,
    RWXAD,
    VS_VEC,
    S,
    U,
    code,
    enter,
    guest_machine,
    run_guest,
    vs_map,
    word,
)

from virtlevels.machine import csr as C

ECALL_VS, ECALL_U = 10, 8


def test_ecall_from_vs_goes_to_m_without_delegation() -> None:
    m, h = guest_machine()
    run_guest(m, "ecall", 1)
    c = h.csr
    assert (h.priv, h.virt, h.pc) == (3, 0, M_VEC)
    assert c.mcause == ECALL_VS and c.mepc == 0x1000
    assert (c.mstatus & C.MSTATUS_MPP) >> C.MSTATUS_MPP_SHIFT == S and c.mstatush & C.MSTATUSH_MPV
    assert not c.mstatush & C.MSTATUSH_GVA  # ecall's tval is not an address


def test_medeleg_sends_it_to_hs_with_spv_and_spvp() -> None:
    m, h = guest_machine()
    h.csr.medeleg = 1 << ECALL_VS | 1 << ECALL_U
    run_guest(m, "ecall", 1)
    c = h.csr
    assert (h.priv, h.virt, h.pc) == (S, 0, HS_VEC)
    assert c.scause == ECALL_VS and c.sepc == 0x1000 and c.mstatus & C.MSTATUS_SPP
    assert c.hstatus & C.HSTATUS_SPV and c.hstatus & C.HSTATUS_SPVP
    run_guest(m, "ecall", 1, priv=U)  # from VU: SPVP records U
    assert c.scause == ECALL_U and c.hstatus & C.HSTATUS_SPV and not c.hstatus & C.HSTATUS_SPVP
    assert not c.mstatus & C.MSTATUS_SPP


def test_hedeleg_sends_vu_exceptions_to_vs_mode() -> None:
    m, h = guest_machine()
    c = h.csr
    c.medeleg = c.hedeleg = 1 << ECALL_U
    c.vsstatus = C.MSTATUS_SIE
    run_guest(m, "ecall", 1, priv=U)
    assert (h.priv, h.virt, h.pc) == (S, 1, VS_VEC)
    assert c.vscause == ECALL_U and c.vsepc == 0x1000 and c.scause == 0
    assert c.vsstatus & C.MSTATUS_SPIE and not c.vsstatus & (C.MSTATUS_SIE | C.MSTATUS_SPP)
    assert not c.hstatus & C.HSTATUS_SPV  # HS state untouched


def test_a_trap_from_hs_mode_clears_spv() -> None:
    m, h = guest_machine()
    h.csr.medeleg = 1 << 9
    h.csr.hstatus = C.HSTATUS_SPV
    m.memory.write_bytes(RAM_BASE, code("ecall"))
    enter(h, S, 0, RAM_BASE)
    m.run(max_instructions=1)
    assert h.csr.scause == 9 and not h.csr.hstatus & C.HSTATUS_SPV


def test_sret_from_hs_enters_vs_and_sret_in_vs_uses_vsstatus() -> None:
    m, h = guest_machine()
    c = h.csr
    c.hstatus = C.HSTATUS_SPV
    c.mstatus |= C.MSTATUS_SPP
    c.sepc = 0x1000
    m.memory.write_bytes(RAM_BASE, code("sret"))
    enter(h, S, 0, RAM_BASE)
    m.memory.write_bytes(0x8040_1000, code("sret"))
    c.vsstatus = C.MSTATUS_SPIE  # SPP = 0: the guest returns to VU
    c.vsepc = 0x2000
    m.run(max_instructions=1)
    assert (h.priv, h.virt, h.pc) == (S, 1, 0x1000)
    assert c.hstatus & C.HSTATUS_SPV  # SRET does not clear SPV (Priv 8.6.4)
    vs_map(m, 0x2000, 0x2000, RWXAD | PTE_U)
    m.run(max_instructions=1)
    assert (h.priv, h.virt, h.pc) == (U, 1, 0x2000)
    assert c.vsstatus & C.MSTATUS_SIE and c.vsstatus & C.MSTATUS_SPIE


def test_mret_with_mpv_enters_vs_and_clears_mpv() -> None:
    m, h = guest_machine()
    c = h.csr
    c.mstatus = (c.mstatus & ~C.MSTATUS_MPP) | S << C.MSTATUS_MPP_SHIFT
    c.mstatush = C.MSTATUSH_MPV
    c.mepc = 0x1000
    m.memory.write_bytes(RAM_BASE, code("mret"))
    enter(h, 3, 0, RAM_BASE)
    m.run(max_instructions=1)
    assert (h.priv, h.virt, h.pc) == (S, 1, 0x1000) and not c.mstatush & C.MSTATUSH_MPV


def test_mprv_with_mpv_makes_m_mode_loads_two_stage() -> None:
    m, h = guest_machine()
    c = h.csr
    m.memory.write(0x8040_7000 + 8, 4, 0xABCD)  # guest physical 0x7008 = guest virtual 0x7008
    c.mstatus = (c.mstatus & ~C.MSTATUS_MPP) | S << C.MSTATUS_MPP_SHIFT | C.MSTATUS_MPRV
    c.mstatush = C.MSTATUSH_MPV
    m.memory.write_bytes(RAM_BASE, code("li t0, 0x7008\nlw a0, 0(t0)"))
    enter(h, 3, 0, RAM_BASE)
    m.run(max_instructions=3)
    assert h.x[10] == 0xABCD and h.trap_count == 0


# -- interrupts ---------------------------------------------------------------------------------
def test_vs_timer_interrupt_injected_by_hvip_reaches_vs_mode_as_sti() -> None:
    m, h = guest_machine()
    c = h.csr
    c.hideleg = C.VSTIP
    c.mie = C.VSTIP
    c.write(0x645, C.VSTIP)
    c.vsstatus = C.MSTATUS_SIE
    run_guest(m, "nop\nnop", 1)
    assert (h.priv, h.virt, h.pc) == (S, 1, VS_VEC) and c.vscause == (1 << 31) | 5


def test_vs_interrupts_wait_while_v_is_0_and_while_vsstatus_sie_is_clear() -> None:
    m, h = guest_machine()
    c = h.csr
    c.hideleg = C.VSSIP
    c.mie = C.VSSIP
    c.write(0x645, C.VSSIP)
    enter(h, S, 0, RAM_BASE)
    c.mstatus |= C.MSTATUS_SIE
    assert h.pending_interrupt() is None  # delegated to VS: not taken in HS-mode
    enter(h, S, 1, 0x1000)
    assert h.pending_interrupt() is None  # vsstatus.SIE = 0
    enter(h, U, 1, 0x1000)
    assert h.pending_interrupt() == 2  # always enabled in VU-mode


def test_undelegated_vs_interrupt_goes_to_hs_with_code_6_even_with_sie_clear() -> None:
    m, h = guest_machine()
    c = h.csr
    c.mie = C.VSTIP
    c.write(0x645, C.VSTIP)
    run_guest(m, "nop", 1)
    assert (h.priv, h.virt, h.pc) == (S, 0, HS_VEC) and c.scause == (1 << 31) | 6
    assert c.hstatus & C.HSTATUS_SPV


# -- virtual-instruction exceptions (Priv 8.6.1) ------------------------------------------------
@pytest.mark.parametrize(
    ("priv", "text", "hstatus", "mstatus", "cause"),
    [
        (S, "wfi", C.HSTATUS_VTW, 0, 22),
        (S, "wfi", 0, 0, 0),
        (S, "wfi", C.HSTATUS_VTW, C.MSTATUS_TW, 2),  # mstatus.TW wins: illegal
        (U, "wfi", 0, 0, 22),
        (S, "sret", C.HSTATUS_VTSR, 0, 22),
        (U, "sret", 0, 0, 22),
        (S, "sfence.vma", C.HSTATUS_VTVM, 0, 22),
        (S, "sfence.vma", 0, C.MSTATUS_TVM, 0),  # TVM does not apply to VS-mode
        (U, "sfence.vma", 0, 0, 22),
        (S, "hfence.vvma zero, zero", 0, 0, 22),
        (S, "hfence.gvma zero, zero", 0, 0, 22),
        (S, "hlv.w a0, (zero)", 0, 0, 22),
        (U, "hlv.w a0, (zero)", C.HSTATUS_HU, 0, 22),  # HU does not help in VU-mode
        (S, "hsv.w a0, (zero)", 0, 0, 22),
        (S, "mret", 0, 0, 2),
        (S, ".word 0xffffffff", 0, 0, 2),
    ],
)
def test_virtual_instruction_cases(priv: int, text: str, hstatus: int, mstatus: int, cause: int) -> None:
    m, h = guest_machine()
    h.csr.hstatus = hstatus
    h.csr.mstatus |= mstatus
    h.csr.vsepc = 0x1000  # an allowed sret returns to itself
    run_guest(m, text, 1, priv=priv)
    if cause:
        assert h.csr.mcause == cause and h.csr.mtval == word(text) and h.csr.mepc == 0x1000
    else:
        assert h.trap_count == 0


@pytest.mark.parametrize(
    ("text", "hstatus", "cause"),
    [
        ("hlv.w a0, (zero)", 0, 2),  # U-mode without HU: illegal
        ("hlv.w a0, (zero)", C.HSTATUS_HU | C.HSTATUS_SPVP, 0),
        ("hfence.vvma zero, zero", C.HSTATUS_HU, 2),  # HU covers HLV/HSV only
    ],
)
def test_hypervisor_instructions_from_u_mode(text: str, hstatus: int, cause: int) -> None:
    m, h = guest_machine()
    h.csr.hstatus = hstatus
    m.memory.write_bytes(RAM_BASE, code(text))
    enter(h, U, 0, RAM_BASE)
    m.run(max_instructions=1)
    if cause:
        assert h.csr.mcause == cause
    else:
        assert h.trap_count == 0


def test_virtual_instruction_delegates_to_hs_but_never_to_vs() -> None:
    m, h = guest_machine()
    c = h.csr
    c.medeleg = 1 << 22
    c.write(0x602, 0xFFFFFFFF)  # hedeleg[22] is read-only zero
    run_guest(m, "hfence.vvma zero, zero", 1)
    assert (h.priv, h.virt) == (S, 0) and c.scause == 22 and c.stval == word("hfence.vvma zero, zero")
