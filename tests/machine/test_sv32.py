"""Sv32 translation (Priv 4.3): walks, superpages, A/D, SUM/MXR/MPRV, faults, the TLB."""

from __future__ import annotations

import pytest
from encode import enc, machine_with, step

from virtlevels.machine import csr as C
from virtlevels.machine.hart import Hart
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.memmap import RAM_BASE
from virtlevels.machine.mmu import PTE_A, PTE_D, PTE_G, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X

U, S, M = 0, 1, 3
ROOT = RAM_BASE + 0x10_0000
L0 = ROOT + 0x1000  # one level-0 table, for VA 0x0040_0000..0x007F_FFFF
DATA = RAM_BASE + 0x20_0000
VA = 0x0040_1000
RWXAD = PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D


def pte(pa: int, flags: int) -> int:
    return ((pa >> 12) << 10) | flags


def setup(
    *words: int, priv: int = S, svadu: bool = True, asid: int = 0, **csrs: int
) -> tuple[PhysicalMachine, Hart]:
    """Code at RAM_BASE identity-mapped by a kernel megapage; VA's level-0 table at L0."""
    m = machine_with(list(words), svadu=svadu)
    mem = m.memory
    mem.write(ROOT + 4 * (RAM_BASE >> 22), 4, pte(RAM_BASE, RWXAD | PTE_G))
    mem.write(ROOT + 4 * (VA >> 22), 4, pte(L0, PTE_V))
    h = m.harts[0]
    h.csr.mtvec = RAM_BASE + 0x800
    h.csr.satp = C.SATP_MODE | asid << 22 | ROOT >> 12
    for name, value in csrs.items():
        setattr(h.csr, name, value)
    h.set_priv(priv)
    h.context_changed()
    return m, h


def map4k(m: PhysicalMachine, va: int, pa: int, flags: int) -> int:
    addr = L0 + 4 * ((va >> 12) & 0x3FF)
    m.memory.write(addr, 4, pte(pa, flags))
    return addr


def test_load_and_store_through_a_4k_page() -> None:
    m, h = setup(enc("lw", rd=3, rs1=1, imm=4), enc("sw", rs1=1, rs2=3, imm=8))
    map4k(m, VA, DATA, RWXAD)
    m.memory.write(DATA + 4, 4, 0xCAFEF00D)
    h.x[1] = VA
    m.run(max_instructions=2)
    assert h.trap_count == 0
    assert h.x[3] == 0xCAFEF00D and m.memory.read(DATA + 8, 4) == 0xCAFEF00D


def test_hardware_sets_a_and_d() -> None:
    m, h = setup(enc("lw", rd=3, rs1=1), enc("sw", rs1=1, rs2=3))
    addr = map4k(m, VA, DATA, PTE_V | PTE_R | PTE_W)
    h.x[1] = VA
    step(m)
    assert m.memory.read(addr, 4) & (PTE_A | PTE_D) == PTE_A  # a load sets A only
    step(m)
    assert m.memory.read(addr, 4) & (PTE_A | PTE_D) == PTE_A | PTE_D
    assert h.trap_count == 0


@pytest.mark.parametrize(
    ("word", "flags", "cause"),
    [
        (enc("lw", rd=3, rs1=1), PTE_V | PTE_R, 13),  # A clear
        (enc("sw", rs1=1, rs2=3), PTE_V | PTE_R | PTE_W | PTE_A, 15),  # D clear on a store
    ],
)
def test_without_svadu_clear_a_or_d_is_a_page_fault(word: int, flags: int, cause: int) -> None:
    m, h = setup(word, svadu=False)
    addr = map4k(m, VA, DATA, flags)
    h.x[1] = VA + 0x10
    step(m)
    assert (h.csr.mcause, h.csr.mtval) == (cause, VA + 0x10)
    assert m.memory.read(addr, 4) == pte(DATA, flags)  # the PTE is untouched


def test_megapage_translation() -> None:
    m, h = setup(enc("lw", rd=3, rs1=1))
    va = 0x0080_0000 + 0x12344
    m.memory.write(ROOT + 4 * (va >> 22), 4, pte(RAM_BASE + 0x40_0000, RWXAD))
    m.memory.write(RAM_BASE + 0x40_0000 + 0x12344, 4, 77)
    h.x[1] = va
    step(m)
    assert h.x[3] == 77


def test_misaligned_megapage_is_a_page_fault() -> None:
    m, h = setup(enc("lw", rd=3, rs1=1))
    va = 0x0080_0000
    m.memory.write(ROOT + 4 * (va >> 22), 4, pte(RAM_BASE + 0x1000, RWXAD))  # ppn[0] != 0
    h.x[1] = va
    step(m)
    assert (h.csr.mcause, h.csr.mtval) == (13, va)


