"""Two-stage translation (Priv 8.4): VS-stage Sv32 over the Sv32x4 G-stage, guest-page faults with
htval/mtval2, implicit G-stage accesses of the VS walk, the (V, VMID, ASID)-tagged TLB and the
fences, HLV/HLVX/HSV, and the page-walk reference counts of nested walks."""

from __future__ import annotations

import pytest
from hext_util import (
    G_L0,
    GUEST,
    PTE_A,
    PTE_D,
    PTE_R,
    PTE_U,
    PTE_V,
    PTE_W,
    PTE_X,
    RAM_BASE,
    RWXAD,
    URWXAD,
    VMID,
    VS_L0,
    S,
    U,
    code,
    enter,
    g_map,
    guest_machine,
    run_guest,
    vs_map,
)

from virtlevels.machine import csr as C

DATA_GVA = 0x0020_5000  # guest virtual page used for data
DATA_GPA = 0x0003_0000  # guest physical page behind it


def data_machine(vs_flags: int = RWXAD, g_flags: int = URWXAD, **kw: object):  # type: ignore[no-untyped-def]
    m, h = guest_machine(**kw)
    vs_map(m, DATA_GVA, DATA_GPA, vs_flags)
    g_map(m, DATA_GPA, GUEST + DATA_GPA, g_flags)
    h.x[9] = DATA_GVA + 8
    return m, h


def test_two_stage_load_and_store_reach_the_host_page() -> None:
    m, h = data_machine()
    m.memory.write(GUEST + DATA_GPA + 8, 4, 0x1234_5678)
    run_guest(m, "lw a0, 0(s1)\nsw a0, 4(s1)", 2)
    assert h.trap_count == 0 and h.x[10] == 0x1234_5678
    assert m.memory.read(GUEST + DATA_GPA + 12, 4) == 0x1234_5678


def test_a_nested_walk_costs_eight_references() -> None:
    m, h = data_machine()
    run_guest(m, "nop", 1)  # the code page's walk
    before, g_before = h.mmu.walk_refs, h.mmu.gstage_refs
    run_guest(m, "lw a0, 0(s1)", 1)
    # (levels + 1) * (levels + 1) - 1 = 8 for two levels per stage: 6 of them in the G-stage.
    assert h.mmu.walk_refs - before == 8 and h.mmu.gstage_refs - g_before == 6
    before = h.mmu.walk_refs
    run_guest(m, "lw a0, 0(s1)", 1)
    assert h.mmu.walk_refs == before  # a TLB hit


def test_hgatp_bare_means_no_g_stage() -> None:
    m, h = guest_machine(g=False)
    # With hgatp Bare guest physical = host physical: put the VS tables and code there.
    mem = m.memory
    h.csr.vsatp = 0
    mem.write_bytes(RAM_BASE + 0x1000, code("lw a0, 0(s1)"))
    mem.write(RAM_BASE + 0x2000, 4, 77)
    h.x[9] = RAM_BASE + 0x2000
    enter(h, S, 1, RAM_BASE + 0x1000)
    m.run(max_instructions=1)
    assert h.x[10] == 77 and h.mmu.walk_refs == 0


def test_vs_stage_fault_is_an_ordinary_page_fault() -> None:
    m, h = data_machine(vs_flags=PTE_V | PTE_R | PTE_A)  # read-only in the VS-stage
    run_guest(m, "sw a0, 0(s1)", 1)
    c = h.csr
    assert c.mcause == 15 and c.mtval == DATA_GVA + 8 and c.mtval2 == 0
    assert c.mstatush & C.MSTATUSH_GVA and c.mstatush & C.MSTATUSH_MPV


@pytest.mark.parametrize(
    ("text", "g_flags", "cause"),
    [
        ("lw a0, 0(s1)", 0, 21),  # unmapped in the G-stage
        ("sw a0, 0(s1)", PTE_V | PTE_R | PTE_U | PTE_A | PTE_D, 23),  # read-only G-stage page
        ("lw a0, 0(s1)", RWXAD, 21),  # G-stage leaves must be U pages
        ("amoadd.w a0, a0, (s1)", PTE_V | PTE_R | PTE_U | PTE_A, 23),
    ],
)
def test_guest_page_faults_report_the_guest_physical_address(text: str, g_flags: int, cause: int) -> None:
    m, h = data_machine(g_flags=g_flags)
    h.csr.medeleg = 1 << cause
    run_guest(m, text, 1)
    c = h.csr
    assert (h.priv, h.virt) == (S, 0) and c.scause == cause
    assert c.stval == DATA_GVA + 8  # the guest virtual address
    assert c.htval == (DATA_GPA + 8) >> 2  # the guest physical address, shifted right by 2
    assert c.htinst == 0 and c.hstatus & C.HSTATUS_GVA and c.hstatus & C.HSTATUS_SPV


