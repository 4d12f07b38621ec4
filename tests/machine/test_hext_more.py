"""More H-extension privileged behaviour (Priv 8.5-8.6): two-stage faults through both levels of
delegation, and VS-level software interrupts injected by the hypervisor."""

from __future__ import annotations

from hext_util import (
    GUEST,
    HS_VEC,
    PTE_A,
    PTE_R,
    PTE_U,
    PTE_V,
    RWXAD,
    VS_VEC,
    S,
    U,
    g_map,
    guest_machine,
    run_guest,
    vs_map,
)

from virtlevels.machine import csr as C

DATA_GVA, DATA_GPA = 0x0020_5000, 0x0003_0000


def test_vs_stage_fault_goes_to_the_guest_but_a_g_stage_fault_never_does() -> None:
    m, h = guest_machine()
    c = h.csr
    c.medeleg = (1 << 13) | (1 << 21)
    c.write(0x602, (1 << 13) | (1 << 21))  # hedeleg: 21 is read-only zero (Priv 8.2.2)
    assert c.hedeleg == 1 << 13
    # VS-stage: the guest's own page table forbids user access -> load page fault, to VS-mode.
    vs_map(m, DATA_GVA, DATA_GPA, PTE_V | PTE_R | PTE_A)
    g_map(m, DATA_GPA, GUEST + DATA_GPA)
    h.x[9] = DATA_GVA
    run_guest(m, "lw a0, 0(s1)", 1, priv=U)
    assert (h.priv, h.virt, h.pc) == (S, 1, VS_VEC)
    assert c.vscause == 13 and c.vstval == DATA_GVA and c.vsepc == 0x1000
    assert c.scause == 0 and not c.hstatus & C.HSTATUS_SPV  # HS-mode saw nothing
    # G-stage: the same access with the guest's PTE fixed but no G-stage mapping -> HS-mode.
    vs_map(m, DATA_GVA, DATA_GPA, RWXAD | PTE_U)
    g_map(m, DATA_GPA, 0, 0)
    h.mmu.tlb.clear()
    run_guest(m, "lw a0, 0(s1)", 1, priv=U)
    assert (h.priv, h.virt, h.pc) == (S, 0, HS_VEC)
    assert c.scause == 21 and c.stval == DATA_GVA and c.htval == DATA_GPA >> 2
    assert c.hstatus & C.HSTATUS_SPV and not c.hstatus & C.HSTATUS_SPVP  # from VU
    assert c.hstatus & C.HSTATUS_GVA


def test_hvip_vssip_reaches_vs_mode_as_a_supervisor_software_interrupt() -> None:
    m, h = guest_machine()
    c = h.csr
    c.write(0x603, C.VSSIP)  # hideleg: VS software interrupts to VS-mode
    c.write(0x604, C.VSSIP)  # hie.VSSIE (= vsie.SSIE through hideleg)
    c.vsstatus = C.MSTATUS_SIE
    c.write(0x645, C.VSSIP)  # hvip: the hypervisor injects it
    assert c.read(0x244) & C.SSIP  # the guest sees it in vsip as SSIP
    run_guest(m, "nop", 1)
    assert (h.priv, h.virt, h.pc) == (S, 1, VS_VEC)
    assert c.vscause == (1 << 31) | 1  # VSSI (2) is reported to VS-mode as SSI (1), Priv 8.6.2
    assert not c.vsstatus & C.MSTATUS_SIE and c.vsstatus & C.MSTATUS_SPIE


def test_undelegated_vssip_goes_to_hs_as_code_2() -> None:
    m, h = guest_machine()
    c = h.csr
    c.write(0x604, C.VSSIP)
    c.write(0x645, C.VSSIP)
    run_guest(m, "nop", 1)
    assert (h.priv, h.virt, h.pc) == (S, 0, HS_VEC)  # mideleg[2] is read-only one: HS, not M
    assert c.scause == (1 << 31) | 2 and c.hstatus & C.HSTATUS_SPV
