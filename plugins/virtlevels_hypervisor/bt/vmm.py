"""The binary-translating VMM: guest user code runs directly, guest kernel code from the translation cache.

:class:`BtVmm` is the deprivileged VMM of trap-and-emulate
(:class:`~virtlevels_hypervisor.deprivileged.DeprivilegedVmm`: host U-mode, shadow page tables,
timer slices, exits to Python) with one change of *what the host hart runs* while the vCPU is in
virtual S-mode: not the guest's own code but its translation (:mod:`.translator`), fetched from the
translation cache (:mod:`.cache`) that is mapped, execute-only, at :data:`~.cache.TC_BASE` in the
shadow address space of virtual S. Sensitive instructions there are ``ecall`` callouts, so the
guest's ``popf``/``smsw``/``sidt`` (x86-like profile) reach the monitor although they never trap.

The host pc is a cache address only while a translation runs; everywhere else the vCPU's pc is the
guest's. On each exit the cache's pc map turns the host ``sepc`` back into the guest pc (a guest
fault is delivered with the guest's ``sepc``); on entry the dispatcher finds (or makes) the
translation of the guest pc, or resumes at the very cache word the exit left (the *resume hint*)
when nothing moved the guest meanwhile.

Callouts (an ``ecall`` at a cache address):

* ``emulate``: the original word runs on the vCPU's virtual state (``vcpu.emulate``); if it stays in
  virtual S at the next instruction with nothing to deliver, execution continues right after the
  callout in the cache (no return through the dispatcher). ``ecall`` is the guest's SBI call.
* ``exit``: continue at a guest pc: translate it if needed and *chain* - patch the stub into a
  direct ``jal`` so the next time no callout happens (Adams & Agesen's "chaining" of translated
  blocks). ``jalr``: the target is computed from the guest's registers.
* ``stale``: the guest overwrote the code this word came from; re-translate.

Costs: translating charges ``[hypervisor] bt_translate_insn`` per guest instruction (category
``translation``); a callout charges ``bt_callout`` (category ``hypervisor``) and no world switch:
translated code runs inside the monitor's context (VMware's ring-1 trick), while a trap-and-emulate
exit pays two ``world_switch`` plus ``trap_emulate``. The host hart's own trap entry/return cycles
are charged by the hart as for every trap.
"""

from __future__ import annotations

from typing import Any, NoReturn

import attrs

from virtlevels.machine.csr import MSTATUS_MXR, MSTATUS_SUM, SATP_MODE
from virtlevels.machine.hart import S_MODE, U_MODE, Hart
from virtlevels.machine.isa.table import InstructionTable
from virtlevels.machine.memory import PAGE_SHIFT
from virtlevels.machine.mmu import PTE_A, PTE_D, PTE_U, PTE_V, PTE_X
from virtlevels.machine.trap import (
    ACCESS_FAULT_CAUSE,
    FETCH,
    INSTRUCTION_ADDRESS_MISALIGNED,
    PAGE_FAULT_CAUSE,
    Trap,
    YieldToHost,
)
from virtlevels_hypervisor.bt.cache import TC_BASE, TC_PAGES, TranslationCache, TranslationCacheFull
from virtlevels_hypervisor.bt.translator import (
    EMULATE,
    EXIT,
    JALR,
    STALE,
    Callout,
    Translation,
    translate_block,
)
from virtlevels_hypervisor.deprivileged import (
    CAUSE_ECALL_U,
    PAGE_FAULTS,
    SCAUSE,
    SEPC,
    VMM_TRAP_ENTRY,
    VPC,
    DeprivilegedVmm,
    HostCpu,
    VmmError,
    host_context,
)
from virtlevels_hypervisor.shadow import ShadowTable

M32 = 0xFFFFFFFF
CAUSE_FETCH_PF, CAUSE_LOAD_PF, CAUSE_STORE_PF = 12, 13, 15
#: A pending exit the native entry already handled (the vCPU's pc is in the exit's tval).
HANDLED = -1
HOLE_SIZE = 4 << 20  # the 4 MiB megapage slot at TC_BASE is the monitor's; the guest must not use it


def _counter_read(word: int) -> bool:
    """A CSR instruction on a user counter (cycle, time, instret, hpmcounters; Priv 2.2 table 2.2).

    The table calls them innocuous, but the VMM gives the guest virtual time (host ``scounteren`` =
    0, so they trap in host U-mode): a callout is cheaper than that trap and its exit."""
    return word & 0x7F == 0x73 and word >> 12 & 3 != 0 and 0xC00 <= word >> 20 < 0xCA0


