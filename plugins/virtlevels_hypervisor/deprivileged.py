"""A trap-and-emulate VMM running as supervisor software on its host Machine.

The VMM is S-mode code on the host (Popek & Goldberg's control program): it touches the host only
through the Machine protocol and the privileged instructions it executes on the host hart
(``hart.execute`` through :mod:`virtlevels.machine.privops`), so the same code runs on a
PhysicalMachine and, nested, on a VirtualMachine whose vCPU plays the host hart (Theorem 2).

- **Boot.** On a hart still in M-mode (a bare PhysicalMachine, or a fresh VM) it first does what
  firmware does (virtlevels/kernel/hw.py does the same): delegate the user-caused exceptions and
  the S-level interrupts to S (Priv 3.1.8), enable Sstc (``menvcfgh.STCE``) and the counters for
  S, ``mret`` to S. In S: ``stvec`` = the VMM's native entry, ``sie.STIE`` (the slice timer),
  ``scounteren`` = 0 so guest counter reads trap and see virtual time.
- **Entry.** ``satp`` = the shadow table for the vCPU's virtual privilege (:mod:`.shadow`),
  ``stimecmp`` = the end of the slice (or the guest's next timer deadline, if sooner), ``sepc`` =
  the vCPU's pc, ``sstatus.SPP`` = U, the vCPU's registers into the hart, ``sret``: the guest —
  kernel or user — runs on the host hart in U-mode.
- **Exit.** Every trap lands at the native entry, which saves the registers into the vCPU and
  yields the hart back (``YieldToHost``). Then, by cause: a guest-user exception (system call,
  fault) is *reflected*: the vCPU takes it (``vcpu.take_trap``), so its own delegation and stvec
  decide where it goes, a Python kernel's native entry included. A privileged instruction of the
  guest kernel (an illegal-instruction trap with tval = the instruction bits, Priv 3.1.16) is
  *emulated* on the virtual state (``vcpu.emulate``). Shadow misses are filled, guest PTE stores
  emulated, device accesses performed on the VM's bus (:mod:`.mmio`), SBI calls served
  (:mod:`.sbi`). Then the virtual timer is updated and a pending virtual interrupt *injected*.
- **Accounting.** Host cycles of guest code are ``guest_user``/``guest_kernel`` by the vCPU's
  virtual privilege; every exit charges two ``world_switch`` and its handler cost
  (``trap_emulate``, ``shadow_update``, ``hypercall``) under ``hypervisor``. The vCPU's clock follows
  the host hart's work, so the guest's time includes the VMM's.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.errors import VirtlevelsError
from virtlevels.guests.layout import VLP_EID
from virtlevels.machine.csr import MENVCFGH_STCE, MSTATUS_MPP, STIP
from virtlevels.machine.hart import M_MODE, S_MODE, U_MODE, Hart, PrivilegedInstructionError
from virtlevels.machine.memmap import NATIVE_BASE
from virtlevels.machine.trap import FETCH, LOAD, STORE, Trap, YieldToHost
from virtlevels_hypervisor.hostswitch import restore_host_state, save_host_state
from virtlevels_hypervisor.mmio import emulate_mmio
from virtlevels_hypervisor.sbi import handle_sbi
from virtlevels_hypervisor.shadow import ShadowMmu, ShadowTable
from virtlevels_hypervisor.techniques.base import host_hart_for

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels_hypervisor.vm import VirtualMachine

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1

# CSR numbers (Priv 2.2, table 2.2-2.5; Sstc).
SSTATUS, SIE, STVEC, SCOUNTEREN = 0x100, 0x104, 0x105, 0x106
SEPC, SCAUSE, STVAL, SATP = 0x141, 0x142, 0x143, 0x180
STIMECMP, STIMECMPH, TIME, TIMEH = 0x14D, 0x15D, 0xC01, 0xC81
MSTATUS, MEDELEG, MIDELEG, MTVEC, MCOUNTEREN, MEPC, MENVCFGH = 0x300, 0x302, 0x303, 0x305, 0x306, 0x341, 0x31A
SSTATUS_SPP, SSTATUS_SPIE = 1 << 8, 1 << 5
MSTATUS_MPP_S = 1 << 11
STIE = 1 << 5
# Priv 3.1.8: every exception U-mode code can cause goes to S (the VMM); so do the S interrupts.
HOST_MEDELEG = sum(1 << c for c in (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 15))
HOST_MIDELEG = (1 << 1) | (1 << 5) | (1 << 9)

CAUSE_ILLEGAL, CAUSE_ECALL_U = 2, 8
PAGE_FAULTS = {12: FETCH, 13: LOAD, 15: STORE}
IRQ_S_TIMER = 5
OP_SYSTEM = 0x73

# Native code of the VMM on its host (above the Python kernel's 0xFFFF_0000-0xFFFF_1FFF).
VMM_FIRMWARE_PC = NATIVE_BASE + 0x4000
VMM_FIRMWARE_TRAP = NATIVE_BASE + 0x40F0
VMM_TRAP_ENTRY = NATIVE_BASE + 0x4100  # stvec
_OPS = (
    "boot", "trap_scause", "trap_stval", "trap_sepc", "trap_sstatus", "satp", "sfence", "time_hi",
    "time_lo", "timer_max", "timer_hi", "timer_lo", "sepc", "sstatus_spp", "sstatus_spie", "sret",
    "host_state",
)  # fmt: skip
VPC = {name: VMM_TRAP_ENTRY + 0x100 + 4 * i for i, name in enumerate(_OPS)}

#: Exit reasons this VMM reports in ``vm.vstats.exits``.
EXIT_REASONS = (
    "privileged", "exception", "page_fault", "pt_write", "mmio", "sbi", "hypercall", "timer", "wfi",
)  # fmt: skip


class VmmError(VirtlevelsError):
    """The VMM met host state it cannot go on from (a bug, never a guest action)."""


@attrs.define(eq=False)
class HostCpu:
    """The VMM's view of one host hart: booted once, its trap entry shared by every VM on it."""

    hart: Hart
    satp: int | None = None  # what the VMM last wrote (avoids rewriting it per entry)
    pending: tuple[int, int, int] | None = None  # (scause, stval, sepc) of the last trap
    owner: DeprivilegedVmm | None = None  # the VM whose guest is on the hart right now
    vcpu: Hart | None = None
    seen: int = 0  # guest instructions retired on it, at the last look


