"""Shadow page tables: the guest's Sv32 translations (gVA -> gPA) composed with the VM's memory
map (gPA -> host PA), in real Sv32 tables that a host hart walks while the guest runs deprivileged.

The classic software MMU virtualization of VMware's and Xen's shadow mode (Adams & Agesen,
ASPLOS 2006, section 3.2):

- One shadow per (guest satp, virtual privilege class, SUM, MXR): the guest kernel (virtual S)
  and guest user code (virtual U) run in the same host U-mode, so they need different tables —
  the S shadow maps the guest's non-U pages (and U pages for loads/stores when SUM is set), the
  U shadow only the guest's U pages. Every shadow leaf has U set (the host hart runs in U-mode),
  A and D preset (no host walk ever writes a shadow PTE). A guest running with translation off
  (satp Bare, or virtual M-mode) gets the "bare" shadow: guest-physical = guest-virtual.
- Shadows are filled lazily: a host page fault is looked up in the guest's tables
  (:meth:`ShadowMmu.walk`, Priv 4.3.2 done in software on guest-physical memory); a guest fault is
  given to the guest, a device page is MMIO (never mapped, so every access exits), RAM is mapped.
  A guest-physical address outside the VM's RAM and devices is an access fault for the guest: a
  shadow never points outside the VM's allocation (resource control).
- Every guest page-table page seen by a walk is write-protected in every shadow, so a guest PTE
  store traps; the VMM performs it on guest memory and drops the shadow entries derived from that
  PTE (:meth:`ShadowMmu.pte_written`, counted as ``shadow_updates``). Shadows stay coherent with
  the guest tables at all times, which is stricter than a TLB needs (Priv 4.2.1 lets stale
  translations live until SFENCE.VMA), so guest ``sfence.vma`` needs no shadow work.
- Shadow table frames come from the hypervisor's frame pool and are written through the host's
  physical-memory port; shadows are tagged with host ASIDs so switching between them needs no
  flush. Stale host TLB entries are flushed by the runner (``sfence.vma``) before the next entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.machine.csr import MSTATUS_MXR, MSTATUS_SUM, SATP_ASID_MASK, SATP_ASID_SHIFT, SATP_MODE
from virtlevels.machine.memory import PAGE_SHIFT, PAGE_SIZE
from virtlevels.machine.mmu import PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X, check_permission
from virtlevels.machine.trap import ACCESS_FAULT_CAUSE, FETCH, PAGE_FAULT_CAUSE, STORE, Trap

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels_hypervisor.vm import VirtualMachine

M32 = 0xFFFFFFFF
U_MODE, S_MODE, M_MODE = 0, 1, 3
SATP_PPN = 0x3FFFFF
MAX_SHADOWS = 24  # cached shadows per VM (one per guest address space and privilege class)
MAX_ASID = 511  # Priv 4.1.11: ASIDLEN = 9 on this machine

#: A shadow's identity: (guest satp or 0 for Bare, 1 for the S shadow / 0 for U, SUM, MXR).
ShadowKey = tuple[int, int, int, int]


@attrs.frozen
class GuestWalk:
    """A successful walk of the guest's tables."""

    gpa: int
    perm: int  # the leaf PTE's bits 7:0 (after the A/D update)
    tables: tuple[tuple[int, int], ...]  # (guest-physical page of each table read, its level)


@attrs.frozen
class Fill:
    """What a shadow miss turned out to be.

    kind: ``mapped`` (the shadow now maps the page: retry), ``fault`` (a guest page or access
    fault: ``cause``), ``mmio`` (``gpa`` is a device register), ``pt_write`` (a store the guest
    may do, to one of its own page tables: emulate it).
    """

    kind: str
    gpa: int = 0
    cause: int = 0