def test_fetch_guest_page_fault() -> None:
    m, h = guest_machine()
    g_map(m, 0x4000, 0, 0)
    vs_map(m, 0x4000, 0x4000)
    enter(h, S, 1, 0x4000)
    m.run(max_instructions=1)
    c = h.csr
    assert c.mcause == 20 and c.mtval == 0x4000 and c.mtval2 == 0x4000 >> 2 and c.mepc == 0x4000


def test_g_stage_fault_on_the_vs_page_table_is_reported_for_the_original_access() -> None:
    m, h = guest_machine()
    g_map(m, VS_L0, 0, 0)  # the guest's level-0 page table is not mapped in the G-stage
    run_guest(m, "nop", 1)
    c = h.csr
    # The fetch's implicit read of its VS PTE faulted: an instruction guest-page fault whose
    # htval names the PTE's guest physical address, while mtval is the guest virtual pc.
    assert c.mcause == 20 and c.mtval == 0x1000 and c.mtval2 == (VS_L0 + 4) >> 2
    assert c.mstatush & C.MSTATUSH_GVA


def test_vs_a_d_update_is_a_g_stage_store() -> None:
    m, h = guest_machine()
    vs_map(m, DATA_GVA, DATA_GPA, PTE_V | PTE_R | PTE_W)  # A and D clear: the walker sets them
    run_guest(m, "nop", 1)
    g_map(m, VS_L0, GUEST + VS_L0, PTE_V | PTE_R | PTE_U | PTE_A | PTE_D)  # page table read-only in G
    h.mmu.tlb.clear()
    h.x[9] = DATA_GVA
    run_guest(m, "lw a0, 0(s1)", 1, at=0x2000)
    c = h.csr
    pte_gpa = VS_L0 + 4 * ((DATA_GVA >> 12) & 0x3FF)
    assert c.mcause == 21 and c.mtval == DATA_GVA and c.mtval2 == pte_gpa >> 2
    g_map(m, VS_L0, GUEST + VS_L0)
    h.mmu.tlb.clear()
    run_guest(m, "sw a0, 0(s1)", 1, at=0x2000)
    assert m.memory.read(GUEST + pte_gpa, 4) & (PTE_A | PTE_D) == PTE_A | PTE_D
    g_pte = m.memory.read(G_L0 + 4 * (DATA_GPA >> 12), 4)
    assert g_pte & (PTE_A | PTE_D) == PTE_A | PTE_D  # both stages' A/D set by the store


def test_sum_and_mxr_come_from_vsstatus() -> None:
    m, h = data_machine(vs_flags=RWXAD | PTE_U)
    run_guest(m, "lw a0, 0(s1)", 1)
    assert h.csr.mcause == 13  # a U page from VS-mode without vsstatus.SUM
    h.csr.vsstatus = C.MSTATUS_SUM
    h.csr.mstatus &= ~C.MSTATUS_SUM
    run_guest(m, "lw a0, 0(s1)", 1)
    assert h.trap_count == 1
    m2, h2 = data_machine(vs_flags=PTE_V | PTE_X | PTE_A)  # execute-only
    run_guest(m2, "lw a0, 0(s1)", 1)
    assert h2.csr.mcause == 13
    h2.csr.write(0x200, C.MSTATUS_MXR)
    run_guest(m2, "lw a0, 0(s1)", 1)
    assert h2.trap_count == 1


def test_sfence_in_vs_and_hfence_vvma_flush_guest_entries_only() -> None:
    m, h = data_machine()
    m.memory.write(GUEST + DATA_GPA + 8, 4, 1)
    m.memory.write(GUEST + 0x6000 + 8, 4, 2)
    run_guest(m, "lw a0, 0(s1)", 1)
    vs_map(m, DATA_GVA, 0x6000)  # the guest remaps the page...
    run_guest(m, "lw a0, 0(s1)", 1)
    assert h.x[10] == 1  # ...the TLB still holds the old translation
    run_guest(m, "sfence.vma\nlw a0, 0(s1)", 2)
    assert h.x[10] == 2
    vs_map(m, DATA_GVA, DATA_GPA)
    m.memory.write_bytes(RAM_BASE, code("hfence.vvma zero, zero"))
    enter(h, S, 0, RAM_BASE)
    m.run(max_instructions=1)
    run_guest(m, "lw a0, 0(s1)", 1)
    assert h.x[10] == 1 and h.trap_count == 0


def test_hfence_gvma_flushes_by_guest_physical_address() -> None:
    m, h = data_machine()
    m.memory.write(GUEST + DATA_GPA + 8, 4, 1)
    m.memory.write(RAM_BASE + 0x70_0008, 4, 2)
    run_guest(m, "lw a0, 0(s1)", 1)
    g_map(m, DATA_GPA, RAM_BASE + 0x70_0000)  # the hypervisor moves the guest page
    h.x[12] = 0x7777_0000 >> 2  # a fence for another page leaves it
    h.x[13] = VMID
    m.memory.write_bytes(RAM_BASE, code("hfence.gvma a2, a3"))
    enter(h, S, 0, RAM_BASE)
    m.run(max_instructions=1)
    run_guest(m, "lw a0, 0(s1)", 1)
    assert h.x[10] == 1
    h.x[12] = DATA_GPA >> 2
    enter(h, S, 0, RAM_BASE)
    m.run(max_instructions=1)
    run_guest(m, "lw a0, 0(s1)", 1)
    assert h.x[10] == 2


