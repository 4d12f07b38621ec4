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

Cost accounting is by counters (hits, misses, page-walk memory references) that the hart turns
into cycles with the cost model; a hit in the hart's fast path (its per-page caches, a subset
of this TLB) costs the profile's ``tlb_hit``, which shipped profiles set to 0 because a TLB hit
overlaps the cache access.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from virtlevels.machine.bus import Bus
from virtlevels.machine.csr import MSTATUS_MXR, MSTATUS_SUM, SATP_ASID_MASK, SATP_ASID_SHIFT, SATP_PPN_MASK
from virtlevels.machine.trap import ACCESS_FAULT_CAUSE, FETCH, PAGE_FAULT_CAUSE, STORE, Trap

# Sv32 PTE bits (Priv 4.3.1, figure 4.18).
PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D = (1 << i for i in range(8))
PAGESIZE = 4096
LEVELS = 2
PTESIZE = 4
GLOBAL = -1  # the ASID key under which global entries are stored

U_MODE, S_MODE = 0, 1


@attrs.define(slots=True)
class TlbEntry:
    vpn: int
    ppn: int  # physical page of this 4 KiB fragment
    perm: int  # PTE bits 7:0 (V R W X U G A D)
    level: int  # 1 = part of a 4 MiB megapage, 0 = a 4 KiB page
    asid: int  # GLOBAL for global mappings


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
        """Priv 4.3.2 step 5 (with 4.3.1's U, SUM and MXR rules): raise a page fault if not allowed."""
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
        """SFENCE.VMA semantics (Priv 4.2.1): ``None`` means "all" (rs1 = x0 or rs2 = x0)."""
        if vaddr is None and asid is None:
            self.tlb.clear()
            return
        vpn = None if vaddr is None else vaddr >> 12
        mega = None if vaddr is None else vaddr >> 22
        drop = []
        for key, e in self.tlb.items():
            if vpn is not None and not (e.vpn == vpn or (e.level == 1 and e.vpn >> 10 == mega)):
                continue
            if asid is not None and (e.asid == GLOBAL or e.asid != asid):
                continue  # an ASID-specific fence leaves global mappings alone
            drop.append(key)
        for key in drop:
            del self.tlb[key]

    def snapshot_counters(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "walks": self.walks, "walk_refs": self.walk_refs}

    def restore_counters(self, state: dict[str, int]) -> None:
        self.hits, self.misses = int(state["hits"]), int(state["misses"])
        self.walks, self.walk_refs = int(state["walks"]), int(state["walk_refs"])