@attrs.define(eq=False)
class HostContext:
    """Per host Machine: its booted harts and the native entries (one set, whatever the VM count)."""

    host: Any
    cpus: dict[int, HostCpu] = attrs.field(factory=dict)

    def cpu(self, hart: Hart, setup: bool = False) -> HostCpu:
        """The booted host hart; ``setup``: redo the VMM's S-mode set-up on it (hosted mode: the
        host kernel had the hart since the VMM's last run and got its own state back)."""
        c = self.cpus.get(hart.id)
        if c is None:
            if not self.cpus:
                self.host.add_native_entry(VMM_TRAP_ENTRY, self._trap_entry)
                self.host.add_native_entry(VMM_FIRMWARE_TRAP, self._firmware_trap)
            _boot(hart)
            c = self.cpus[hart.id] = HostCpu(hart, seen=_retired_direct(self.host, hart))
        elif setup:
            _setup(hart)
        return c

    def _firmware_trap(self, h: Hart) -> None:
        raise VmmError(f"hart {h.id}: unexpected machine-mode trap, mcause 0x{h.csr.mcause:08x}")

    def _trap_entry(self, h: Hart) -> None:
        """The VMM's trap vector: save the guest's registers into the vCPU, give the hart back."""
        cause = h.csr_read(SCAUSE, pc=VPC["trap_scause"])
        tval = h.csr_read(STVAL, pc=VPC["trap_stval"])
        epc = h.csr_read(SEPC, pc=VPC["trap_sepc"])
        status = h.csr_read(SSTATUS, pc=VPC["trap_sstatus"])
        c = self.cpus.get(h.id)
        if status & SSTATUS_SPP or c is None or c.vcpu is None:
            raise VmmError(f"hart {h.id}: trap in the VMM itself, scause 0x{cause:08x} at 0x{epc:08x}")
        c.vcpu.x[:] = h.x
        c.pending = (cause, tval, epc)
        raise YieldToHost()