def test_hs_sfence_leaves_guest_entries_and_vmids_are_separate() -> None:
    m, h = data_machine()
    run_guest(m, "lw a0, 0(s1)", 1)
    guest = {k for k, e in h.mmu.tlb.items() if e.vmid == VMID}
    assert guest
    enter(h, S, 0, RAM_BASE)
    h.sfence_vma(None, None)  # V=0: HS-mode's SFENCE.VMA
    assert guest <= set(h.mmu.tlb)
    h.csr.write(0x680, (h.csr.hgatp & ~(0x7F << 22)) | 9 << 22)  # another VMID: separate entries
    run_guest(m, "lw a0, 0(s1)", 1)
    assert {e.vmid for e in h.mmu.tlb.values()} >= {VMID, 9}


# -- HLV / HLVX / HSV (Priv 8.3.1) --------------------------------------------------------------
def hs_run(m, h, text: str, steps: int = 1) -> None:  # type: ignore[no-untyped-def]
    m.memory.write_bytes(RAM_BASE, code(text))
    enter(h, S, 0, RAM_BASE)
    m.run(max_instructions=steps)


def test_hlv_and_hsv_access_guest_memory_from_hs_mode() -> None:
    m, h = data_machine()
    h.csr.hstatus = C.HSTATUS_SPVP  # as the guest kernel would
    m.memory.write(GUEST + DATA_GPA + 8, 4, 0xFFFF_FF80)
    hs_run(m, h, "hlv.w a0, (s1)\nhlv.b a1, (s1)\nhlv.bu a2, (s1)\nhlv.hu a3, (s1)\nhsv.h a3, (s1)", 5)
    assert h.trap_count == 0 and (h.priv, h.virt) == (S, 0)
    assert (h.x[10], h.x[11], h.x[12], h.x[13]) == (0xFFFF_FF80, 0xFFFF_FF80, 0x80, 0xFF80)


def test_hlv_with_spvp_0_checks_as_vu_and_sets_gva() -> None:
    m, h = data_machine()
    h.csr.medeleg = 1 << 13
    hs_run(m, h, "hlv.w a0, (s1)")
    c = h.csr
    assert c.scause == 13 and c.stval == DATA_GVA + 8 and c.hstatus & C.HSTATUS_GVA
    assert not c.hstatus & C.HSTATUS_SPV  # the trap came from V=0


def test_hlvx_needs_execute_permission() -> None:
    m, h = data_machine(vs_flags=PTE_V | PTE_X | PTE_A)
    h.csr.hstatus = C.HSTATUS_SPVP
    m.memory.write(GUEST + DATA_GPA + 8, 4, 0x0000_0513)
    hs_run(m, h, "hlvx.wu a0, (s1)")
    assert h.trap_count == 0 and h.x[10] == 0x513
    hs_run(m, h, "hlv.w a0, (s1)")
    assert h.csr.mcause == 13


def test_hsv_to_a_g_stage_read_only_page_is_a_store_guest_page_fault() -> None:
    m, h = data_machine(g_flags=PTE_V | PTE_R | PTE_U | PTE_A)
    h.csr.hstatus = C.HSTATUS_SPVP
    hs_run(m, h, "hsv.w a0, (s1)")
    c = h.csr
    assert c.mcause == 23 and c.mtval == DATA_GVA + 8 and c.mtval2 == (DATA_GPA + 8) >> 2
    assert c.mstatush & C.MSTATUSH_GVA and not c.mstatush & C.MSTATUSH_MPV


def test_hlv_from_u_mode_with_hu() -> None:
    m, h = data_machine(vs_flags=RWXAD | PTE_U)
    h.csr.hstatus = C.HSTATUS_HU
    m.memory.write(GUEST + DATA_GPA + 8, 4, 99)
    m.memory.write_bytes(RAM_BASE, code("hlv.w a0, (s1)"))
    enter(h, U, 0, RAM_BASE)
    m.run(max_instructions=1)
    assert h.trap_count == 0 and h.x[10] == 99


def test_vs_mode_code_cannot_leave_the_guest() -> None:
    """Whatever the guest writes in its own page tables, G-stage confines it (resource control)."""
    m, h = guest_machine()
    vs_map(m, DATA_GVA, 0x0038_0000 + 0x400_0000)  # outside the G-mapped guest physical range
    h.x[9] = DATA_GVA
    run_guest(m, "lw a0, 0(s1)", 1)
    assert h.csr.mcause == 21