@attrs.define(eq=False)
class BtVmm(DeprivilegedVmm):
    """:class:`DeprivilegedVmm` whose virtual S-mode runs from a translation cache.

    ``tc_pages`` frames of host RAM (from the hypervisor's pool) hold the cache."""

    tc_pages: int = TC_PAGES
    cache: TranslationCache = attrs.field(init=False)
    table: InstructionTable = attrs.field(init=False)
    translated: int = attrs.field(default=0, init=False)  # guest instructions translated (not run)
    callouts_by_kind: dict[str, int] = attrs.field(factory=dict, init=False)
    emulated_by_name: dict[str, int] = attrs.field(factory=dict, init=False)  # emulate callouts by name
    chained: int = attrs.field(default=0, init=False)
    revalidations: int = attrs.field(default=0, init=False)
    _frames: list[int] = attrs.field(factory=list, init=False)
    _hint: dict[int, int] = attrs.field(factory=dict, init=False)  # guest pc -> cache address to resume at
    _hint_gen: int = attrs.field(default=-1, init=False)
    _entry: int = attrs.field(default=0, init=False)
    _fast: HostCpu | None = attrs.field(default=None, init=False)  # the host CPU running our virtual S
    fast_callouts: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        vm = self.vm
        self.table = vm.table
        self._frames = [self.alloc_frame() for _ in range(self.tc_pages)]
        host = self.host
        self.cache = TranslationCache(
            self._frames, host.phys_write, host.watch_page, host.unwatch_page,
            lambda gppn: vm.gpa_to_hpa(gppn << PAGE_SHIFT) >> PAGE_SHIFT,
        )  # fmt: skip
        host.store_watchers.append(self._on_host_store)

    def release(self) -> None:
        super().release()
        self.cache.flush()
        watchers = self.host.store_watchers
        if self._on_host_store in watchers:
            watchers.remove(self._on_host_store)
        for frame in self._frames:
            self.free_frame(frame)
        self._frames = []

    def _on_host_store(self, hart: Hart | None, paddr: int, width: int) -> None:
        # A store to a watched host page: the guest (or a device, or the VMM) wrote kernel code.
        self.cache.on_host_store(paddr, width)

    # -- translation ----------------------------------------------------------------------------------
    def _fetch_gpa(self, vcpu: Hart, gva: int) -> int:
        """Guest-physical address of the guest kernel's instruction at ``gva`` (raises the guest's Trap)."""
        if gva & 3:
            raise Trap(INSTRUCTION_ADDRESS_MISALIGNED, gva)
        csr = vcpu.csr
        if csr.satp & SATP_MODE:
            gpa = self.shadow.walk(csr.satp, gva, FETCH, S_MODE, csr.mstatus).gpa
        else:
            gpa = gva
        if not self.vm.bus.is_plain_ram(gpa, 4):
            raise Trap(ACCESS_FAULT_CAUSE[FETCH], gva)  # devices are not executable (Priv 3.6.1)
        return gpa

    def translation_for(self, h: Hart, vcpu: Hart, gva: int) -> Translation:
        """The valid translation of the guest block at ``gva``, made now if there is none."""
        if TC_BASE <= gva < TC_BASE + HOLE_SIZE:
            self._hole_access(vcpu, gva, FETCH)
        t = self.cache.lookup(gva)
        if t is not None:
            return t
        gpa = self._fetch_gpa(vcpu, gva)
        view = self.vm.guest_memory.page(gpa >> PAGE_SHIFT)[2]
        t = translate_block(self.table, lambda off: int(view[off >> 2]), gva, gpa, monitored=_counter_read)
        try:
            self.cache.place(t)
        except TranslationCacheFull:
            self.cache.flush()
            self.cache.place(t)
        self.translated += t.guest_instructions
        self.charge(h, "translation", t.guest_instructions * self.vm.hv_cost("bt_translate_insn"))
        return t

    def revalidate(self, vcpu: Hart) -> None:
        """The guest switched satp or fenced its TLB: drop translations whose code page is no longer
        where (or no longer executable as) it was. Chained jumps skip the dispatcher's lookup, so
        this is what keeps them honest (QEMU keys blocks by physical page for the same reason)."""
        self.revalidations += 1
        for vpn, ts in list(self.cache.by_vpn.items()):
            try:
                gppn = self._fetch_gpa(vcpu, vpn << PAGE_SHIFT) >> PAGE_SHIFT
            except Trap:
                gppn = -1
            for t in list(ts):
                if t.gppn != gppn:
                    self.cache.invalidate(t)

    def _hole_access(self, vcpu: Hart, va: int, access: int) -> None:
        """The guest touched the monitor's address hole: its own fault if it maps nothing there."""
        csr = vcpu.csr
        if csr.satp & SATP_MODE:
            self.shadow.walk(csr.satp, va, access, vcpu.priv, csr.mstatus)  # raises the guest's fault
        elif self.vm.bus.find(va, 1) is None and not self.vm.bus.is_ram(va, 1):
            raise Trap(ACCESS_FAULT_CAUSE[access], va)  # translation off: nothing at that physical address
        raise VmmError(
            f"the guest maps 0x{va:08x}, inside the binary translator's cache window "
            f"0x{TC_BASE:08x}-0x{TC_BASE + HOLE_SIZE - 1:08x}: not supported"
        )

    def _map_tc(self, sh: ShadowTable, va: int) -> None:
        # The cache page, execute-only (Sv32 allows X-only leaves): translated code can run it but
        # no guest load or store can read or overwrite it.
        frame = self._frames[(va - TC_BASE) >> PAGE_SHIFT]
        pte = (frame >> PAGE_SHIFT) << 10 | PTE_V | PTE_X | PTE_U | PTE_A | PTE_D
        self.shadow._set(sh, va >> PAGE_SHIFT, -1 - ((va - TC_BASE) >> PAGE_SHIFT), pte)

    # -- entry ------------------------------------------------------------------------------------------
    def entry_pc(self, h: Hart, vcpu: Hart) -> int:
        """Where the host hart starts for the vCPU in virtual S: the resume hint, else the dispatcher."""
        gpc = vcpu.pc
        if self._hint_gen == self.cache.generation:
            addr = self._hint.get(gpc)
            if addr is not None:
                return addr
        return self.translation_for(h, vcpu, gpc).tc

    def _set_hint(self, gpc: int, addr: int) -> None:
        self._hint = {gpc: addr}
        self._hint_gen = self.cache.generation

    def _slice(self, c: HostCpu, vcpu: Hart, budget: int, engine: str) -> None:
        vpriv = vcpu.priv
        if vpriv == U_MODE:
            super()._slice(c, vcpu, budget, engine)
            return
        h = c.hart
        try:
            self._entry = self.entry_pc(h, vcpu)
        except Trap as t:  # the guest kernel jumped somewhere it cannot execute: its own fault
            self.reflect(h, vcpu, t.cause, t.tval)
            return
        _install_fast_entry(self.host)
        stats = self.vm.vstats
        d0 = stats.direct_instructions
        self._fast = c
        try:
            super()._slice(c, vcpu, budget, engine)
        finally:
            self._fast = None
        # What ran on the host in virtual S was translated code, not the guest's own instructions.
        stats.translated_instructions += stats.direct_instructions - d0
        stats.direct_instructions = d0

    def _enter(self, c: HostCpu, vcpu: Hart, sh: ShadowTable, budget: int) -> None:
        if vcpu.priv == U_MODE:
            super()._enter(c, vcpu, sh, budget)
            return
        gpc = vcpu.pc
        vcpu.pc = self._entry  # the base entry sets sepc from the vCPU's pc
        try:
            super()._enter(c, vcpu, sh, budget)
        finally:
            vcpu.pc = gpc

    # -- exits ------------------------------------------------------------------------------------------
    def handle_exit(
        self, h: Hart, vcpu: Hart, sh: ShadowTable, vpriv: int, cause: int, tval: int, epc: int
    ) -> None:
        if vpriv == U_MODE:
            super().handle_exit(h, vcpu, sh, vpriv, cause, tval, epc)
            return
        if cause == HANDLED:  # the native entry did the work; tval is where the guest is now
            vcpu.pc = tval
            return
        cache = self.cache
        gpc = cache.guest_pc(epc)
        if gpc is None:
            raise VmmError(f"virtual S-mode trapped outside the translation cache at 0x{epc:08x}")
        vcpu.pc = gpc
        if cause == CAUSE_ECALL_U:
            self._callout(h, vcpu, epc)
            return
        if cause == CAUSE_FETCH_PF and TC_BASE <= tval < TC_BASE + cache.size:
            self._map_tc(sh, tval)  # first fetch from this cache page under this shadow
            self.exit_cost(h, "page_fault", None)
            self._set_hint(gpc, epc)
            return
        if cause in (CAUSE_LOAD_PF, CAUSE_STORE_PF) and TC_BASE <= tval < TC_BASE + HOLE_SIZE:
            try:
                self._hole_access(vcpu, tval, PAGE_FAULTS[cause])
            except Trap as fault:
                self.reflect(h, vcpu, fault.cause, fault.tval)
            return
        # A fault, an MMIO access or a guest PTE store in translated code, or the slice's timer:
        # handled as trap-and-emulate handles them, at the guest pc. Loads and stores are copied
        # one to one, so "the next guest instruction" is the next cache word.
        hints = {gpc: epc}
        t = cache.owner(epc)
        nxt = epc + 4
        if t is not None and t.valid and nxt < t.tc + t.size and t.pcmap[(nxt - t.tc) >> 2] == gpc + 4:
            hints[(gpc + 4) & M32] = epc + 4
        self._hint, self._hint_gen = hints, cache.generation
        super().handle_exit(h, vcpu, sh, vpriv, cause, tval, gpc)

    def _callout(self, h: Hart, vcpu: Hart, epc: int) -> None:
        entry = self.cache.callout(epc)
        if entry is None:
            raise VmmError(f"ecall at 0x{epc:08x} in the translation cache is no callout")
        t, co = entry
        vm = self.vm
        self._count(co)
        vm.vstats.callouts += 1
        if co.kind == EMULATE and co.name == "ecall":
            self.sbi_call(h, vcpu, co.gpc)  # the guest's SBI call: the VMM is its firmware
            return
        vm.vstats.exits["callout"] += 1
        self.charge(h, "hypervisor", vm.hv_cost("bt_callout"))
        x = vcpu.x
        if co.kind == EMULATE:
            if self._emulate_callout(vcpu, co, t):
                self._set_hint(vcpu.pc, epc + 4)  # go on in the cache right after the callout
            return
        if co.kind == JALR:
            target, rd = self._jalr(co, x)
            if target & 3:
                vcpu.take_trap(INSTRUCTION_ADDRESS_MISALIGNED, target)  # rd is not written
                return
            if rd:
                x[rd] = (co.gpc + 4) & M32
            vcpu.pc = target
        elif co.kind in (EXIT, STALE):
            vcpu.pc = co.gpc
        try:
            nxt = self.translation_for(h, vcpu, vcpu.pc)
        except Trap as tr:
            vcpu.take_trap(tr.cause, tr.tval)  # the guest jumped to code it cannot execute
            return
        if co.kind == EXIT and t.valid and nxt.valid and self.cache.chain(epc, nxt):
            self.chained += 1
        self._set_hint(vcpu.pc, nxt.tc)

    # -- callouts without leaving the host hart -------------------------------------------------------
    def fast_trap(self, h: Hart, c: HostCpu) -> bool:
        """The native trap entry, before the generic one: serve a callout right there and ``sret``
        back into the cache, without the exit to the VMM's run loop (no world switch, no re-entry).
        Returns False (having only read ``scause``/``sepc``) for whatever the generic exit path must
        handle: every other trap, and the guest's SBI calls."""
        cause = h.csr_read(SCAUSE, pc=VPC["trap_scause"])
        if cause != CAUSE_ECALL_U:
            return False
        epc = h.csr_read(SEPC, pc=VPC["trap_sepc"])
        entry = self.cache.callout(epc)
        vcpu = c.vcpu
        if entry is None or vcpu is None or (entry[1].kind == EMULATE and entry[1].name == "ecall"):
            return False  # the guest's SBI call is a real exit (devices, timer, shutdown)
        t, co = entry
        vm = self.vm
        self._count(co)
        vm.vstats.callouts += 1
        vm.vstats.exits["callout"] += 1
        self.fast_callouts += 1
        self.charge(h, "hypervisor", vm.hv_cost("bt_callout"))
        x = h.x  # the guest's registers are the host hart's while it runs
        if co.kind == EMULATE:
            vcpu.x[:] = x
            vcpu.pc = co.gpc
            if self._emulate_callout(vcpu, co, t):
                x[:] = vcpu.x
                self._resume(h, epc + 4)
                return True
            self._handled(c, epc, vcpu.pc)  # anything else: through the run loop, already done
        if co.kind == JALR:
            target, rd = self._jalr(co, x)
            if target & 3:
                vcpu.x[:] = x
                vcpu.pc = co.gpc
                vcpu.take_trap(INSTRUCTION_ADDRESS_MISALIGNED, target)  # rd is not written
                self._handled(c, epc, vcpu.pc)
            if rd:
                x[rd] = (co.gpc + 4) & M32
        else:
            target = co.gpc
        try:
            nxt = self.translation_for(h, vcpu, target)
        except Trap as tr:
            vcpu.x[:] = x
            vcpu.pc = target
            vcpu.take_trap(tr.cause, tr.tval)  # the guest jumped to code it cannot execute
            self._handled(c, epc, vcpu.pc)
        if co.kind == EXIT and t.valid and nxt.valid and self.cache.chain(epc, nxt):
            self.chained += 1
        self._resume(h, nxt.tc)
        return True

    def _jalr(self, co: Callout, x: list[int]) -> tuple[int, int]:
        """The guest target of the ``jalr`` callout ``co`` with registers ``x``, and its rd."""
        f = self.table.lookup(co.word).fields(co.word)  # type: ignore[union-attr]
        return (x[f.rs1] + f.imm) & M32 & ~1, f.rd  # Unpriv 2.5: the lowest bit is cleared

    def _emulate_callout(self, vcpu: Hart, co: Callout, t: Translation) -> bool:
        """Emulate the callout's word on the vCPU (its pc is the word's guest pc); True when the
        translation may simply go on with the next cache word."""
        csr = vcpu.csr
        satp, sum_mxr = csr.satp, csr.mstatus & (MSTATUS_SUM | MSTATUS_MXR)
        names = self.emulated_by_name
        for gpc, word, name in co.steps:
            vcpu.pc = gpc
            names[name] = names.get(name, 0) + 1
            self.emulate(vcpu, word)
            if name == "sfence.vma" or csr.satp != satp:
                self.revalidate(vcpu)  # code pages may have moved (and the shadow changes): re-enter
                return False
            if (
                vcpu.priv != S_MODE or vcpu.pc != (gpc + 4) & M32  # a trap, sret: somewhere else
                or csr.mstatus & (MSTATUS_SUM | MSTATUS_MXR) != sum_mxr  # another shadow applies
                or vcpu.pending_interrupt() is not None  # the run loop delivers it right here
            ):  # fmt: skip
                return False
        return not co.terminal and t.valid

    def _count(self, co: Callout) -> None:
        kinds = self.callouts_by_kind
        kinds[co.kind] = kinds.get(co.kind, 0) + 1
        if co.kind == EMULATE and co.name == "ecall":
            self.emulated_by_name["ecall"] = self.emulated_by_name.get("ecall", 0) + 1

    def _resume(self, h: Hart, addr: int) -> None:
        h.csr_write(SEPC, addr, pc=VPC["sepc"])
        h.exec_sret(pc=VPC["sret"])

    def _handled(self, c: HostCpu, epc: int, gpc: int) -> NoReturn:
        # Leave to the run loop with nothing left to do but what follows every exit (timer,
        # injection, re-entry): the vCPU's registers are current (copied above), its pc is ``gpc``.
        c.pending = (HANDLED, gpc, epc)
        raise YieldToHost()

    # -- statistics ---------------------------------------------------------------------------------------
    def bt_stats(self) -> dict[str, Any]:
        cache = self.cache
        return {
            "translated_guest_instructions": self.translated,
            "translations": cache.placed,
            "translation_cache_bytes": cache.top,
            "translation_cache_size": cache.size,
            "invalidated_translations": cache.invalidations,
            "cache_flushes": cache.flushes,
            "chained_exits": self.chained,
            "callouts_by_kind": dict(sorted(self.callouts_by_kind.items())),
            "emulate_callouts_by_instruction": dict(sorted(self.emulated_by_name.items())),
            "mapping_revalidations": self.revalidations,
            "fast_callouts": self.fast_callouts,
        }


def _install_fast_entry(host: Any) -> None:
    """Put the binary translator's callout fast path in front of the VMM's native trap entry on
    ``host`` (once per host; every other trap, and every other VM's, goes on to the generic entry)."""
    entries = host.native_entries
    generic = entries.get(VMM_TRAP_ENTRY)
    if generic is None or getattr(generic, "bt_fast_path", False):
        return
    ctx = host_context(host)

    def entry(h: Hart) -> None:
        c = ctx.cpus.get(h.id)
        owner = c.owner if c is not None else None
        if c is not None and isinstance(owner, BtVmm) and owner._fast is c and owner.fast_trap(h, c):
            return
        generic(h)

    entry.bt_fast_path = True  # type: ignore[attr-defined]
    entries[VMM_TRAP_ENTRY] = entry


__all__ = ["BtVmm", "HOLE_SIZE", "PAGE_FAULT_CAUSE"]