def _retired_direct(host: Any, h: Hart) -> int:
    """Guest instructions the host hart retired in U-mode so far (what the guest ran directly).

    On a VM host whose own VMM runs its guest on a hart underneath (nested trap-and-emulate) the
    vCPU's retirement counters do not see those instructions: that VMM counts them per vCPU
    (:attr:`DeprivilegedVmm.user_direct`). Only the vCPU's *virtual U-mode* counts: the
    instructions of this VMM itself (virtual S) are not guest instructions of ours."""
    vmm = getattr(getattr(host, "technique", None), "vmm", None)
    user_direct = getattr(vmm, "user_direct", None)
    if isinstance(user_direct, dict):
        return int(user_direct.get(h.id, 0)) + sum(h.counts_by_priv[U_MODE])
    return sum(h.counts_by_priv[U_MODE])


_CONTEXTS: weakref.WeakKeyDictionary[Any, HostContext] = weakref.WeakKeyDictionary()


def host_context(host: Any) -> HostContext:
    ctx = _CONTEXTS.get(host)
    if ctx is None:
        ctx = _CONTEXTS[host] = HostContext(host)
    return ctx


def _boot(h: Hart) -> None:
    """Firmware's part (if the hart is in M-mode) then the VMM's S-mode set-up, by instructions."""
    if h.priv == M_MODE:
        pc = VMM_FIRMWARE_PC
        h.pc = pc
        steps = (
            (MTVEC, VMM_FIRMWARE_TRAP), (MEDELEG, HOST_MEDELEG), (MIDELEG, HOST_MIDELEG),
            (MENVCFGH, MENVCFGH_STCE), (MCOUNTEREN, 7),
        )  # fmt: skip
        for i, (csr, value) in enumerate(steps):
            h.csr_write(csr, value, pc=pc + 4 * i)
        pc += 4 * len(steps)
        h.csr_clear(MSTATUS, MSTATUS_MPP, pc=pc)
        h.csr_set(MSTATUS, MSTATUS_MPP_S, pc=pc + 4)
        h.csr_write(MEPC, VPC["boot"], pc=pc + 8)
        h.exec_mret(pc=pc + 12)
    if h.priv != S_MODE:
        raise VmmError(f"hart {h.id}: the VMM needs S-mode, the hart is in privilege {h.priv}")
    _setup(h)


def _setup(h: Hart) -> None:
    """The VMM's S-mode state on ``h``: its trap vector, the slice timer, trapping counters."""
    pc = VPC["boot"]
    h.csr_write(STVEC, VMM_TRAP_ENTRY, pc=pc)
    h.csr_write(SCOUNTEREN, 0, pc=pc)  # guest counter reads trap: they must see virtual time
    h.csr_write(STIMECMP, M32, pc=pc)
    h.csr_write(STIMECMPH, M32, pc=pc)
    h.csr_write(SIE, STIE, pc=pc)
    h.csr_clear(SSTATUS, 1 << 1, pc=pc)  # the VMM itself is not interruptible


