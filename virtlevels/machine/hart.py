"""A RISC-V hart: registers, privilege, trap entry, interrupts, memory access, counters.

State is flat so that engines (the interpreter, and generated code from the block translator)
reach it with one attribute load:

* ``x`` - a plain list of 32 ints, unsigned 32-bit values; ``x[0]`` stays 0 because execute
  functions never write register 0 (writes to x0 are discarded at decode time).
* ``pc``, ``priv`` (0 U, 1 S, 3 M), ``csr`` (:class:`~virtlevels.machine.csr.CsrFile`).
* ``xcache`` / ``rcache`` / ``wcache`` - the fast paths: dicts from virtual page number to the
  physical RAM page (see :mod:`virtlevels.machine.memory`) for fetch (the 32-bit view), load
  and store (the ``Page`` tuple). An entry exists only for a RAM page whose translation is in
  the TLB and whose permissions allow that access in the current context; every miss goes
  through :meth:`fetch` / :meth:`load` / :meth:`store`'s slow paths, which translate, check,
  and refill. One set of caches is kept per (privilege, data privilege) context so that traps
  and returns swap them instead of refilling; anything that changes translation
  (satp, MPRV/MPP/SUM/MXR, SFENCE.VMA, TLB eviction, LR reservations) clears them.
* ``counts`` - retired instructions per cost class for the current privilege (the engine adds 1
  after each retired instruction); cycles are computed from these counters on demand.

With the H extension (Priv chapter 8; a table built with the ``rv32imah`` profile) the hart also
has ``virt`` (the V bit): ``priv`` stays the nominal privilege, so VS-mode is ``priv == S_MODE``
with ``virt == 1`` and VU-mode is ``priv == U_MODE`` with ``virt == 1``. Traps, returns,
interrupts and translation follow chapter 8 (see :meth:`Hart._take_trap_h`,
:meth:`Hart._pending_interrupt_h`, :meth:`Hart._translate_h`); instructions retired with V=1
are counted under the keys 4 (VU) and 5 (VS) of ``counts_by_priv``.

Memory helpers raise :class:`~virtlevels.machine.trap.Trap` for a guest fault; the engine calls
:meth:`take_trap`. Misaligned accesses trap (Unpriv 2.6 permits it): loads with cause 4,
stores and AMOs with cause 6, LR with cause 4 and SC with cause 6, with the address in tval.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import mul
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.errors import VirtlevelsError
from virtlevels.machine import privops
from virtlevels.machine.bus import BusError
from virtlevels.machine.csr import (
    HGATP_VMID_MASK,
    HGATP_VMID_SHIFT,
    HSTATUS_GVA,
    HSTATUS_SPV,
    HSTATUS_SPVP,
    MEIP,
    MENVCFGH_STCE,
    MSIP,
    MSTATUS_MIE,
    MSTATUS_MPIE,
    MSTATUS_MPP,
    MSTATUS_MPP_SHIFT,
    MSTATUS_MPRV,
    MSTATUS_SIE,
    MSTATUS_SPIE,
    MSTATUS_SPP,
    MSTATUSH_GVA,
    MSTATUSH_MPV,
    MTIP,
    SATP_MODE,
    SEIP,
    SSIP,
    STIP,
    VS_SWAP,
    VSEIP,
    VSSIP,
    VSTIP,
    CsrFile,
)
from virtlevels.machine.memory import PAGE_MASK, PAGE_SHIFT, Page
from virtlevels.machine.mmu import Mmu
from virtlevels.machine.trap import (
    ACCESS_FAULT_CAUSE,
    FETCH,
    ILLEGAL_INSTRUCTION,
    INSTRUCTION_ADDRESS_MISALIGNED,
    LOAD,
    LOAD_ADDRESS_MISALIGNED,
    STORE,
    STORE_ADDRESS_MISALIGNED,
    HaltRequest,
    Trap,
    cause_name,
)

if TYPE_CHECKING:
    from virtlevels.machine.machine import PhysicalMachine

M32 = 0xFFFFFFFF
U_MODE, S_MODE, M_MODE = 0, 1, 3
VU_KEY, VS_KEY = 4, 5  # counts_by_priv keys for V=1 (priv + 4)
PRIV_NAMES = {
    U_MODE: "user", S_MODE: "supervisor", M_MODE: "machine",
    VU_KEY: "virtual user", VS_KEY: "virtual supervisor",
}  # fmt: skip

# Priv 3.1.9: simultaneous interrupts are taken in the order MEI, MSI, MTI, SEI, SSI, STI.
_INTERRUPT_ORDER = ((MEIP, 11), (MSIP, 3), (MTIP, 7), (SEIP, 9), (SSIP, 1), (STIP, 5))
# Priv 8.2.3 / 8.4 (H): then SGEI (never pending: GEILEN = 0), VSEI, VSSI, VSTI.
_INTERRUPT_ORDER_H = (*_INTERRUPT_ORDER, (VSEIP, 10), (VSSIP, 2), (VSTIP, 6))
# Exceptions whose tval is an address: taken from V=1 it is a guest virtual address (GVA=1, Priv 8.2.1).
_GVA_CAUSES = frozenset((0, 1, 3, 4, 5, 6, 7, 12, 13, 15, 20, 21, 23))
_GUEST_PAGE_FAULTS = frozenset((20, 21, 23))

Caches = tuple[dict[int, memoryview], dict[int, Page], dict[int, Page]]


class PrivilegedInstructionError(VirtlevelsError):
    """An instruction run with :meth:`Hart.execute` trapped and nothing completed it (no handler
    emulated it and came back to the next instruction): a bug in the Python code that ran it."""


@attrs.define(eq=False)
class Hart:
    """One hardware thread of a :class:`~virtlevels.machine.machine.PhysicalMachine`."""

    id: int
    machine: PhysicalMachine
    mmu: Mmu
    class_costs: list[int]
    x: list[int] = attrs.field(factory=lambda: [0] * 32)
    pc: int = 0
    priv: int = M_MODE
    virt: int = 0  # the V bit (H extension): 1 in VS- and VU-mode
    hext: bool = attrs.field(default=False, init=False)  # the H extension is implemented
    hlv_gva: bool = attrs.field(default=False, init=False)  # an HLV/HSV faulted: the trap sets GVA
    csr: CsrFile = attrs.field(init=False)
    xcache: dict[int, memoryview] = attrs.field(init=False)
    rcache: dict[int, Page] = attrs.field(init=False)
    wcache: dict[int, Page] = attrs.field(init=False)
    _cache_sets: dict[int, Caches] = attrs.field(factory=dict, init=False)
    counts_by_priv: dict[int, list[int]] = attrs.field(init=False)
    counts: list[int] = attrs.field(init=False)
    wfi: bool = False
    reservation: int | None = None  # physical address reserved by LR.W
    # accounting
    trap_count: int = 0
    xret_count: int = 0
    mmio_count: int = 0
    traps: dict[str, int] = attrs.field(factory=dict)
    charges: dict[str, int] = attrs.field(factory=dict)
    cycle_offset: int = 0  # written by csrw mcycle
    instret_offset: int = 0  # written by csrw minstret
    round_base: int = 0  # machine time when the current quantum started
    round_work: int = 0  # work_cycles() when the current quantum started
    trap_observer: Callable[..., None] | None = None

    def __attrs_post_init__(self) -> None:
        self.csr = CsrFile(self, hartid=self.id)
        self.hext = bool(getattr(getattr(self.machine, "table", None), "hypervisor", False))
        keys: tuple[int, ...] = (U_MODE, S_MODE, M_MODE)
        if self.hext:
            self.csr.enable_hypervisor()
            keys = (*keys, VU_KEY, VS_KEY)
        self.counts_by_priv = {p: [0] * len(self.class_costs) for p in keys}
        self.counts = self.counts_by_priv[self.priv + 4 * self.virt]
        self.mmu.on_evict = self._evicted
        self._select_caches()

    # -- fast-path caches ---------------------------------------------------------------------
    def _data_priv(self) -> int:
        # Priv 3.1.6.3: with MPRV=1, M-mode loads and stores use the privilege in MPP.
        ms = self.csr.mstatus
        if self.priv == M_MODE and ms & MSTATUS_MPRV:
            return (ms & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
        return self.priv

    def _data_mode(self) -> tuple[int, int]:
        # Priv 8.4 (mstatus.MPV): with MPRV=1 and MPP != M, M-mode loads and stores also use V = MPV.
        csr = self.csr
        ms = csr.mstatus
        if self.priv == M_MODE and ms & MSTATUS_MPRV:
            p = (ms & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
            return p, 1 if p != M_MODE and csr.mstatush & MSTATUSH_MPV else 0
        return self.priv, self.virt

    def _select_caches(self) -> None:
        if self.hext:
            dpriv, dvirt = self._data_mode()
            key = self.priv * 4 + dpriv + 16 * self.virt + 32 * dvirt
        else:
            key = self.priv * 4 + self._data_priv()
        caches = self._cache_sets.get(key)
        if caches is None:
            caches = self._cache_sets[key] = ({}, {}, {})
        self.xcache, self.rcache, self.wcache = caches

    def context_changed(self) -> None:
        """Translation inputs changed (satp, MPRV/MPP/SUM/MXR): forget every fast path."""
        for caches in self._cache_sets.values():
            for c in caches:
                c.clear()
        self._select_caches()

    def drop_write_caches(self) -> None:
        for caches in self._cache_sets.values():
            caches[2].clear()

    def _evicted(self, vpn: int) -> None:
        for caches in self._cache_sets.values():
            for c in caches:
                c.pop(vpn, None)

    def set_priv(self, priv: int) -> None:
        self.priv = priv
        self.counts = self.counts_by_priv[priv + 4 * self.virt]
        self._select_caches()

    def set_mode(self, priv: int, virt: int) -> None:
        """Change privilege and the V bit together (trap entry and xRET with H)."""
        self.virt = virt
        self.set_priv(priv)

    # -- translation --------------------------------------------------------------------------
    def translate(self, va: int, access: int) -> int:
        """Physical address of ``va`` for ``access`` in the current context (raises Trap)."""
        if self.hext:
            return self._translate_h(va, access)
        priv = self.priv if access == FETCH else self._data_priv()
        satp = self.csr.satp
        if priv == M_MODE or not satp & SATP_MODE:
            return va
        return self.mmu.translate(va, access, priv, self.csr.mstatus, satp)

    def _translate_h(self, va: int, access: int) -> int:
        csr = self.csr
        if access == FETCH:
            priv, virt = self.priv, self.virt
        else:
            priv, virt = self._data_mode()
        if priv == M_MODE:
            return va
        if not virt:
            satp = csr.satp
            if not satp & SATP_MODE:
                return va
            return self.mmu.translate(va, access, priv, csr.mstatus, satp)
        # Priv 8.5: V=1 accesses go through the VS-stage (vsatp) and the G-stage (hgatp).
        return self.mmu.translate_guest(va, access, priv, csr.mstatus, csr.vsstatus, csr.vsatp, csr.hgatp)

    # -- HLV, HLVX, HSV (Priv 8.3.1) ------------------------------------------------------------
    def _hyp_translate(self, va: int, access: int, hlvx: bool) -> int:
        """Translate as a V=1 access at privilege hstatus.SPVP (HLV/HSV from HS or M, or U with HU)."""
        csr = self.csr
        priv = S_MODE if csr.hstatus & HSTATUS_SPVP else U_MODE
        try:
            return self.mmu.translate_guest(
                va, access, priv, csr.mstatus, csr.vsstatus, csr.vsatp, csr.hgatp, hlvx
            )
        except Trap:
            self.hlv_gva = True  # Priv 8.2.1: the fault's tval is a guest virtual address
            raise

    def hyp_load(self, va: int, width: int, signed: bool, hlvx: bool = False) -> int:
        """HLV/HLVX: load through two-stage translation; HLVX needs execute permission."""
        if va & (width - 1):
            self.hlv_gva = True
            raise Trap(LOAD_ADDRESS_MISALIGNED, va)
        pa = self._hyp_translate(va, LOAD, hlvx)
        try:
            return self._bus_load(pa, va, width, signed)
        except Trap:
            self.hlv_gva = True
            raise

    def hyp_store(self, va: int, width: int, value: int) -> None:
        """HSV: store through two-stage translation."""
        if va & (width - 1):
            self.hlv_gva = True
            raise Trap(STORE_ADDRESS_MISALIGNED, va)
        pa = self._hyp_translate(va, STORE, False)
        if pa >> PAGE_SHIFT in self.machine.watched_pages:
            self.machine.store_observed(self, pa, width)
        try:
            self._bus_store(pa, va, width, value & ((1 << (8 * width)) - 1))
        except Trap:
            self.hlv_gva = True
            raise

    def fetch(self, va: int) -> int:
        """The instruction word at ``va`` (raises Trap)."""
        page = self.xcache.get(va >> PAGE_SHIFT)
        if page is not None and not va & 3:
            return int(page[(va & PAGE_MASK) >> 2])
        return self.fetch_slow(va)

    def fetch_slow(self, va: int) -> int:
        if va & 3:
            raise Trap(INSTRUCTION_ADDRESS_MISALIGNED, va)
        pa = self.translate(va, FETCH)
        bus = self.machine.bus
        page = bus.ram_page(pa >> PAGE_SHIFT)
        if page is None:
            # Devices are not executable (a PMA, Priv 3.6.1): fetching from one is an access fault.
            # RAM that shares its page with a device (HTIF's tohost) runs without the fast path.
            if not bus.is_plain_ram(pa, 4):
                raise Trap(ACCESS_FAULT_CAUSE[FETCH], va)
            return bus.memory.read(pa, 4)
        self.xcache[va >> PAGE_SHIFT] = page[2]
        return int(page[2][(pa & PAGE_MASK) >> 2])

    def load(self, va: int, width: int, signed: bool) -> int:
        """Load ``width`` bytes at ``va``; the result is a 32-bit unsigned register value."""
        if va & (width - 1):
            raise Trap(LOAD_ADDRESS_MISALIGNED, va)
        page = self.rcache.get(va >> PAGE_SHIFT)
        if page is None:
            return self.load_slow(va, width, signed)
        off = va & PAGE_MASK
        if width == 4:
            return int(page[2][off >> 2])
        if width == 2:
            v = int(page[1][off >> 1])
            return v | 0xFFFF0000 if signed and v & 0x8000 else v
        v = page[0][off]
        return v | 0xFFFFFF00 if signed and v & 0x80 else v

    def load_slow(self, va: int, width: int, signed: bool) -> int:
        if va & (width - 1):
            raise Trap(LOAD_ADDRESS_MISALIGNED, va)
        pa = self.translate(va, LOAD)
        machine = self.machine
        page = machine.bus.ram_page(pa >> PAGE_SHIFT)
        if page is not None:
            self.rcache[va >> PAGE_SHIFT] = page
            return self.load(va, width, signed)
        return self._bus_load(pa, va, width, signed)

    def _bus_load(self, pa: int, va: int, width: int, signed: bool) -> int:
        """A load from physical ``pa`` through the bus (MMIO or uncached RAM); faults name ``va``."""
        machine = self.machine
        try:
            machine.current_hart = self
            v, mmio = machine.bus.read(pa, width)
        except BusError:
            raise Trap(ACCESS_FAULT_CAUSE[LOAD], va) from None
        if mmio:
            self.mmio_count += 1
        if signed and v >> (8 * width - 1) & 1:
            v |= M32 ^ ((1 << (8 * width)) - 1)
        return v

    def store(self, va: int, width: int, value: int) -> None:
        """Store the low ``width`` bytes of ``value`` at ``va``."""
        if va & (width - 1):
            raise Trap(STORE_ADDRESS_MISALIGNED, va)
        page = self.wcache.get(va >> PAGE_SHIFT)
        if page is None:
            self.store_slow(va, width, value)
            return
        off = va & PAGE_MASK
        if width == 4:
            page[2][off >> 2] = value & M32
        elif width == 2:
            page[1][off >> 1] = value & 0xFFFF
        else:
            page[0][off] = value & 0xFF

    def store_slow(self, va: int, width: int, value: int) -> None:
        if va & (width - 1):
            raise Trap(STORE_ADDRESS_MISALIGNED, va)
        pa = self.translate(va, STORE)
        machine = self.machine
        ppn = pa >> PAGE_SHIFT
        if ppn in machine.watched_pages:
            machine.store_observed(self, pa, width)
            page = machine.bus.ram_page(ppn)  # no fast path: every store here must be seen
        else:
            page = machine.bus.ram_page(ppn)
            if page is not None:
                self.wcache[va >> PAGE_SHIFT] = page
        if page is not None:
            machine.bus.memory.write(pa, width, value)
            return
        self._bus_store(pa, va, width, value)

    def _bus_store(self, pa: int, va: int, width: int, value: int) -> None:
        """A store to physical ``pa`` through the bus; a device store that asks the machine to stop
        (or raised an enabled interrupt) retires and ends the slice."""
        machine = self.machine
        try:
            machine.current_hart = self
            mmio = machine.bus.write(pa, width, value)
        except BusError:
            raise Trap(ACCESS_FAULT_CAUSE[STORE], va) from None
        if mmio:
            self.mmio_count += 1
            if machine.exit_requested or machine.quantum_break:
                raise HaltRequest()

    # -- A extension --------------------------------------------------------------------------
    def load_reserved(self, va: int) -> int:
        """LR.W (Unpriv 8.2): load and reserve the word."""
        if va & 3:
            raise Trap(LOAD_ADDRESS_MISALIGNED, va)
        pa = self.translate(va, LOAD)
        if not self.machine.bus.is_plain_ram(pa, 4):
            raise Trap(ACCESS_FAULT_CAUSE[LOAD], va)  # reservations exist only in RAM (a PMA)
        self.machine.reserve(self, pa)
        return self.machine.bus.memory.read(pa, 4)

    def store_conditional(self, va: int, value: int) -> int:
        """SC.W: 0 if the store happened, 1 if the reservation was lost. Always clears it."""
        if va & 3:
            raise Trap(STORE_ADDRESS_MISALIGNED, va)
        pa = self.translate(va, STORE)
        if not self.machine.bus.is_plain_ram(pa, 4):
            raise Trap(ACCESS_FAULT_CAUSE[STORE], va)
        ok = self.reservation == pa
        self.machine.release(self)
        if not ok:
            return 1
        self.machine.store_observed(self, pa, 4)
        self.machine.bus.memory.write(pa, 4, value)
        return 0

    def amo(self, va: int, fn: Callable[[int, int], int], src: int) -> int:
        """Atomic read-modify-write of a word; returns the old value (AMOs fault as stores)."""
        if va & 3:
            raise Trap(STORE_ADDRESS_MISALIGNED, va)
        page = self.wcache.get(va >> PAGE_SHIFT)
        if page is not None:
            view = page[2]
            i = (va & PAGE_MASK) >> 2
            old = int(view[i])
            view[i] = fn(old, src) & M32
            return old
        pa = self.translate(va, STORE)
        machine = self.machine
        try:
            machine.current_hart = self
            old, mmio = machine.bus.read(pa, 4)
            if pa >> PAGE_SHIFT in machine.watched_pages:
                machine.store_observed(self, pa, 4)
            machine.bus.write(pa, 4, fn(old, src) & M32)
        except BusError:
            raise Trap(ACCESS_FAULT_CAUSE[STORE], va) from None
        if mmio:
            self.mmio_count += 2
            if machine.exit_requested or machine.quantum_break:
                raise HaltRequest()
        return old

    # -- CSRs ---------------------------------------------------------------------------------
    def csr_access(self, num: int, write: bool, word: int) -> int:
        """Check an access to CSR ``num`` (raises Trap); returns the CSR number to use, which with
        V=1 is the VS register for a supervisor one (Priv 8.2: vsstatus for sstatus, ...)."""
        csr = self.csr
        if not self.hext:
            if not csr.check_access(num, self.priv, write):
                raise Trap(ILLEGAL_INSTRUCTION, word)  # Priv 2.1: illegal, tval = the instruction bits
            return num
        cause = csr.check_access_h(num, self.priv, self.virt, write)
        if cause:
            raise Trap(cause, word)  # Priv 8.6.1: illegal or virtual instruction, tval = the bits
        if self.virt:
            return VS_SWAP.get(num, num)
        return num

    def work_cycles(self) -> int:
        """Cycles of work this hart has done since creation (instructions + charges)."""
        costs = self.class_costs
        total = 0
        for counts in self.counts_by_priv.values():
            total += sum(map(mul, costs, counts))  # runs twice per quantum: kept cheap
        return total + self._overhead_cycles()

    def _overhead_cycles(self) -> int:
        cost = self.machine.cost
        m = self.mmu
        return (
            m.hits * cost.tlb_hit + m.misses * cost.tlb_miss + m.walk_refs * cost.page_walk_ref
            + self.trap_count * cost.trap_entry + self.xret_count * cost.trap_return
            + self.mmio_count * cost.mmio_access + sum(self.charges.values())
        )  # fmt: skip

    def cycles_by_category(self) -> dict[str, int]:
        cost = self.machine.cost
        m = self.mmu
        out: dict[str, int] = {}
        for priv, counts in self.counts_by_priv.items():
            out[PRIV_NAMES[priv]] = sum(c * n for c, n in zip(self.class_costs, counts, strict=False))
        out["trap"] = self.trap_count * cost.trap_entry + self.xret_count * cost.trap_return
        out["tlb"] = m.hits * cost.tlb_hit + m.misses * cost.tlb_miss + m.walk_refs * cost.page_walk_ref
        out["mmio"] = self.mmio_count * cost.mmio_access
        for k, v in self.charges.items():
            out[k] = out.get(k, 0) + v
        return out

    def local_time(self) -> int:
        """This hart's clock: the machine time at the start of its quantum plus the work done since.

        A hart is never behind the machine's clock, and never goes back: a host that runs it twice
        (``run_hart``) before the World's clock catches up sees it continue where it stopped."""
        if self.machine.running_hart is self:
            return self.round_base + self.work_cycles() - self.round_work
        return max(self.machine.now, self.round_base + self.work_cycles() - self.round_work)

    def retired(self) -> int:
        return sum(sum(c) for c in self.counts_by_priv.values())

    def read_cycle(self) -> int:
        return (self.local_time() + self.cycle_offset) & 0xFFFFFFFFFFFFFFFF

    def write_cycle(self, value: int) -> None:
        self.cycle_offset = value - self.local_time()

    def read_instret(self) -> int:
        return (self.retired() + self.instret_offset) & 0xFFFFFFFFFFFFFFFF

    def write_instret(self, value: int) -> None:
        # Priv 3.1.10: a write to minstret takes effect before the writing instruction retires.
        self.instret_offset = value - self.retired() - 1

    def read_time(self) -> int:
        return self.machine.mtime()

    def charge(self, category: str, cycles: int) -> None:
        self.charges[category] = self.charges.get(category, 0) + cycles

    # -- traps --------------------------------------------------------------------------------
    def take_trap(self, cause: int, tval: int = 0, interrupt: bool = False) -> None:
        """Trap entry (Priv 3.1.6.1, 3.1.7, 3.1.8, 4.1.1): pick the handling mode, save state, jump."""
        if self.hext:
            self._take_trap_h(cause, tval, interrupt)
            return
        csr = self.csr
        from_priv = self.priv
        epc = self.pc
        deleg = csr.mideleg if interrupt else csr.medeleg
        code = cause | (1 << 31 if interrupt else 0)
        ms = csr.mstatus
        if from_priv <= S_MODE and deleg >> cause & 1:
            # Delegated to S (Priv 3.1.8): S-mode trap CSRs, SPIE<-SIE, SIE<-0, SPP<-privilege.
            csr.scause, csr.sepc, csr.stval = code, epc, tval & M32
            spie = MSTATUS_SPIE if ms & MSTATUS_SIE else 0
            ms = (ms & ~(MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_SPP)) | spie
            ms |= MSTATUS_SPP if from_priv == S_MODE else 0
            tvec = csr.stvec
            to_priv = S_MODE
        else:
            csr.mcause, csr.mepc, csr.mtval = code, epc, tval & M32
            mpie = MSTATUS_MPIE if ms & MSTATUS_MIE else 0
            ms = (ms & ~(MSTATUS_MPIE | MSTATUS_MIE | MSTATUS_MPP)) | mpie
            ms |= from_priv << MSTATUS_MPP_SHIFT
            tvec = csr.mtvec
            to_priv = M_MODE
        csr.mstatus = ms
        self._enter(cause, tval, interrupt, epc, tvec, from_priv, to_priv)

    def _enter(
        self, cause: int, tval: int, interrupt: bool, epc: int, tvec: int, from_priv: int, to_priv: int
    ) -> None:
        # Priv 3.1.7: vectored mode sends interrupts to BASE + 4*cause, exceptions to BASE.
        base = tvec & ~3
        self.pc = base + 4 * cause if tvec & 1 and interrupt else base
        self.wfi = False
        self.trap_count += 1
        name = cause_name(cause, interrupt)
        self.traps[name] = self.traps.get(name, 0) + 1
        self.set_priv(to_priv)
        obs = self.trap_observer
        if obs is not None:
            obs(
                machine=self.machine, hart_id=self.id, cause=cause, tval=tval & M32, epc=epc,
                from_priv=from_priv, to_priv=to_priv, interrupt=interrupt,
            )  # fmt: skip
        machine = self.machine
        tracer = machine.tracer
        if tracer is not None:
            tracer.trap(self, cause, tval, epc, from_priv, to_priv, interrupt)
        native = machine.native_entries.get(self.pc)  # a trap vector whose code is Python
        if native is not None:
            native(self)

    def _take_trap_h(self, cause: int, tval: int, interrupt: bool) -> None:
        """Trap entry with the H extension (Priv 8.6.2-8.6.3): M, HS or VS; V, SPV/MPV, GVA, htval."""
        csr = self.csr
        from_priv, from_virt = self.priv, self.virt
        epc = self.pc
        tval &= M32
        gva = not interrupt and ((from_virt and cause in _GVA_CAUSES) or self.hlv_gva)
        self.hlv_gva = False
        # htval/mtval2: the guest physical address shifted right by 2 for a guest-page fault, else 0.
        gpa2 = (self.mmu.fault_gpa >> 2) & M32 if not interrupt and cause in _GUEST_PAGE_FAULTS else 0
        if interrupt:
            to_hs = from_priv <= S_MODE and csr.mideleg >> cause & 1
            to_vs = to_hs and from_virt and csr.hideleg >> cause & 1
        else:
            to_hs = from_priv <= S_MODE and csr.medeleg >> cause & 1
            to_vs = to_hs and from_virt and csr.hedeleg >> cause & 1
        intbit = 1 << 31 if interrupt else 0
        ms = csr.mstatus
        if to_vs:
            # Priv 8.6.2: a VS-level interrupt is reported to VS-mode as the S-level one (code - 1).
            if interrupt and cause in (2, 6, 10):
                cause -= 1
            csr.vscause, csr.vsepc, csr.vstval = cause | intbit, epc, tval
            vs = csr.vsstatus
            spie = MSTATUS_SPIE if vs & MSTATUS_SIE else 0
            vs = (vs & ~(MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_SPP)) | spie
            csr.vsstatus = vs | (MSTATUS_SPP if from_priv == S_MODE else 0)
            tvec = csr.vstvec
            to_priv, to_virt = S_MODE, 1
        elif to_hs:
            csr.scause, csr.sepc, csr.stval = cause | intbit, epc, tval
            spie = MSTATUS_SPIE if ms & MSTATUS_SIE else 0
            ms = (ms & ~(MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_SPP)) | spie
            csr.mstatus = ms | (MSTATUS_SPP if from_priv == S_MODE else 0)
            # Priv 8.2.1: SPV <- V; SPVP <- the nominal privilege if V was 1; GVA; htval, htinst.
            hs = csr.hstatus & ~(HSTATUS_SPV | HSTATUS_GVA)
            if from_virt:
                hs = (hs & ~HSTATUS_SPVP) | HSTATUS_SPV | (HSTATUS_SPVP if from_priv == S_MODE else 0)
            csr.hstatus = hs | (HSTATUS_GVA if gva else 0)
            csr.htval, csr.htinst = gpa2, 0  # htinst: 0 is always allowed (Priv 8.6.3)
            tvec = csr.stvec
            to_priv, to_virt = S_MODE, 0
        else:
            csr.mcause, csr.mepc, csr.mtval = cause | intbit, epc, tval
            mpie = MSTATUS_MPIE if ms & MSTATUS_MIE else 0
            ms = (ms & ~(MSTATUS_MPIE | MSTATUS_MIE | MSTATUS_MPP)) | mpie
            csr.mstatus = ms | from_priv << MSTATUS_MPP_SHIFT
            # Priv 8.4 (mstatus with H): MPV <- V, GVA; mtval2 and mtinst like htval and htinst.
            csr.mstatush = (MSTATUSH_MPV if from_virt else 0) | (MSTATUSH_GVA if gva else 0)
            csr.mtval2, csr.mtinst = gpa2, 0
            tvec = csr.mtvec
            to_priv, to_virt = M_MODE, 0
        self.virt = to_virt
        self._enter(cause, tval, interrupt, epc, tvec, from_priv, to_priv)

    def mret(self) -> int:
        """MRET (Priv 3.3.2): MIE<-MPIE, MPIE<-1, privilege<-MPP, MPP<-U, MPRV<-0 unless returning to M."""
        csr = self.csr
        ms = csr.mstatus
        new_priv = (ms & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
        ms = (ms & ~(MSTATUS_MIE | MSTATUS_MPP)) | (MSTATUS_MIE if ms & MSTATUS_MPIE else 0) | MSTATUS_MPIE
        if new_priv != M_MODE:
            ms &= ~MSTATUS_MPRV
        csr.mstatus = ms
        self.xret_count += 1
        if self.hext:
            # Priv 8.6.4: V <- MPV unless returning to M; MPV <- 0.
            virt = 1 if new_priv != M_MODE and csr.mstatush & MSTATUSH_MPV else 0
            csr.mstatush &= ~MSTATUSH_MPV
            self.set_mode(new_priv, virt)
        else:
            self.set_priv(new_priv)
        return csr.mepc

    def sret(self) -> int:
        """SRET (Priv 3.3.2): SIE<-SPIE, SPIE<-1, privilege<-SPP, SPP<-U, MPRV<-0."""
        csr = self.csr
        if self.virt:
            # Priv 8.6.4: SRET in VS-mode returns through vsstatus and vsepc and stays at V=1.
            vs = csr.vsstatus
            new_priv = S_MODE if vs & MSTATUS_SPP else U_MODE
            vs = (vs & ~(MSTATUS_SIE | MSTATUS_SPP)) | (MSTATUS_SIE if vs & MSTATUS_SPIE else 0)
            csr.vsstatus = vs | MSTATUS_SPIE
            self.xret_count += 1
            self.set_priv(new_priv)
            return csr.vsepc
        ms = csr.mstatus
        new_priv = S_MODE if ms & MSTATUS_SPP else U_MODE
        ms = (ms & ~(MSTATUS_SIE | MSTATUS_SPP | MSTATUS_MPRV)) | (MSTATUS_SIE if ms & MSTATUS_SPIE else 0)
        csr.mstatus = ms | MSTATUS_SPIE
        self.xret_count += 1
        if self.hext:
            self.set_mode(new_priv, 1 if csr.hstatus & HSTATUS_SPV else 0)  # Priv 8.6.4: V <- SPV
        else:
            self.set_priv(new_priv)
        return csr.sepc

    # -- instructions executed by Python code (native handlers, the simulated kernel) -------------
    def execute(self, word: int, pc: int | None = None) -> None:
        """Execute ``word`` as if fetched at ``pc`` (default: the current pc): decoded, run, counted
        and charged exactly as an engine does. If it traps, trap entry happens (which may run a
        native handler, e.g. a hypervisor's, that emulates it); the instruction then counts as
        done only if control came back to ``pc + 4``, else :class:`PrivilegedInstructionError`."""
        if pc is not None:
            self.pc = pc
        pc = self.pc
        machine = self.machine
        if machine.running_hart is None:
            # Software on this hart executes at this hart's time (a TIME read, a timer compare).
            self.round_base = self.local_time()
            self.round_work = self.work_cycles()
            machine.running_hart = self
            try:
                self._execute(word, pc)
            finally:
                machine.running_hart = None
            return
        self._execute(word, pc)

    def _execute(self, word: int, pc: int) -> None:
        machine = self.machine
        tracer = machine.tracer
        if tracer is not None:
            tracer.instruction(self, pc, word)
        op, ci = machine.table.decode(word)
        counts = self.counts  # charged to the privilege it ran at (sret/mret change it)
        try:
            npc = op(self, self.x, pc)
        except Trap as trap:
            self.take_trap(trap.cause, trap.tval)
            if self.pc != (pc + 4) & M32:
                raise PrivilegedInstructionError(
                    f"hart {self.id}: instruction 0x{word:08x} at 0x{pc:08x} trapped "
                    f"({cause_name(trap.cause)}, tval 0x{trap.tval & M32:08x}) and was not completed"
                ) from None
            return
        counts[ci] += 1
        self.pc = npc

    def csr_read(self, num: int, pc: int | None = None) -> int:
        """``csrr`` through a scratch register (see :mod:`virtlevels.machine.privops`)."""
        return privops.csr_read(self, num, pc)

    def csr_write(self, num: int, value: int, pc: int | None = None) -> None:
        privops.csr_write(self, num, value, pc)

    def csr_set(self, num: int, bits: int, pc: int | None = None) -> None:
        privops.csr_set(self, num, bits, pc)

    def csr_clear(self, num: int, bits: int, pc: int | None = None) -> None:
        privops.csr_clear(self, num, bits, pc)

    def exec_sret(self, pc: int | None = None) -> None:
        """Execute ``sret`` (the method :meth:`sret` is the instruction's semantics)."""
        self.execute(privops.SRET, pc)

    def exec_mret(self, pc: int | None = None) -> None:
        self.execute(privops.MRET, pc)

    def exec_sfence_vma(
        self, vaddr: int | None = None, asid: int | None = None, pc: int | None = None
    ) -> None:
        privops.sfence_vma(self, vaddr, asid, pc)

    def exec_wfi(self, pc: int | None = None) -> None:
        self.execute(privops.WFI, pc)

    def stimer_changed(self) -> None:
        """stimecmp or menvcfg.STCE changed: hand the comparator to the CLINT (Sstc)."""
        clint = self.machine.clint
        if clint is None:
            return
        csr = self.csr
        clint.set_stimecmp(self.id, csr.stimecmp if csr.menvcfgh & MENVCFGH_STCE else None)

    # -- interrupts ---------------------------------------------------------------------------
    def pending_interrupt(self) -> int | None:
        """The interrupt to take now, if any (Priv 3.1.6.1 global enables, 3.1.9 priority)."""
        if self.hext:
            return self._pending_interrupt_h()
        csr = self.csr
        pending = (csr.mip_sw | csr.mip_hw) & csr.mie
        if not pending:
            return None
        priv = self.priv
        ms = csr.mstatus
        # M-level interrupts are enabled below M, or in M with MIE; delegated ones below S, or in S with SIE.
        m_bits = pending & ~csr.mideleg if priv < M_MODE or ms & MSTATUS_MIE else 0
        s_bits = 0
        if priv < S_MODE or (priv == S_MODE and ms & MSTATUS_SIE):
            s_bits = pending & csr.mideleg
        for bits in (m_bits, s_bits):
            if bits:
                for bit, code in _INTERRUPT_ORDER:
                    if bits & bit:
                        return code
        return None

    def _pending_interrupt_h(self) -> int | None:
        """Priv 8.2.3 and 8.4 with H: M-level, then HS-level (always enabled when V=1), then VS-level
        (only when V=1, enabled by vsstatus.SIE in VS-mode and always in VU-mode)."""
        csr = self.csr
        pending = (csr.mip_sw | csr.mip_hw) & csr.mie
        if not pending:
            return None
        priv, virt = self.priv, self.virt
        ms = csr.mstatus
        deleg = csr.mideleg
        m_bits = pending & ~deleg if priv < M_MODE or ms & MSTATUS_MIE else 0
        hs_bits = vs_bits = 0
        if priv < M_MODE:
            if virt or priv == U_MODE or ms & MSTATUS_SIE:
                hs_bits = pending & deleg & ~csr.hideleg
            if virt and (priv == U_MODE or csr.vsstatus & MSTATUS_SIE):
                vs_bits = pending & deleg & csr.hideleg
        for bits in (m_bits, hs_bits, vs_bits):
            if bits:
                for bit, code in _INTERRUPT_ORDER_H:
                    if bits & bit:
                        return code
        return None

    def check_interrupts(self) -> bool:
        """Take a pending, enabled interrupt; True if one was taken."""
        code = self.pending_interrupt()
        if code is None:
            return False
        self.take_trap(code, 0, True)
        return True

    def interrupt_waiting(self) -> bool:
        """Priv 3.3.3: WFI resumes when an interrupt enabled in mie is pending (global enables aside)."""
        csr = self.csr
        return bool((csr.mip_sw | csr.mip_hw) & csr.mie)

    def set_irq(self, bit: int, level: bool) -> None:
        """Drive a device interrupt line into mip (MSIP/MTIP/MEIP/SEIP)."""
        csr = self.csr
        if level:
            csr.mip_hw |= bit
            if csr.mie & bit:
                self.wfi = False
                # A device store that raised an enabled interrupt ends the quantum after it retires,
                # so the interrupt is taken at the next instruction boundary, not a quantum later.
                self.machine.quantum_break = True
        else:
            csr.mip_hw &= ~bit

    # -- fences -------------------------------------------------------------------------------
    def sfence_vma(self, vaddr: int | None, asid: int | None) -> None:
        if self.virt:  # Priv 8.3.2: in VS-mode, SFENCE.VMA fences the guest's VS-stage only
            self.mmu.flush_vs(vaddr, asid, self.csr.hgatp >> HGATP_VMID_SHIFT & HGATP_VMID_MASK)
        else:
            self.mmu.flush(vaddr, asid)
        self.context_changed()

    def hfence_vvma(self, vaddr: int | None, asid: int | None) -> None:
        """HFENCE.VVMA (Priv 8.3.2): VS-stage entries of the current VMID (hgatp.VMID)."""
        self.mmu.flush_vs(vaddr, asid, self.csr.hgatp >> HGATP_VMID_SHIFT & HGATP_VMID_MASK)
        self.context_changed()

    def hfence_gvma(self, gpa: int | None, vmid: int | None) -> None:
        """HFENCE.GVMA (Priv 8.3.2): G-stage translations of guest physical ``gpa`` for ``vmid``."""
        self.mmu.flush_g(gpa, vmid)
        self.context_changed()

    def fence_i(self) -> None:
        """FENCE.I: the interpreter re-reads every word it runs; engines that cache code hook this."""
        hook = self.machine.fence_i_hook
        if hook is not None:
            hook(self)

    # -- snapshot -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "x": list(self.x),
            "pc": self.pc,
            "priv": self.priv,
            **({"virt": self.virt} if self.hext else {}),
            "csr": self.csr.snapshot(),
            "wfi": self.wfi,
            "reservation": self.reservation,
            "counts": {str(p): list(c) for p, c in self.counts_by_priv.items()},
            "trap_count": self.trap_count,
            "xret_count": self.xret_count,
            "mmio_count": self.mmio_count,
            "traps": dict(sorted(self.traps.items())),
            "charges": dict(sorted(self.charges.items())),
            "cycle_offset": self.cycle_offset,
            "instret_offset": self.instret_offset,
            "mmu": self.mmu.snapshot_counters(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.x = [int(v) & M32 for v in state["x"]]
        self.x[0] = 0
        self.pc = int(state["pc"])
        self.csr.restore(state["csr"])
        self.wfi = bool(state["wfi"])
        self.reservation = None if state["reservation"] is None else int(state["reservation"])
        self.counts_by_priv = {int(p): [int(n) for n in c] for p, c in state["counts"].items()}
        for counts in self.counts_by_priv.values():
            counts.extend([0] * (len(self.class_costs) - len(counts)))
        self.trap_count = int(state["trap_count"])
        self.xret_count = int(state["xret_count"])
        self.mmio_count = int(state["mmio_count"])
        self.traps = {str(k): int(v) for k, v in state["traps"].items()}
        self.charges = {str(k): int(v) for k, v in state["charges"].items()}
        self.cycle_offset = int(state["cycle_offset"])
        self.instret_offset = int(state["instret_offset"])
        self.mmu.restore_counters(state["mmu"])
        self.mmu.tlb.clear()  # TLB contents are not architectural state: restore invalidates it
        self._cache_sets = {}
        self.virt = int(state.get("virt", 0))
        self.set_priv(int(state["priv"]))
        self.stimer_changed()
