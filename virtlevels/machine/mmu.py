"""Sv32 address translation (Privileged ISA 20211203, 4.3) and a TLB.

Choices the specification leaves to the implementation, made here:

* **A/D bits.** By default the walker sets A, and D on a store, itself (as Svadu does; Priv
  4.3.2 step 7 allows either). ``svadu=False`` makes a clear A, or a clear D on a store, a page
  fault instead, for operating systems that want to manage the bits in software.
* **TLB.** One unified TLB of ``capacity`` entries (the cost model's ``tlb_entries``), tagged
  with the ASID, with global entries (G bit, or a G bit in any non-leaf PTE on the way) matching
  every ASID. Superpages are held as 4 KiB fragments ("fractured"), which the spec permits;
  SFENCE.VMA by address drops every fragment of the superpage it hits. Replacement is FIFO,
  which is deterministic and needs no bookkeeping on a hit.
* A TLB entry keeps the PTE's permission bits; the permission check (step 5) is repeated on
  every hit, with the current privilege, SUM and MXR, so changing those needs no TLB flush.

Two-stage translation (H extension, Priv 8.5) for V=1 accesses and HLV/HSV:

* The VS-stage is Sv32 rooted at vsatp; every guest-physical address it produces - each
  VS-level PTE it reads or updates (implicit loads and stores) and the final address - goes
  through the G-stage, Sv32x4 rooted at hgatp (a 16 KiB root indexed by GPA[33:22]), whose
  leaves must be U pages and are checked as U-mode accesses (Priv 8.5.1). A G-stage failure is
  a guest-page fault of the original access type (causes 20, 21, 23) with the guest physical
  address left in ``fault_gpa`` for htval/mtval2; stval gets the guest virtual address.
* A/D bits are set by the walker in both stages (or fault, with ``svadu=False``); a VS-level
  A/D update is a store for the G-stage (it needs W there and sets its D).
* The TLB caches the combined translation, tagged by (V, VMID, ASID): guest entries live under
  the tag ``(VMID + 1) << 10 | ASID`` (``| 0x3FF`` for global ones and for a Bare VS-stage), so
  SFENCE.VMA in HS-mode, HFENCE.VVMA and HFENCE.GVMA each drop exactly their own entries.
  Both stages' permission bits are kept and rechecked on every hit.
* Cost: a nested walk costs up to (2+1)*(2+1)-1 = 8 memory references (each of the two VS PTE
  reads needs a 2-level G-stage walk first, then the final G-stage walk), against 2 natively;
  ``gstage_refs`` counts the G-stage part of ``walk_refs``.

Cost accounting is by counters (hits, misses, page-walk memory references) that the hart turns
into cycles with the cost model; a hit in the hart's fast path (its per-page caches, a subset
of this TLB) costs the profile's ``tlb_hit``, which shipped profiles set to 0 because a TLB hit
overlaps the cache access.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from virtlevels.machine.bus import Bus
from virtlevels.machine.csr import (
    HGATP_VMID_MASK,
    HGATP_VMID_SHIFT,
    MSTATUS_MXR,
    MSTATUS_SUM,
    SATP_ASID_MASK,
    SATP_ASID_SHIFT,
    SATP_MODE,
    SATP_PPN_MASK,
)
from virtlevels.machine.trap import (
    ACCESS_FAULT_CAUSE,
    FETCH,
    GUEST_PAGE_FAULT_CAUSE,
    LOAD,
    PAGE_FAULT_CAUSE,
    STORE,
    Trap,
)

# Sv32 PTE bits (Priv 4.3.1, figure 4.18).
PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D = (1 << i for i in range(8))
PAGESIZE = 4096
LEVELS = 2
PTESIZE = 4
GLOBAL = -1  # the ASID key under which global entries are stored
GUEST_GLOBAL = 0x3FF  # low bits of a guest tag for global (and Bare VS-stage) entries

U_MODE, S_MODE = 0, 1


@attrs.define(slots=True)
class TlbEntry:
    vpn: int
    ppn: int  # physical page of this 4 KiB fragment
    perm: int  # PTE bits 7:0 (V R W X U G A D)
    level: int  # 1 = part of a 4 MiB megapage, 0 = a 4 KiB page
    asid: int  # GLOBAL for global mappings; for guest entries the (VMID, ASID) tag
    vmid: int = -1  # -1 for V=0 translations
    gppn: int = 0  # guest entries: the guest physical page (for HFENCE.GVMA)
    glevel: int = 0  # guest entries: 1 if the G-stage leaf is a megapage
    gperm: int = -1  # guest entries: G-stage leaf bits 7:0, -1 when hgatp is Bare



def check_permission(perm: int, va: int, access: int, priv: int, mstatus: int) -> None:
    """Priv 4.3.2 step 5 (with 4.3.1's U, SUM and MXR rules): raise a page fault if ``perm`` (a
    leaf PTE's bits) does not allow ``access`` at ``priv``. Shared by the MMU and by software that
    walks guest page tables (a VMM's shadow tables)."""
    if access == FETCH:
        ok = perm & PTE_X and (perm & PTE_U if priv == U_MODE else not perm & PTE_U)
    else:
        if access == STORE:
            ok = bool(perm & PTE_W)
        else:  # MXR makes executable pages readable (Priv 3.1.6.3)
            ok = bool(perm & PTE_R or (mstatus & MSTATUS_MXR and perm & PTE_X))
        if ok:
            if priv == U_MODE:
                ok = bool(perm & PTE_U)
            elif perm & PTE_U:  # S-mode touches U pages only with SUM (Priv 4.3.1)
                ok = bool(mstatus & MSTATUS_SUM)
    if not ok:
        raise Trap(PAGE_FAULT_CAUSE[access], va)

@attrs.define(eq=False)
class Mmu:
    """The Sv32 page-table walker and TLB of one hart."""

    bus: Bus
    capacity: int = 32
    svadu: bool = True
    tlb: dict[tuple[int, int], TlbEntry] = attrs.field(factory=dict)
    on_evict: Callable[[int], None] | None = None  # told the vpn of an entry that left the TLB
    hits: int = 0
    misses: int = 0
    walks: int = 0
    walk_refs: int = 0
    gstage_refs: int = 0  # the G-stage references among walk_refs (H extension)
    fault_gpa: int = 0  # guest physical address of the last guest-page fault (for htval/mtval2)
    has_guest: bool = False  # a guest entry was ever inserted (fences must then filter)

    # -- translation --------------------------------------------------------------------------
    def translate(self, va: int, access: int, priv: int, mstatus: int, satp: int) -> int:
        """The physical address of ``va`` for ``access`` (FETCH/LOAD/STORE) at ``priv``; raises Trap."""
        vpn = va >> 12
        asid = (satp >> SATP_ASID_SHIFT) & SATP_ASID_MASK
        tlb = self.tlb
        entry = tlb.get((asid, vpn))
        if entry is None:
            entry = tlb.get((GLOBAL, vpn))
        if entry is not None and (access != STORE or entry.perm & PTE_D):
            self.hits += 1
            self._check(entry.perm, va, access, priv, mstatus)
        else:
            # Miss, or a store through an entry whose D bit is clear: walk again so step 7 sets D.
            self.misses += 1
            entry = self._walk(va, access, priv, mstatus, satp, asid)
            self._insert(entry)
        return (entry.ppn << 12) | (va & 0xFFF)

    def _check(self, perm: int, va: int, access: int, priv: int, mstatus: int) -> None:
        check_permission(perm, va, access, priv, mstatus)

    def _read_pte(self, pte_addr: int, access: int, va: int) -> int:
        # Step 2: a PTE outside RAM is an access fault of the original access type.
        self.walk_refs += 1
        if not self.bus.is_ram(pte_addr, PTESIZE) or self.bus.find(pte_addr, PTESIZE) is not None:
            raise Trap(ACCESS_FAULT_CAUSE[access], va)
        return self.bus.memory.read(pte_addr, PTESIZE)

    def _walk(self, va: int, access: int, priv: int, mstatus: int, satp: int, asid: int) -> TlbEntry:
        """The Sv32 walk, Priv 4.3.2 steps 1-8."""
        self.walks += 1
        fault = PAGE_FAULT_CAUSE[access]
        vpn = (va >> 12 & 0x3FF, va >> 22 & 0x3FF)
        a = (satp & SATP_PPN_MASK) * PAGESIZE  # step 1
        i = LEVELS - 1
        global_ = False
        while True:
            pte_addr = a + vpn[i] * PTESIZE  # step 2
            pte = self._read_pte(pte_addr, access, va)
            if not pte & PTE_V or (not pte & PTE_R and pte & PTE_W):  # step 3
                raise Trap(fault, va)
            global_ = global_ or bool(pte & PTE_G)
            if pte & (PTE_R | PTE_X):  # step 4: a leaf
                break
            i -= 1
            if i < 0:
                raise Trap(fault, va)
            a = (pte >> 10) * PAGESIZE
        self._check(pte, va, access, priv, mstatus)  # step 5
        ppn = pte >> 10
        if i > 0 and ppn & 0x3FF:  # step 6: misaligned superpage
            raise Trap(fault, va)
        if not pte & PTE_A or (access == STORE and not pte & PTE_D):  # step 7
            if not self.svadu:
                raise Trap(fault, va)
            pte |= PTE_A | (PTE_D if access == STORE else 0)
            self.walk_refs += 1
            self.bus.memory.write(pte_addr, PTESIZE, pte)
        if i > 0:  # step 8: the superpage supplies ppn[1], the address supplies ppn[0]
            ppn = (ppn & ~0x3FF) | vpn[0]
        return TlbEntry(va >> 12, ppn, pte & 0xFF, i, GLOBAL if global_ else asid)

    # -- two-stage translation (H extension, Priv 8.5) ------------------------------------------
    def translate_guest(
        self, va: int, access: int, priv: int, mstatus: int, vsstatus: int, vsatp: int, hgatp: int,
        hlvx: bool = False,
    ) -> int:  # fmt: skip
        """The supervisor physical address of guest virtual ``va`` (V=1 access at nominal ``priv``)."""
        vs_on = vsatp & SATP_MODE
        if not vs_on and not hgatp & SATP_MODE:
            return va
        tag = ((hgatp >> HGATP_VMID_SHIFT & HGATP_VMID_MASK) + 1) << 10
        vpn = va >> 12
        tlb = self.tlb
        entry = tlb.get((tag | (vsatp >> SATP_ASID_SHIFT & SATP_ASID_MASK), vpn)) if vs_on else None
        if entry is None:
            entry = tlb.get((tag | GUEST_GLOBAL, vpn))
        if entry is not None and (access != STORE or entry.perm & entry.gperm & PTE_D):
            self.hits += 1
            if entry.perm >= 0:
                self._check_vs(entry.perm, va, access, priv, mstatus, vsstatus, hlvx)
            if entry.gperm >= 0:
                self._check_g(entry.gperm, (entry.gppn << 12) | (va & 0xFFF), va, access, mstatus, hlvx)
        else:
            self.misses += 1
            entry = self._walk_guest(va, access, priv, mstatus, vsstatus, vsatp, hgatp, tag, hlvx)
            self._insert(entry)
            self.has_guest = True
        return (entry.ppn << 12) | (va & 0xFFF)

    def _check_vs(
        self, perm: int, va: int, access: int, priv: int, mstatus: int, vsstatus: int, hlvx: bool
    ) -> None:
        """VS-stage permissions (Priv 8.5.1 with 4.3.1): vsstatus.SUM; vsstatus.MXR or mstatus.MXR."""
        if access == FETCH:
            ok = perm & PTE_X and (perm & PTE_U if priv == U_MODE else not perm & PTE_U)
        else:
            if access == STORE:
                ok = bool(perm & PTE_W)
            elif hlvx:  # Priv 8.3.1 HLVX: execute permission stands in for read permission
                ok = bool(perm & PTE_X)
            else:
                ok = bool(perm & PTE_R or ((mstatus | vsstatus) & MSTATUS_MXR and perm & PTE_X))
            if ok:
                if priv == U_MODE:
                    ok = bool(perm & PTE_U)
                elif perm & PTE_U:
                    ok = bool(vsstatus & MSTATUS_SUM)
        if not ok:
            raise Trap(PAGE_FAULT_CAUSE[access], va)

    def _check_g(self, perm: int, gpa: int, va: int, access: int, mstatus: int, hlvx: bool) -> None:
        """G-stage permissions (Priv 8.5.1): checked as U-mode; only mstatus (HS) MXR applies."""
        if access == FETCH or hlvx:
            ok = perm & PTE_X
        elif access == STORE:
            ok = perm & PTE_W
        else:
            ok = perm & PTE_R or (mstatus & MSTATUS_MXR and perm & PTE_X)
        if not ok or not perm & PTE_U:
            self.fault_gpa = gpa
            raise Trap(GUEST_PAGE_FAULT_CAUSE[access], va)

    def _gstage(
        self, gpa: int, access: int, orig: int, va: int, mstatus: int, hgatp: int, hlvx: bool = False
    ) -> tuple[int, int, int]:
        """Sv32x4 walk of ``gpa`` for ``access`` (Priv 8.5.1); faults are reported as the original
        access ``orig`` at guest virtual ``va``. Returns (physical page, leaf bits, level)."""
        fault = GUEST_PAGE_FAULT_CAUSE[orig]
        if gpa >> 34:
            self.fault_gpa = gpa
            raise Trap(fault, va)
        vpn = (gpa >> 12 & 0x3FF, gpa >> 22)  # vpn[1] is 12 bits: the 16 KiB root (Priv 8.5.1)
        a = (hgatp & SATP_PPN_MASK) * PAGESIZE
        i = LEVELS - 1
        refs = self.walk_refs
        while True:
            pte_addr = a + vpn[i] * PTESIZE
            pte = self._read_pte(pte_addr, orig, va)
            if not pte & PTE_V or (not pte & PTE_R and pte & PTE_W):
                self.fault_gpa = gpa
                self.gstage_refs += self.walk_refs - refs
                raise Trap(fault, va)
            if pte & (PTE_R | PTE_X):
                break
            i -= 1
            if i < 0:
                self.fault_gpa = gpa
                self.gstage_refs += self.walk_refs - refs
                raise Trap(fault, va)
            a = (pte >> 10) * PAGESIZE
        try:
            self._check_g(pte & 0xFF, gpa, va, access, mstatus, hlvx)
            ppn = pte >> 10
            if i > 0 and ppn & 0x3FF:  # misaligned superpage
                self.fault_gpa = gpa
                raise Trap(fault, va)
            if not pte & PTE_A or (access == STORE and not pte & PTE_D):
                if not self.svadu:
                    self.fault_gpa = gpa
                    raise Trap(fault, va)
                pte |= PTE_A | (PTE_D if access == STORE else 0)
                self.walk_refs += 1
                self.bus.memory.write(pte_addr, PTESIZE, pte)
        except Trap as trap:
            trap.cause = fault  # an implicit access faults as the original access type (Priv 8.5.2)
            self.gstage_refs += self.walk_refs - refs
            raise
        self.gstage_refs += self.walk_refs - refs
        if i > 0:
            ppn = (ppn & ~0x3FF) | vpn[0]
        return ppn, pte & 0xFF, i

    def _walk_guest(
        self, va: int, access: int, priv: int, mstatus: int, vsstatus: int, vsatp: int, hgatp: int,
        tag: int, hlvx: bool,
    ) -> TlbEntry:  # fmt: skip
        """VS-stage Sv32 walk whose every guest-physical reference is G-stage translated."""
        self.walks += 1
        g_on = hgatp & SATP_MODE
        level = 0
        if vsatp & SATP_MODE:
            fault = PAGE_FAULT_CAUSE[access]
            vpn = (va >> 12 & 0x3FF, va >> 22 & 0x3FF)
            a = (vsatp & SATP_PPN_MASK) * PAGESIZE
            i = LEVELS - 1
            global_ = False
            while True:
                pte_gpa = a + vpn[i] * PTESIZE
                pte_addr = pte_gpa
                if g_on:  # an implicit load of the VS-level page table
                    gp, _, _ = self._gstage(pte_gpa, LOAD, access, va, mstatus, hgatp)
                    pte_addr = (gp << 12) | (pte_gpa & 0xFFF)
                pte = self._read_pte(pte_addr, access, va)
                if not pte & PTE_V or (not pte & PTE_R and pte & PTE_W):
                    raise Trap(fault, va)
                global_ = global_ or bool(pte & PTE_G)
                if pte & (PTE_R | PTE_X):
                    break
                i -= 1
                if i < 0:
                    raise Trap(fault, va)
                a = (pte >> 10) * PAGESIZE
            self._check_vs(pte, va, access, priv, mstatus, vsstatus, hlvx)
            gppn = pte >> 10
            if i > 0 and gppn & 0x3FF:
                raise Trap(fault, va)
            if not pte & PTE_A or (access == STORE and not pte & PTE_D):
                if not self.svadu:
                    raise Trap(fault, va)
                pte |= PTE_A | (PTE_D if access == STORE else 0)
                if g_on:  # the A/D update is a store for the G-stage (Priv 8.5.1)
                    gp, _, _ = self._gstage(pte_gpa, STORE, access, va, mstatus, hgatp)
                    pte_addr = (gp << 12) | (pte_gpa & 0xFFF)
                self.walk_refs += 1
                self.bus.memory.write(pte_addr, PTESIZE, pte)
            if i > 0:
                gppn = (gppn & ~0x3FF) | vpn[0]
            perm = pte & 0xFF
            level = i
            tag |= GUEST_GLOBAL if global_ else vsatp >> SATP_ASID_SHIFT & SATP_ASID_MASK
        else:
            gppn = va >> 12
            perm = -1  # Bare VS-stage: no VS permissions to check
            tag |= GUEST_GLOBAL
        if g_on:
            ppn, gperm, glevel = self._gstage(
                (gppn << 12) | (va & 0xFFF), access, access, va, mstatus, hgatp, hlvx
            )
        else:
            ppn, gperm, glevel = gppn, -1, 0
        vmid = hgatp >> HGATP_VMID_SHIFT & HGATP_VMID_MASK
        return TlbEntry(va >> 12, ppn, perm, level, tag, vmid, gppn, glevel, gperm)

    # -- TLB maintenance ----------------------------------------------------------------------
    def _insert(self, entry: TlbEntry) -> None:
        tlb = self.tlb
        key = (entry.asid, entry.vpn)
        tlb.pop(key, None)
        while len(tlb) >= self.capacity:
            old_key = next(iter(tlb))  # FIFO: dicts keep insertion order
            del tlb[old_key]
            if self.on_evict is not None:
                self.on_evict(old_key[1])
        tlb[key] = entry

    def flush(self, vaddr: int | None = None, asid: int | None = None) -> None:
        """SFENCE.VMA semantics (Priv 4.2.1): ``None`` means "all" (rs1 = x0 or rs2 = x0).

        Only V=0 translations: guest ones are fenced by :meth:`flush_vs` and :meth:`flush_g`."""
        if vaddr is None and asid is None and not self.has_guest:
            self.tlb.clear()
            return
        vpn = None if vaddr is None else vaddr >> 12
        mega = None if vaddr is None else vaddr >> 22
        drop = []
        for key, e in self.tlb.items():
            if e.vmid >= 0:
                continue
            if vpn is not None and not (e.vpn == vpn or (e.level == 1 and e.vpn >> 10 == mega)):
                continue
            if asid is not None and (e.asid == GLOBAL or e.asid != asid):
                continue  # an ASID-specific fence leaves global mappings alone
            drop.append(key)
        for key in drop:
            del self.tlb[key]

    def flush_vs(self, vaddr: int | None, asid: int | None, vmid: int) -> None:
        """HFENCE.VVMA, and SFENCE.VMA in VS-mode (Priv 8.3.2): VS-stage entries of ``vmid``."""
        vpn = None if vaddr is None else vaddr >> 12
        mega = None if vaddr is None else vaddr >> 22
        drop = []
        for key, e in self.tlb.items():
            if e.vmid != vmid:
                continue
            if vpn is not None and not (e.vpn == vpn or (e.level == 1 and e.vpn >> 10 == mega)):
                continue
            if asid is not None and (e.asid & GUEST_GLOBAL == GUEST_GLOBAL or e.asid & 0x1FF != asid):
                continue
            drop.append(key)
        for key in drop:
            del self.tlb[key]

    def flush_g(self, gpa: int | None, vmid: int | None) -> None:
        """HFENCE.GVMA (Priv 8.3.2): entries whose G-stage translation maps guest physical ``gpa``
        (None: every page) for ``vmid`` (None: every VMID). Combined entries hold both stages, so
        dropping them also drops the VS-stage part, which the spec allows."""
        gpn = None if gpa is None else gpa >> 12
        drop = []
        for key, e in self.tlb.items():
            if e.vmid < 0 or (vmid is not None and e.vmid != vmid):
                continue
            if gpn is not None and not (e.gppn == gpn or (e.glevel == 1 and e.gppn >> 10 == gpn >> 10)):
                continue
            drop.append(key)
        for key in drop:
            del self.tlb[key]

    def snapshot_counters(self) -> dict[str, int]:
        out = {"hits": self.hits, "misses": self.misses, "walks": self.walks, "walk_refs": self.walk_refs}
        if self.gstage_refs:
            out["gstage_refs"] = self.gstage_refs
        return out

    def restore_counters(self, state: dict[str, int]) -> None:
        self.hits, self.misses = int(state["hits"]), int(state["misses"])
        self.walks, self.walk_refs = int(state["walks"]), int(state["walk_refs"])
        self.gstage_refs = int(state.get("gstage_refs", 0))