@attrs.define(eq=False)
class DeprivilegedVmm:
    """Runs one VM's vCPUs deprivileged on the host's harts (trap-and-emulate).

    ``hypercall`` (set by the PV technique) serves the guest's VLP calls; ``shadow`` is the VM's
    shadow MMU. ``quantum`` is the slice length in host cycles.
    """

    vm: VirtualMachine
    alloc_frame: Callable[[], int]
    free_frame: Callable[[int], None]
    quantum: int = 20_000
    shadow: ShadowMmu = attrs.field(init=False)
    injected: int = attrs.field(default=0, init=False)
    #: vCPU id -> guest instructions run directly on a host hart while the vCPU was in virtual
    #: U-mode (a nested VMM on this VM counts its guest's direct instructions from it).
    user_direct: dict[int, int] = attrs.field(factory=dict, init=False)
    reflected: int = attrs.field(default=0, init=False)
    redirected: bool = attrs.field(default=False, init=False)  # a hypercall set the vCPU's pc itself
    _ctx: HostContext = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.shadow = ShadowMmu(self.vm, self.vm.host, self.alloc_frame, self.free_frame)
        self._ctx = host_context(self.vm.host)

    @property
    def host(self) -> Any:
        return self.vm.host

    def host_hart(self, vcpu: Hart) -> Hart:
        """The host hart ``vcpu`` runs on (hosted: the one the VMM process's CPU uses)."""
        return host_hart_for(self.vm, vcpu)

    def host_cpu(self, vcpu: Hart) -> HostCpu:
        return self._ctx.cpu(self.host_hart(vcpu))

    def release(self) -> None:
        self.shadow.drop_all()
        for c in self._ctx.cpus.values():
            if c.owner is self:
                c.owner, c.satp = None, None

    # -- costs ------------------------------------------------------------------------------------
    def charge(self, h: Hart, category: str, cycles: int) -> None:
        """VMM work: on the host hart's clock and in the VM's breakdown."""
        self.vm.vstats.cycles[category] += cycles
        h.charge(f"vmm_{category}", cycles)
        _forward_guest_work(h, cycles)

    def exit_cost(self, h: Hart, reason: str, handler: str | None) -> None:
        vm = self.vm
        vm.vstats.exits[reason] += 1
        self.charge(h, "world_switch", 2 * vm.hv_cost("world_switch"))
        if handler is not None:
            self.charge(h, "hypervisor", vm.hv_cost(handler))

    # -- running ------------------------------------------------------------------------------------
    def run_vcpu(self, vcpu: Hart, max_cycles: int, engine: str = "interp") -> int:
        """Run ``vcpu`` for about ``max_cycles`` host cycles (exits included); returns the cycles.

        Returns early when the VM asks to stop, the vCPU waits for an interrupt, or a trap was
        reflected into guest software written in Python (its native entry yielded)."""
        vm = self.vm
        h = self.host_hart(vcpu)
        # Hosted mode: the hart is the host kernel's; its state is saved first and put back after
        # the run, so the kernel's own processes keep trapping into it (hostswitch.py).
        w0 = h.work_cycles()
        saved = save_host_state(h, VPC["host_state"]) if vm.mode == "hosted" else None
        c = self._ctx.cpu(h, setup=saved is not None)
        if saved is not None:
            c.satp = None  # the host kernel's satp is loaded, not a shadow
        switch = h.work_cycles() - w0
        # The vCPU's clock goes on from where it stopped if the World's has not caught up yet (as
        # Machine.run_hart): a nested VMM may read its time between two of our runs, and its
        # timer deadline must not move back under it.
        vcpu.round_base = vcpu.local_time()
        vm.running_hart = vcpu
        vcpu.round_work = v0 = vcpu.work_cycles()
        h0 = w0  # the save above is the VMM's work on the vCPU's behalf too
        try:
            while True:
                self._sync_clock(vcpu, v0, h, h0)
                self._inject(vcpu)  # a due interrupt is taken even when the budget is spent
                used = h.work_cycles() - h0
                if used >= max_cycles or vm.exit_requested:
                    break
                if vcpu.wfi:
                    if not vcpu.interrupt_waiting():
                        break
                    vcpu.wfi = False
                self._slice(c, vcpu, max_cycles - used, engine)
        except YieldToHost:
            pass  # reflected into a Python guest's native entry, which gave the vCPU back
        finally:
            if saved is not None:
                w1 = h.work_cycles()
                restore_host_state(h, saved, VPC["host_state"])
                c.satp, c.owner = None, None
                switch += h.work_cycles() - w1
                vm.vstats.cycles["world_switch"] += switch
            self._sync_clock(vcpu, v0, h, h0)
            vm.running_hart = None
        return vcpu.work_cycles() - v0

    def _sync_clock(self, vcpu: Hart, v0: int, h: Hart, h0: int) -> None:
        # The vCPU's clock (the guest's time) advances with the host hart's work on its behalf.
        lag = (h.work_cycles() - h0) - (vcpu.work_cycles() - v0)
        if lag > 0:
            vcpu.charge("vmm_host", lag)

    def next_deadline(self, vcpu: Hart) -> int | None:
        """The VM-clock cycle at which the vCPU's virtual timer fires (SBI deadline or Sstc)."""
        vm = self.vm
        div = vm.cost.timebase_divisor
        offset = vm.clint.offset if vm.clint is not None else 0
        best = None
        dl = vm.timer_deadline[vcpu.id]
        if dl is not None:
            best = (dl - offset) * div
        if vcpu.csr.menvcfgh & MENVCFGH_STCE and vcpu.csr.stimecmp != M64:
            at = (vcpu.csr.stimecmp - offset) * div
            best = at if best is None else min(best, at)
        return best

    def _inject(self, vcpu: Hart) -> None:
        """Virtual timer and interrupt injection: the vCPU takes what is pending and enabled."""
        vm = self.vm
        vm.update_guest_timer(vcpu)
        if vcpu.csr.menvcfgh & MENVCFGH_STCE and vm.clint is not None:
            vm.clint.poll(vcpu.id)  # Sstc on the vCPU: its virtual comparator drives STIP
        if vcpu.pending_interrupt() is not None:
            self.injected += 1
            vcpu.check_interrupts()

    def _shadow_for(self, vcpu: Hart) -> ShadowTable:
        csr = vcpu.csr
        return self.shadow.shadow(self.shadow.key_for(vcpu.priv, csr.satp, csr.mstatus))

    def _slice(self, c: HostCpu, vcpu: Hart, budget: int, engine: str) -> None:
        """Enter the guest for at most ``budget`` host cycles and handle the exit that ends it."""
        h = c.hart
        vm = self.vm
        sh = self._shadow_for(vcpu)
        vpriv = vcpu.priv
        self._enter(c, vcpu, sh, budget)
        u0 = h.work_cycles()
        for _ in range(4):  # the slice timer may be polled just after the budget: run until taken
            self.host.run_hart(h, budget + 64 * vm.cost.timebase_divisor, engine)
            if c.pending is not None or vm.exit_requested:
                break
        else:
            raise VmmError(f"hart {h.id}: guest ran past its slice without a timer interrupt")
        ran = h.work_cycles() - u0
        vm.vstats.cycles["guest_user" if vpriv == U_MODE else "guest_kernel"] += ran
        direct = self._retired_u(h, c)
        vm.vstats.direct_instructions += direct
        if vpriv == U_MODE:
            self.user_direct[vcpu.id] = self.user_direct.get(vcpu.id, 0) + direct
        c.vcpu = None
        if c.pending is None:
            return
        cause, tval, epc = c.pending
        c.pending = None
        vcpu.pc = epc
        self.handle_exit(h, vcpu, sh, vpriv, cause, tval, epc)

    def _retired_u(self, h: Hart, c: HostCpu) -> int:
        n = _retired_direct(self.host, h)
        last, c.seen = c.seen, n
        return max(0, n - last)

    def _enter(self, c: HostCpu, vcpu: Hart, sh: ShadowTable, budget: int) -> None:
        h = c.hart
        sm = self.shadow
        satp = sm.host_satp(sh)
        if c.satp != satp or c.owner is not self:
            h.csr_write(SATP, satp, pc=VPC["satp"])
            c.satp, c.owner = satp, self
        if sm.flush_all or len(sm.flush_vas) > 16:
            h.exec_sfence_vma(pc=VPC["sfence"])
        else:
            for va in sorted(sm.flush_vas):
                h.exec_sfence_vma(va, pc=VPC["sfence"])
        sm.flush_all = False
        sm.flush_vas.clear()
        # The slice: Sstc stimecmp at the host's now + budget, or the guest's deadline if sooner.
        div = self.host.cost.timebase_divisor
        cycles = budget
        due = self.next_deadline(vcpu)
        if due is not None:
            cycles = max(1, min(cycles, due - vcpu.local_time()))
        now = h.csr_read(TIMEH, pc=VPC["time_hi"]) << 32 | h.csr_read(TIME, pc=VPC["time_lo"])
        deadline = now + max(1, -(-cycles // div))
        h.csr_write(STIMECMP, M32, pc=VPC["timer_max"])
        h.csr_write(STIMECMPH, deadline >> 32, pc=VPC["timer_hi"])
        h.csr_write(STIMECMP, deadline & M32, pc=VPC["timer_lo"])
        h.csr_write(SEPC, vcpu.pc, pc=VPC["sepc"])
        h.csr_clear(SSTATUS, SSTATUS_SPP, pc=VPC["sstatus_spp"])
        h.csr_set(SSTATUS, SSTATUS_SPIE, pc=VPC["sstatus_spie"])
        c.seen = _retired_direct(self.host, h)
        c.vcpu = vcpu
        h.x[:] = vcpu.x
        h.exec_sret(pc=VPC["sret"])

    # -- exits ----------------------------------------------------------------------------------------
    def handle_exit(
        self, h: Hart, vcpu: Hart, sh: ShadowTable, vpriv: int, cause: int, tval: int, epc: int
    ) -> None:
        if cause & (1 << 31):
            code = cause & 0x7FFF_FFFF
            self.exit_cost(h, "timer" if code == IRQ_S_TIMER else "interrupt", None)
            return  # the slice ended (or the guest's deadline came): injection happens next
        if cause == CAUSE_ECALL_U:
            if vpriv == U_MODE:
                self.reflect(h, vcpu, cause, 0)
            elif vpriv == S_MODE:
                self.sbi_call(h, vcpu, epc)
            else:
                self.reflect(h, vcpu, 11, 0)  # ecall from (virtual) M
            return
        if cause == CAUSE_ILLEGAL:
            word = tval or self._fetch(vcpu, epc)
            # Guest user code's CSR instructions (rdcycle, rdtime, rdinstret) trap on the host because
            # the VMM virtualizes the counters; the vCPU decides with the guest's own mcounteren and
            # scounteren (Priv 3.1.11, 4.1.5), raising the guest's illegal instruction itself if not.
            is_csr = word is not None and word & 0x7F == 0x73 and word >> 12 & 7 not in (0, 4)
            if word is None or (vpriv == U_MODE and not is_csr):
                self.reflect(h, vcpu, cause, tval)
                return
            self.emulate_privileged(h, vcpu, word)
            return
        access = PAGE_FAULTS.get(cause)
        if access is not None:
            self.page_fault(h, vcpu, sh, vpriv, tval, access, epc)
            return
        self.reflect(h, vcpu, cause, tval)

    def reflect(self, h: Hart, vcpu: Hart, cause: int, tval: int) -> None:
        """Give the guest its own exception: the vCPU's trap entry (delegation, stvec) decides."""
        self.exit_cost(h, "exception", None)
        self.reflected += 1
        vcpu.take_trap(cause, tval)

    def _fetch(self, vcpu: Hart, pc: int) -> int | None:
        # The VMM reads the guest's instruction through the guest's own translation.
        try:
            return vcpu.fetch(pc)
        except Trap:
            return None

    def emulate(self, vcpu: Hart, word: int) -> None:
        """One guest instruction on the virtual state (a guest trap it raises is taken by the vCPU)."""
        self.vm.vstats.emulated_instructions += 1
        emu = getattr(vcpu, "emulate", None)
        try:
            if emu is not None:
                emu(word, vcpu.pc)
            else:
                Hart.execute(vcpu, word, vcpu.pc)
        except PrivilegedInstructionError:
            pass  # it trapped inside the guest: the vCPU's trap entry already ran

    def emulate_privileged(self, h: Hart, vcpu: Hart, word: int) -> None:
        reason = "wfi" if word == 0x10500073 else "privileged"
        self.exit_cost(h, reason, "trap_emulate")
        self.emulate(vcpu, word)

    def sbi_call(self, h: Hart, vcpu: Hart, epc: int) -> None:
        vm = self.vm
        hyper = vcpu.x[17] == VLP_EID
        self.exit_cost(h, "hypercall" if hyper else "sbi", "hypercall")
        if hyper:
            vm.vstats.hypercalls += 1
        vcpu.pc = epc
        self.redirected = False
        if not handle_sbi(vm, vcpu, vcpu.x):
            return  # the VM shut down
        if not self.redirected:
            vcpu.pc = (epc + 4) & M32

    def page_fault(
        self, h: Hart, vcpu: Hart, sh: ShadowTable, vpriv: int, va: int, access: int, epc: int
    ) -> None:
        vm = self.vm
        f = self.shadow.fill(sh, va, access, vpriv, vcpu.csr.mstatus)
        if f.kind == "mapped":
            self.exit_cost(h, "page_fault", "trap_emulate")
            return
        if f.kind == "fault":
            self.reflect(h, vcpu, f.cause, va)
            return
        word = self._fetch(vcpu, epc)
        if word is None:
            self.reflect(h, vcpu, 12, epc)  # the instruction itself is gone from the guest's view
            return
        if f.kind == "mmio":
            self.exit_cost(h, "mmio", "trap_emulate")
            if emulate_mmio(vm, vcpu.x, word, f.gpa):
                vcpu.pc = (epc + 4) & M32
            else:
                self.reflect(h, vcpu, 5 if access == LOAD else 7, va)
            return
        # A store to a guest page table: perform it on the virtual state, then resync the shadows.
        self.exit_cost(h, "pt_write", "shadow_update")
        self.emulate(vcpu, word)
        width = 1 << (word >> 12 & 3) if word & 0x7F == 0x23 else 4
        vm.vstats.shadow_updates += self.shadow.pte_written(f.gpa, width)

    # -- Python guest software on the vCPU (the Python kernel, a nested VMM) ----------------------------
    def guest_executed(self, vcpu: Hart, word: int) -> None:
        """``vcpu.execute(word)`` by guest code written in Python: a privileged instruction there
        would trap deprivileged, so it costs an exit; ``sfence.vma`` resynchronises the shadows
        (such a guest writes its page tables through the physical-memory port, unseen)."""
        vm = self.vm
        if word & 0x7F != OP_SYSTEM:
            vm.vstats.direct_instructions += 1
            return
        vm.vstats.emulated_instructions += 1
        vm.vstats.exits["privileged"] += 1
        cost = 2 * vm.hv_cost("world_switch") + vm.hv_cost("trap_emulate")
        vm.vstats.cycles["world_switch"] += 2 * vm.hv_cost("world_switch")
        vm.vstats.cycles["hypervisor"] += vm.hv_cost("trap_emulate")
        host_hart = self.host_hart(vcpu)  # hosted: the hart the VMM process's CPU uses
        host_hart.charge("vmm_trap", cost)
        vcpu.charge("vmm_trap", cost)
        if word & 0xFE007FFF == 0x12000073:  # sfence.vma rs1, rs2 (Priv 4.2.1)
            rs1 = word >> 15 & 31
            self.resync(vcpu.x[rs1] if rs1 else None)

    def resync(self, va: int | None) -> None:
        sm = self.shadow
        for sh in list(sm.shadows.values()):
            if va is None:
                sm.drop(sh)
            else:
                sm._clear(sh, va >> 12)  # a no-op where the page is not mapped


def _forward_guest_work(h: Hart, cycles: int) -> None:
    """Nested (Theorem 2): when ``h`` is a vCPU of a trap-and-emulate VM, the VMM running on it is
    that VM's guest kernel, and its handler work is guest code the outer VMM runs directly on its
    own host hart (it does not trap): charge it there as the outer guest's kernel time."""
    vmm = getattr(getattr(h.machine, "technique", None), "vmm", None)
    if isinstance(vmm, DeprivilegedVmm) and vmm.vm is h.machine:
        vmm.charge(vmm.host_cpu(h).hart, "guest_kernel", cycles)


__all__ = ["EXIT_REASONS", "DeprivilegedVmm", "HostContext", "VmmError", "host_context", "STIP"]