@attrs.define(eq=False)
class ShadowTable:
    key: ShadowKey
    root: int  # host-physical address of the root table
    asid: int
    l0: dict[int, int] = attrs.field(factory=dict)  # vpn[1] -> host-physical level-0 table
    maps: dict[int, tuple[int, int]] = attrs.field(factory=dict)  # vpn -> (gppn, shadow PTE)
    rmap: dict[int, set[int]] = attrs.field(factory=dict)  # gppn -> vpns mapping it
    # Guest table pages this shadow was derived from: gppn -> vpn[1]s (level 0) or {-1} (root).
    sources: dict[int, set[int]] = attrs.field(factory=dict)
    l0_src: dict[int, int] = attrs.field(factory=dict)  # vpn[1] -> gppn of the guest level-0 table


@attrs.define(eq=False)
class ShadowMmu:
    """The shadow page tables of one VM.

    ``host`` is the Machine the guest runs on (its ``phys_write`` writes shadow tables);
    ``alloc_frame``/``free_frame`` hand out zeroed host frames (Hypervisor.alloc_frame).
    """

    vm: VirtualMachine
    host: Any
    alloc_frame: Callable[[], int]
    free_frame: Callable[[int], None]
    max_shadows: int = MAX_SHADOWS
    shadows: dict[ShadowKey, ShadowTable] = attrs.field(factory=dict, init=False)
    pt_pages: dict[int, set[ShadowTable]] = attrs.field(factory=dict, init=False)  # guest PT gppn -> users
    flush_vas: set[int] = attrs.field(factory=set, init=False)  # host TLB entries to drop before entry
    flush_all: bool = attrs.field(default=False, init=False)
    frames: int = attrs.field(default=0, init=False)  # host frames in use
    fills: int = attrs.field(default=0, init=False)
    updates: int = attrs.field(default=0, init=False)
    _next_asid: int = attrs.field(default=1, init=False)

    # -- choosing a shadow --------------------------------------------------------------------------
    @staticmethod
    def key_for(vpriv: int, satp: int, mstatus: int) -> ShadowKey:
        if vpriv == M_MODE or not satp & SATP_MODE:
            return (0, 1, 0, 0)
        sv = 1 if vpriv == S_MODE else 0
        return (satp, sv, 1 if sv and mstatus & MSTATUS_SUM else 0, 1 if mstatus & MSTATUS_MXR else 0)

    def shadow(self, key: ShadowKey) -> ShadowTable:
        """The shadow for ``key``, made (empty) if needed; the least recently used one is evicted."""
        sh = self.shadows.pop(key, None)
        if sh is None:
            if len(self.shadows) >= self.max_shadows:
                self.drop(next(iter(self.shadows.values())))
            sh = ShadowTable(key, self._frame(), self._next_asid)
            self._next_asid = self._next_asid % MAX_ASID + 1
        self.shadows[key] = sh  # most recently used last
        return sh

    def host_satp(self, sh: ShadowTable) -> int:
        # Priv 4.1.11: MODE = Sv32, the shadow's ASID, PPN of its root.
        return SATP_MODE | (sh.asid & SATP_ASID_MASK) << SATP_ASID_SHIFT | sh.root >> PAGE_SHIFT

    def drop(self, sh: ShadowTable) -> None:
        """Forget a shadow: its frames go back to the pool, the host TLB is flushed."""
        self.shadows.pop(sh.key, None)
        for gppn in sh.sources:
            users = self.pt_pages.get(gppn)
            if users is not None:
                users.discard(sh)
                if not users:
                    del self.pt_pages[gppn]
        for frame in sh.l0.values():
            self._release(frame)
        self._release(sh.root)
        self.flush_all = True  # its ASID will be reused

    def drop_all(self) -> None:
        for sh in list(self.shadows.values()):
            self.drop(sh)

    def _frame(self) -> int:
        self.frames += 1
        return self.alloc_frame()

    def _release(self, frame: int) -> None:
        self.frames -= 1
        self.free_frame(frame)

    # -- the guest's tables (Priv 4.3.2 in software, on guest-physical memory) ------------------------
    def _guest_word(self, gpa: int, access: int, va: int) -> int:
        vm = self.vm
        if not vm.bus.is_plain_ram(gpa, 4):
            raise Trap(ACCESS_FAULT_CAUSE[access], va)  # step 2: a PTE outside RAM
        return int(vm.bus.memory.read(gpa, 4))

    def walk(self, satp: int, va: int, access: int, vpriv: int, mstatus: int) -> GuestWalk:
        """Translate guest-virtual ``va`` as the guest's MMU would; raises Trap for a guest fault."""
        fault = PAGE_FAULT_CAUSE[access]
        a = (satp & SATP_PPN) << PAGE_SHIFT
        level = 1
        tables: list[tuple[int, int]] = []
        while True:
            idx = (va >> (12 + 10 * level)) & 0x3FF
            pte_addr = a + 4 * idx
            tables.append((a >> PAGE_SHIFT, level))
            pte = self._guest_word(pte_addr, access, va)
            if not pte & PTE_V or (not pte & PTE_R and pte & PTE_W):  # step 3
                raise Trap(fault, va)
            if pte & (PTE_R | PTE_X):  # step 4: a leaf
                break
            level -= 1
            if level < 0:
                raise Trap(fault, va)
            a = (pte >> 10) << PAGE_SHIFT
        check_permission(pte, va, access, vpriv, mstatus)  # step 5, the machine's own check
        ppn = pte >> 10
        if level and ppn & 0x3FF:  # step 6: a misaligned megapage
            raise Trap(fault, va)
        if not pte & PTE_A or (access == STORE and not pte & PTE_D):  # step 7
            if not getattr(self.vm, "svadu", True):
                raise Trap(fault, va)
            pte |= PTE_A | (PTE_D if access == STORE else 0)
            self.vm.bus.memory.write(pte_addr, 4, pte)
        if level:
            ppn = (ppn & ~0x3FF) | (va >> 12 & 0x3FF)  # step 8
        return GuestWalk(ppn << PAGE_SHIFT | (va & 0xFFF), pte & 0xFF, tuple(tables))

    # -- filling --------------------------------------------------------------------------------------
    def fill(self, sh: ShadowTable, va: int, access: int, vpriv: int, mstatus: int) -> Fill:
        """Resolve a host page fault at ``va`` taken while ``sh`` was installed."""
        satp = sh.key[0]
        if not satp & SATP_MODE:
            gpa, perm = va, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
            tables: tuple[tuple[int, int], ...] = ()
        else:
            try:
                w = self.walk(satp, va, access, vpriv, mstatus)
            except Trap as t:
                return Fill("fault", va, t.cause)
            gpa, perm, tables = w.gpa, w.perm, w.tables
        vm = self.vm
        if not vm.bus.is_plain_ram(gpa, 1):
            if vm.bus.find(gpa, 1) is not None and access != FETCH:
                return Fill("mmio", gpa)
            return Fill("fault", gpa, ACCESS_FAULT_CAUSE[access])  # outside the VM: never host memory
        for gppn, level in tables:
            self._track(sh, gppn, level, va)
        gppn = gpa >> PAGE_SHIFT
        if access == STORE and gppn in self.pt_pages:
            return Fill("pt_write", gpa)
        # Shadow permissions: what the guest allows this privilege class, as a U page for the host.
        r = perm & PTE_R or (sh.key[3] and perm & PTE_X)
        writable = perm & PTE_W and perm & PTE_D and gppn not in self.pt_pages
        x = perm & PTE_X and (not perm & PTE_U if sh.key[1] else True)
        bits = PTE_V | PTE_U | PTE_A | PTE_D
        bits |= (PTE_R if r else 0) | (PTE_W if writable else 0) | (PTE_X if x else 0)
        if not bits & (PTE_R | PTE_X):
            return Fill("fault", va, PAGE_FAULT_CAUSE[access])
        hppn = vm.gpa_to_hpa(gpa) >> PAGE_SHIFT
        self._set(sh, va >> PAGE_SHIFT, gppn, hppn << 10 | bits)
        self.fills += 1
        return Fill("mapped", gpa)

    def _set(self, sh: ShadowTable, vpn: int, gppn: int, pte: int) -> None:
        vpn1 = vpn >> 10
        l0 = sh.l0.get(vpn1)
        if l0 is None:
            l0 = sh.l0[vpn1] = self._frame()
            self._write(sh.root + 4 * vpn1, (l0 >> PAGE_SHIFT) << 10 | PTE_V)
        old = sh.maps.get(vpn)
        if old is not None:
            self._unlink(sh, vpn, old[0])
            self.flush_vas.add(vpn << PAGE_SHIFT)
        sh.maps[vpn] = (gppn, pte)
        sh.rmap.setdefault(gppn, set()).add(vpn)
        self._write(l0 + 4 * (vpn & 0x3FF), pte)

    def _unlink(self, sh: ShadowTable, vpn: int, gppn: int) -> None:
        vs = sh.rmap.get(gppn)
        if vs is not None:
            vs.discard(vpn)
            if not vs:
                del sh.rmap[gppn]

    def _clear(self, sh: ShadowTable, vpn: int) -> None:
        old = sh.maps.pop(vpn, None)
        if old is None:
            return
        self._unlink(sh, vpn, old[0])
        self._write(sh.l0[vpn >> 10] + 4 * (vpn & 0x3FF), 0)
        self.flush_vas.add(vpn << PAGE_SHIFT)

    def _write(self, hpa: int, value: int) -> None:
        self.host.phys_write(hpa, (value & M32).to_bytes(4, "little"))

    # -- write protection of guest page tables -----------------------------------------------------
    def _track(self, sh: ShadowTable, gppn: int, level: int, va: int) -> None:
        where = -1 if level == 1 else va >> 22
        srcs = sh.sources.setdefault(gppn, set())
        if where in srcs:
            return
        srcs.add(where)
        if level == 0:
            sh.l0_src[va >> 22] = gppn
        users = self.pt_pages.get(gppn)
        if users is None:
            users = self.pt_pages[gppn] = set()
            self._write_protect(gppn)
        users.add(sh)

    def _write_protect(self, gppn: int) -> None:
        """``gppn`` became a guest page table: no shadow may map it writable any more."""
        for sh in self.shadows.values():
            for vpn in list(sh.rmap.get(gppn, ())):
                g, pte = sh.maps[vpn]
                if pte & PTE_W:
                    pte &= ~PTE_W
                    sh.maps[vpn] = (g, pte)
                    self._write(sh.l0[vpn >> 10] + 4 * (vpn & 0x3FF), pte)
                    self.flush_vas.add(vpn << PAGE_SHIFT)

    def pte_written(self, gpa: int, width: int) -> int:
        """The guest stored ``width`` bytes at ``gpa`` in one of its page tables (the VMM already
        performed the store): drop every shadow entry derived from the PTE. Returns the number of
        shadows touched (each one a shadow update)."""
        gppn = gpa >> PAGE_SHIFT
        users = self.pt_pages.get(gppn)
        if not users:
            return 0
        idx = (gpa & (PAGE_SIZE - 1)) >> 2
        for sh in list(users):
            for where in list(sh.sources.get(gppn, ())):
                if where == -1:
                    self._drop_region(sh, idx)  # a root entry: everything under it, 4 MiB
                else:
                    self._clear(sh, where << 10 | idx)
        self.updates += len(users)
        return len(users)

    def _drop_region(self, sh: ShadowTable, vpn1: int) -> None:
        for vpn in [v for v in sh.maps if v >> 10 == vpn1]:
            self._clear(sh, vpn)
        old = sh.l0_src.pop(vpn1, None)
        if old is not None:
            srcs = sh.sources.get(old)
            if srcs is not None:
                srcs.discard(vpn1)
                if not srcs:
                    del sh.sources[old]
                    users = self.pt_pages.get(old)
                    if users is not None:
                        users.discard(sh)
                        if not users:
                            del self.pt_pages[old]  # no longer a table anyone shadows

    def stats(self) -> dict[str, int]:
        return {
            "shadows": len(self.shadows),
            "shadow_frames": self.frames,
            "shadow_fills": self.fills,
            "guest_page_tables": len(self.pt_pages),
        }


