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
    MTIP,
    SATP_MODE,
    SEIP,
    SSIP,
    STIP,
    CsrFile,
)
from virtlevels.machine.memory import PAGE_MASK, PAGE_SHIFT, Page
from virtlevels.machine.mmu import Mmu
from virtlevels.machine.trap import (
    ACCESS_FAULT_CAUSE,
    FETCH,
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
PRIV_NAMES = {U_MODE: "user", S_MODE: "supervisor", M_MODE: "machine"}

# Priv 3.1.9: simultaneous interrupts are taken in the order MEI, MSI, MTI, SEI, SSI, STI.
_INTERRUPT_ORDER = ((MEIP, 11), (MSIP, 3), (MTIP, 7), (SEIP, 9), (SSIP, 1), (STIP, 5))

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
        self.counts_by_priv = {p: [0] * len(self.class_costs) for p in (U_MODE, S_MODE, M_MODE)}
        self.counts = self.counts_by_priv[self.priv]
        self.mmu.on_evict = self._evicted
        self._select_caches()

    # -- fast-path caches ---------------------------------------------------------------------
    def _data_priv(self) -> int:
        # Priv 3.1.6.3: with MPRV=1, M-mode loads and stores use the privilege in MPP.
        ms = self.csr.mstatus
        if self.priv == M_MODE and ms & MSTATUS_MPRV:
            return (ms & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT
        return self.priv

    def _select_caches(self) -> None:
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
        self.counts = self.counts_by_priv[priv]
        self._select_caches()

    # -- translation --------------------------------------------------------------------------
    def translate(self, va: int, access: int) -> int:
        """Physical address of ``va`` for ``access`` in the current context (raises Trap)."""
        priv = self.priv if access == FETCH else self._data_priv()
        satp = self.csr.satp
        if priv == M_MODE or not satp & SATP_MODE:
            return va
        return self.mmu.translate(va, access, priv, self.csr.mstatus, satp)

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
    def csr_access(self, num: int, write: bool, word: int) -> None:
        if not self.csr.check_access(num, self.priv, write):
            raise Trap(2, word)  # Priv 2.1: illegal instruction, tval = the instruction bits

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
        """This hart's clock: the machine time at the start of its quantum plus the work done since."""
        if self.machine.running_hart is self:
            return self.round_base + self.work_cycles() - self.round_work
        return self.machine.now

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
        self.set_priv(new_priv)
        return csr.mepc

    def sret(self) -> int:
        """SRET (Priv 3.3.2): SIE<-SPIE, SPIE<-1, privilege<-SPP, SPP<-U, MPRV<-0."""
        csr = self.csr
        ms = csr.mstatus
        new_priv = S_MODE if ms & MSTATUS_SPP else U_MODE
        ms = (ms & ~(MSTATUS_SIE | MSTATUS_SPP | MSTATUS_MPRV)) | (MSTATUS_SIE if ms & MSTATUS_SPIE else 0)
        csr.mstatus = ms | MSTATUS_SPIE
        self.xret_count += 1
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
        self.mmu.flush(vaddr, asid)
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
        self.set_priv(int(state["priv"]))
        self.stimer_changed()