@pytest.mark.parametrize(
    ("word", "flags", "cause"),
    [
        (enc("lw", rd=3, rs1=1), 0, 13),  # invalid
        (enc("sw", rs1=1, rs2=3), 0, 15),
        (enc("lw", rd=3, rs1=1), PTE_V | PTE_W | PTE_A | PTE_D, 13),  # W without R is reserved
        (enc("sw", rs1=1, rs2=3), PTE_V | PTE_R | PTE_A, 15),  # read-only
        (enc("amoadd.w", rd=3, rs1=1, rs2=3), PTE_V | PTE_R | PTE_A, 15),  # AMOs fault as stores
        (enc("lw", rd=3, rs1=1), PTE_V | PTE_X | PTE_A, 13),  # execute-only without MXR
        (enc("jalr", rs1=1), PTE_V | PTE_R | PTE_A, 12),  # not executable: fault on the fetch
    ],
)
def test_page_faults_carry_the_virtual_address(word: int, flags: int, cause: int) -> None:
    m, h = setup(word)
    map4k(m, VA, DATA, flags)
    h.x[1] = VA
    m.run(max_instructions=2 if cause == 12 else 1)
    assert (h.csr.mcause, h.csr.mtval) == (cause, VA)


def test_non_leaf_at_level_0_is_a_page_fault() -> None:
    m, h = setup(enc("lw", rd=3, rs1=1))
    map4k(m, VA, DATA, PTE_V)  # a pointer where a leaf must be
    h.x[1] = VA
    step(m)
    assert h.csr.mcause == 13


def test_page_table_outside_ram_is_an_access_fault() -> None:
    m, h = setup(enc("sw", rs1=1, rs2=3))
    m.memory.write(ROOT + 4 * (VA >> 22), 4, pte(0x4000_0000, PTE_V))
    h.x[1] = VA
    step(m)
    assert (h.csr.mcause, h.csr.mtval) == (7, VA)  # store/AMO access fault, the original access type


def test_sum_controls_supervisor_access_to_user_pages() -> None:
    m, h = setup(enc("lw", rd=3, rs1=1))
    map4k(m, VA, DATA, RWXAD | PTE_U)
    h.x[1] = VA
    step(m)
    assert h.csr.mcause == 13
    m, h = setup(enc("lw", rd=3, rs1=1), mstatus=C.MSTATUS_SUM)
    map4k(m, VA, DATA, RWXAD | PTE_U)
    h.x[1] = VA
    step(m)
    assert h.trap_count == 0


def test_supervisor_never_executes_user_pages_even_with_sum() -> None:
    m, h = setup(enc("jalr", rs1=1), mstatus=C.MSTATUS_SUM)
    map4k(m, VA, DATA, RWXAD | PTE_U)
    h.x[1] = VA
    m.run(max_instructions=2)
    assert (h.csr.mcause, h.csr.mtval) == (12, VA)


def test_user_mode_needs_the_u_bit() -> None:
    m, h = setup(enc("lw", rd=3, rs1=1), priv=U)
    m.memory.write(ROOT + 4 * (RAM_BASE >> 22), 4, pte(RAM_BASE, RWXAD | PTE_U))  # user code
    map4k(m, VA, DATA, RWXAD)  # supervisor data
    h.x[1] = VA
    step(m)
    assert (h.csr.mcause, h.csr.mtval) == (13, VA)


def test_mxr_makes_executable_pages_readable() -> None:
    m, h = setup(enc("lw", rd=3, rs1=1), mstatus=C.MSTATUS_MXR)
    map4k(m, VA, DATA, PTE_V | PTE_X | PTE_A)
    m.memory.write(DATA, 4, 5)
    h.x[1] = VA
    step(m)
    assert h.trap_count == 0 and h.x[3] == 5


def test_mprv_translates_m_mode_loads_with_mpp() -> None:
    mstatus = C.MSTATUS_MPRV | (S << C.MSTATUS_MPP_SHIFT)
    m, h = setup(enc("lw", rd=3, rs1=1), priv=M, mstatus=mstatus)
    map4k(m, VA, DATA, RWXAD)
    m.memory.write(DATA, 4, 99)
    h.x[1] = VA
    step(m)
    assert h.x[3] == 99  # fetch is untranslated (M-mode), the load is translated as S


def test_bare_mode_in_s_is_physical() -> None:
    m, h = setup(enc("lw", rd=3, rs1=1))
    h.csr.satp = 0
    h.context_changed()
    m.memory.write(DATA, 4, 11)
    h.x[1] = DATA
    step(m)
    assert h.x[3] == 11


# -- the TLB ----------------------------------------------------------------------------------------
def test_tlb_keeps_a_stale_translation_until_sfence_vma() -> None:
    words = [enc("lw", rd=3, rs1=1), enc("lw", rd=4, rs1=1), enc("sfence.vma", rs1=1), enc("lw", rd=5, rs1=1)]
    m, h = setup(*words)
    map4k(m, VA, DATA, RWXAD)
    m.memory.write(DATA, 4, 1)
    m.memory.write(DATA + 0x1000, 4, 2)
    h.x[1] = VA
    step(m)
    map4k(m, VA, DATA + 0x1000, RWXAD)  # the OS changes the PTE...
    m.run(max_instructions=3)
    assert (h.x[3], h.x[4], h.x[5]) == (1, 1, 2)  # ...and sees it only after SFENCE.VMA


def test_sfence_by_asid_keeps_global_and_other_asid_entries() -> None:
    m, h = setup(asid=3)
    map4k(m, VA, DATA, RWXAD)
    map4k(m, VA + 0x1000, DATA, RWXAD | PTE_G)
    h.translate(VA, 1)
    h.translate(VA + 0x1000, 1)
    mmu = h.mmu
    assert (3, VA >> 12) in mmu.tlb and (-1, (VA + 0x1000) >> 12) in mmu.tlb
    mmu.flush(asid=4)
    assert len(mmu.tlb) == 2  # another ASID: nothing to drop
    mmu.flush(asid=3)
    assert (3, VA >> 12) not in mmu.tlb and (-1, (VA + 0x1000) >> 12) in mmu.tlb
    mmu.flush(vaddr=VA + 0x1000)
    assert (-1, (VA + 0x1000) >> 12) not in mmu.tlb


def test_sfence_by_address_drops_every_fragment_of_a_megapage() -> None:
    m, h = setup()
    h.translate(RAM_BASE + 0x5000, 1)
    h.translate(RAM_BASE + 0x9000, 1)
    h.mmu.flush(vaddr=RAM_BASE)
    assert not h.mmu.tlb


def test_asids_tag_entries() -> None:
    m, h = setup(asid=1)
    map4k(m, VA, DATA, RWXAD)
    h.translate(VA, 1)
    h.csr.write(0x180, C.SATP_MODE | 2 << 22 | ROOT >> 12)  # switch address space, no fence
    map4k(m, VA, DATA + 0x1000, RWXAD)
    assert h.translate(VA, 1) == DATA + 0x1000  # ASID 2 walks; ASID 1's entry does not match
    h.csr.write(0x180, C.SATP_MODE | 1 << 22 | ROOT >> 12)
    assert h.translate(VA, 1) == DATA  # ASID 1's stale entry is still there


def test_tlb_capacity_and_costs() -> None:
    m, h = setup()
    cap = m.cost.tlb_entries
    for i in range(cap + 8):
        map4k(m, VA + 0x1000 * i, DATA, RWXAD)
    mmu = h.mmu
    for i in range(cap + 8):
        h.translate(VA + 0x1000 * i, 1)
    assert len(mmu.tlb) == cap
    misses, refs = mmu.misses, mmu.walk_refs
    assert misses == cap + 8 and refs == 2 * (cap + 8)
    h.translate(VA + 0x1000 * (cap + 7), 1)  # still there
    h.translate(VA, 1)  # evicted first (FIFO): walks again
    assert (mmu.hits, mmu.misses) == (1, misses + 1)
    cats = h.cycles_by_category()
    cost = m.cost
    want = mmu.misses * cost.tlb_miss + mmu.walk_refs * cost.page_walk_ref + mmu.hits * cost.tlb_hit
    assert cats["tlb"] == want


def test_paged_loop_charges_walks_once_per_page() -> None:
    # 64 loads over 4 pages: 4 walks (2 references each), then fast-path hits; the code's megapage
    # costs one walk of one reference.
    loop = [enc("lw", rd=3, rs1=1), enc("addi", rd=1, rs1=1, imm=256), enc("addi", rd=2, rs1=2, imm=-1),
            enc("bne", rs1=2, rs2=0, imm=-12)]  # fmt: skip
    m, h = setup(*loop)
    for i in range(4):
        map4k(m, VA + 0x1000 * i, DATA + 0x1000 * i, RWXAD)
    h.x[1], h.x[2] = VA, 64
    r = m.run(max_instructions=256)
    assert h.trap_count == 0 and h.x[2] == 0
    assert h.mmu.walks == 5  # the code megapage and 4 data pages
    assert h.mmu.walk_refs == 9
    assert r.cycles_by_category["tlb"] == 5 * m.cost.tlb_miss + 9 * m.cost.page_walk_ref
