"""Hardware-assisted virtualization: the guest runs in VS/VU-mode on the RISC-V H extension.

The VMM (Python, native code on the host) runs in HS-mode, as KVM does. It owns each host hart
it uses: a firmware-like boot (M-mode: delegate every delegable trap to HS, Priv 8.4; Sstc for
the HS timer; ``mret`` to HS) sets ``stvec`` to the VMM's exit vector. A vCPU runs on host hart
``vcpu.id mod len(host.harts)``; entering it is a *world switch*: the vCPU's state (x, pc,
privilege S/U, and the guest's S-level CSRs sstatus, stvec, sscratch, sepc, scause, stval, satp,
scounteren, sie/sip) is copied into the hart's VS CSRs (Priv 8.2: vsstatus, vstvec, ...,
vsatp, hie/hvip), ``hgatp`` selects the VM's G-stage, and ``sret`` with ``hstatus.SPV=1`` enters
it (Priv 8.6.4). Every exit copies it all back, so between runs ``vm.harts`` hold the guest's
state (snapshot and migration read it there).

What exits (and nothing else): the VMM configures ``hedeleg``/``hideleg`` from what the guest's
(virtual) firmware delegated, so the guest kernel takes its own exceptions and timer interrupts
in VS-mode without the VMM. The exits are

* ``sbi``: ``ecall`` from VS-mode (cause 10) - the VMM is the guest's SBI firmware
  (:mod:`virtlevels_hypervisor.sbi`);
* ``mmio``: a guest-page fault (20/21/23) on a virtual device - the VMM reads the faulting
  instruction with ``HLVX.WU`` (htinst is 0 on this machine, Priv 8.6.3) and performs it on the
  VM's bus (:mod:`virtlevels_hypervisor.mmio`);
* ``gstage_fault`` (hosted mode): a guest-page fault on a guest RAM page the lazy G-stage does not
  map yet - the VMM faults it in on the host side (charged to the VMM process's cgroup), maps it
  and the guest retries (KVM's G-stage / EPT fault path; :mod:`virtlevels_hypervisor.hw_gstage`);
* ``page_fault``: a guest-page fault anywhere else: outside the VM's allocation nothing is mapped
  in the G-stage, so the guest gets an access fault (1/5/7) and never host memory;
* ``virtual_instruction`` (22): WFI (``hstatus.VTW=1``: the vCPU then waits, and its host hart
  is free) and whatever the H extension does not let VS-mode do; emulated on the vCPU's state;
* ``timer``: the host's supervisor timer (Sstc ``stimecmp``), armed at the vCPU's next virtual
  timer deadline or the end of its slice, whichever is first; a due guest deadline becomes
  ``hvip.VSTIP``;
* ``native_trap``: a trap whose guest handler is Python (the Python kernel as a guest): its
  ``stvec`` is a native address, so its traps are not delegated to VS-mode but reach the VMM,
  which delivers them on the vCPU's state.

Each exit charges ``[hypervisor] exit_hw`` and each world switch (in or out) ``world_switch``.

Hosted mode (KVM-like): the VMM is a process of a host kernel; a vCPU runs on the hart of the CPU
that process is on, and around each run the VMM saves and restores the host kernel's supervisor
and hypervisor CSRs there (:mod:`virtlevels_hypervisor.hostswitch`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from operator import mul
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.errors import ConfigError, VirtlevelsError
from virtlevels.machine.csr import (
    HEDELEG_MASK,
    HSTATUS_SPV,
    HSTATUS_SPVP,
    HSTATUS_VTW,
    MEDELEG_H_MASK,
    MENVCFGH_STCE,
    MSTATUS_MPP,
    MSTATUS_SPP,
    SSIP,
    STIP,
)
from virtlevels.machine.hart import M_MODE, S_MODE, U_MODE, VS_KEY, VU_KEY, Hart, PrivilegedInstructionError
from virtlevels.machine.isa.encodings import BY_NAME, H_BY_NAME
from virtlevels.machine.machine import RunResult
from virtlevels.machine.memmap import NATIVE_BASE, NATIVE_SIZE
from virtlevels.machine.trap import YieldToHost
from virtlevels_hypervisor.hostswitch import restore_host_state, save_host_state
from virtlevels_hypervisor.hw_gstage import GStage, build_gstage, free_gstage, map_guest_page
from virtlevels_hypervisor.mmio import emulate_mmio
from virtlevels_hypervisor.sbi import console, handle_sbi
from virtlevels_hypervisor.techniques.base import TechniqueBase, host_hart_for, result_from_vm

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels_hypervisor.vm import VirtualMachine

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1

# CSR numbers (Priv 2.2 tables 2.2-2.5; 8.2 for the hypervisor and VS CSRs; Sstc).
SSTATUS, SIE, STVEC, SCOUNTEREN, SSCRATCH, SEPC, SCAUSE, STVAL = (
    0x100, 0x104, 0x105, 0x106, 0x140, 0x141, 0x142, 0x143)  # fmt: skip
SATP, STIMECMP, STIMECMPH = 0x180, 0x14D, 0x15D
VSSTATUS, VSTVEC, VSSCRATCH, VSEPC, VSCAUSE, VSTVAL, VSATP = 0x200, 0x205, 0x240, 0x241, 0x242, 0x243, 0x280
HSTATUS, HEDELEG, HIDELEG, HIE, HTIMEDELTA, HCOUNTEREN, HTIMEDELTAH = (
    0x600, 0x602, 0x603, 0x604, 0x605, 0x606, 0x615)  # fmt: skip
HTVAL, HVIP, HGATP = 0x643, 0x645, 0x680
MSTATUS, MEDELEG, MIDELEG, MTVEC, MCOUNTEREN, MENVCFGH, MEPC = (
    0x300, 0x302, 0x303, 0x305, 0x306, 0x31A, 0x341)  # fmt: skip
STIE = 1 << 5
S_INTS = SSIP | STIP | (1 << 9)  # SSIP, STIP, SEIP: a guest's S-level interrupts
MIDELEG_S = S_INTS

# Exception causes (Priv 3.1.15 table 3.6, 8.6.1 table 8.7).
CAUSE_ECALL_VS, CAUSE_FETCH_GPF, CAUSE_LOAD_GPF, CAUSE_VIRTUAL_INSN, CAUSE_STORE_GPF = 10, 20, 21, 22, 23
ACCESS_FAULT_FOR_GPF = {CAUSE_FETCH_GPF: 1, CAUSE_LOAD_GPF: 5, CAUSE_STORE_GPF: 7}
IRQ_STI = 5
INTERRUPT = 1 << 31

# Native code of the VMM (memmap.NATIVE_BASE region; the Python kernel uses the low 8 KiB).
HW_NATIVE = NATIVE_BASE + 0xE000
FW_PC = HW_NATIVE  # the boot stub's "code" (M-mode)
FW_TRAP = HW_NATIVE + 0x100  # mtvec: nothing is left to M-mode, so a trap here is a VMM bug
EXIT_VEC = HW_NATIVE + 0x200  # stvec: every VM exit
VMM_PC = HW_NATIVE + 0x300  # the VMM's own instructions (world switch, exit handling)

T0, T1 = 5, 6  # the VMM's scratch registers (HLVX, HFENCE operands)
HLVX_WU = H_BY_NAME["hlvx.wu"].match
HFENCE_GVMA = H_BY_NAME["hfence.gvma"].match
HFENCE_VVMA = H_BY_NAME["hfence.vvma"].match
SFENCE_VMA = BY_NAME["sfence.vma"].match
WFI = BY_NAME["wfi"].match
VMID_MAX = 127  # VMIDLEN = 7 (docs/machine-hext.md)


class HwVmmError(VirtlevelsError):
    """The hardware-assisted VMM met a state it cannot go on from (a bug, not a guest fault)."""


def _is_native(addr: int) -> bool:
    return NATIVE_BASE <= addr < NATIVE_BASE + NATIVE_SIZE


def _csr_num(word: int) -> int | None:
    """The CSR a Zicsr instruction word names (Unpriv 9.1), None for any other word."""
    if word & 0x7F == 0x73 and word >> 12 & 3:
        return word >> 20
    return None


@attrs.define(eq=False)
class _Slot:
    """What one host hart is running now: a vCPU of a VM, and the slice's bounds."""

    tech: HwTechnique
    vm: VirtualMachine
    vcpu: Hart
    hart: Hart
    budget: int  # cycles of guest time the slice gives (counted from the first world switch in)
    slice_end: int = -1  # host local time (cycles) at which the slice ends; set on entry
    delta: int = 0  # guest time - host time, in timer ticks (what htimedelta holds, Priv 8.2.7)
    in_guest: bool = False  # the hart is in VS/VU with this vCPU's state
    in_engine: bool = False  # an engine is running the hart (an exit that stops raises YieldToHost)
    explicit: int = 0  # cycles charged by the VMM this slice (exit_hw, world_switch)
    hlvx: bool = False  # the VMM is reading a guest instruction with HLVX
    hlvx_failed: bool = False
    force_stop: bool = False  # the slice is over whatever the exit was
    reflect: bool = False  # the guest's handlers are Python: nothing is delegated or injected


@attrs.define(eq=False)
class HwHost:
    """The VMM's per-host state: which harts it booted, what each runs, the VMIDs in use."""

    host: Any
    booted: set[int] = attrs.field(factory=set)
    running: dict[int, _Slot] = attrs.field(factory=dict)
    loaded: dict[int, tuple[int, int]] = attrs.field(factory=dict)  # hart id -> (VM serial, hgatp)
    last_vcpu: dict[int, tuple[int, int]] = attrs.field(factory=dict)  # hart id -> (VM serial, vcpu id)
    vmids: set[int] = attrs.field(factory=set)
    serial: int = 0
    csrs: dict[int, dict[int, int]] = attrs.field(factory=dict)  # hart id -> CSR values loaded there

    def boot(self, h: Hart, setup: bool = False) -> None:
        """Boot host hart ``h`` as its firmware would, into HS-mode with the VMM's exit vector.

        ``setup``: do the VMM's HS-mode set-up again even if the hart is booted (hosted mode: the
        host kernel had the hart meanwhile, and its state was put back after the last run)."""
        if h.id in self.booted:
            if setup:
                self.setup(h)
            return
        host = self.host
        host.add_native_entry(EXIT_VEC, self._exit)
        host.add_native_entry(FW_TRAP, self._fw_trap)
        if h.priv == M_MODE:
            pc = FW_PC
            steps = (
                (MTVEC, FW_TRAP),
                (MEDELEG, MEDELEG_H_MASK),  # Priv 8.4: ecall from VS, guest-page faults, virtual insn
                (MIDELEG, MIDELEG_S),  # (the VS-level bits are read-only one)
                (MENVCFGH, MENVCFGH_STCE),  # Sstc: HS-mode's own timer (stimecmp)
                (MCOUNTEREN, 7),
            )
            for i, (num, value) in enumerate(steps):
                h.csr_write(num, value, pc=pc + 4 * i)
            pc += 4 * len(steps)
            h.csr_clear(MSTATUS, MSTATUS_MPP, pc=pc)
            h.csr_set(MSTATUS, 1 << 11, pc=pc + 4)  # MPP = S (MPV stays 0: HS)
            h.csr_write(MEPC, VMM_PC, pc=pc + 8)
            h.exec_mret(pc=pc + 12)
        if h.priv != S_MODE or h.virt:
            raise HwVmmError(f"host hart {h.id} is not in HS-mode after boot")
        self.setup(h)
        self.booted.add(h.id)

    def setup(self, h: Hart) -> None:
        """The VMM's HS-mode state on ``h``: its exit vector, the slice timer, VS counters."""
        pc = VMM_PC
        h.csr_write(STVEC, EXIT_VEC, pc=pc)
        h.csr_write(STIMECMP, M32, pc=pc)
        h.csr_write(STIMECMPH, M32, pc=pc)
        h.csr_write(SIE, STIE, pc=pc)  # the host timer ends slices; SIE stays 0 while in HS
        h.csr_write(HCOUNTEREN, 7, pc=pc)  # cycle, time, instret readable in VS/VU (Priv 8.2.5)
        self.csrs[h.id] = {STIMECMP: M64}

    def _fw_trap(self, h: Hart) -> None:
        raise HwVmmError(f"host hart {h.id}: unexpected machine-mode trap, mcause 0x{h.csr.mcause:08x}")

    def _exit(self, h: Hart) -> None:
        slot = self.running.get(h.id)
        if slot is None:
            cause = h.csr.scause
            raise HwVmmError(f"host hart {h.id}: a trap to HS-mode with no vCPU on it (scause {cause:#x})")
        if slot.hlvx:
            # The VMM's own HLVX faulted (the guest changed its page table meanwhile): skip it.
            slot.hlvx_failed = True
            h.pc = (VMM_PC + 4) & M32
            return
        slot.tech.exit(slot)


_HOSTS: weakref.WeakKeyDictionary[Any, HwHost] = weakref.WeakKeyDictionary()


def host_state(host: Any) -> HwHost:
    """The hardware-assisted VMM's state for ``host`` (one per host machine, shared by its VMs)."""
    hs = _HOSTS.get(host)
    if hs is None:
        hs = _HOSTS[host] = HwHost(host)
    return hs


class HwTechnique(TechniqueBase):
    """The hardware-assisted technique for one VM (see the module docstring)."""

    name = "hw"
    boot = "kernel"

    def __init__(self) -> None:
        self.vm: VirtualMachine | None = None
        self.gstage: GStage | None = None
        self.hs: HwHost | None = None
        self.serial = 0
        self.world_switches = 0
        self._vs_dirty: set[int] = set()  # vCPUs whose VS-stage TLB entries may be stale
        self._rr: dict[int, int] = {}  # host hart id -> round-robin position among its vCPUs
        self._cls_map: list[int] = []  # host cost-class index -> the VM's

    # -- set-up ---------------------------------------------------------------------------------
    def attach(self, vm: VirtualMachine) -> None:
        host = vm.host
        harts = getattr(host, "harts", ())
        if not harts or not all(getattr(h, "hext", False) for h in harts):
            raise ConfigError(
                "the hardware-assisted technique needs a host with the H extension "
                "(PhysicalMachine(hypervisor=True))"
            )
        missing = sorted(set(vm.isa_extensions) - set(getattr(host, "isa_extensions", ())))
        if missing:
            raise ConfigError(
                f"VM {vm.name!r} uses ISA extension(s) {', '.join(missing)} that the host hardware lacks: "
                "under hardware assistance guest instructions run on the host's harts"
            )
        if getattr(host, "clint", None) is None or vm.clint is None:
            raise ConfigError("the hardware-assisted technique needs a CLINT on the host and in the VM")
        if vm.cost.timebase_divisor != host.cost.timebase_divisor:
            raise ConfigError(
                f"VM {vm.name!r}: its timebase ({vm.cost.timebase_divisor} cycles per tick) must equal the "
                f"host's ({host.cost.timebase_divisor}): VS-mode reads time as the host's plus htimedelta"
            )
        # Hosted mode: the guest's RAM is the VMM process's memory, which gets host frames only when
        # touched - the G-stage is filled on guest-page faults (KVM's way), not built up front.
        lazy = vm.mode == "hosted" or getattr(vm.hv, "pool", None) is None
        hs = host_state(host)
        vmid = next((i for i in range(1, VMID_MAX + 1) if i not in hs.vmids), None)
        if vmid is None:
            raise ConfigError(f"no free VMID on this host ({VMID_MAX} hardware-assisted VMs at most)")
        self.gstage = build_gstage(vm, vm.hv, vmid, lazy=lazy)
        hs.vmids.add(vmid)
        hs.serial += 1
        self.serial = hs.serial
        self.hs = hs
        self.vm = vm
        self._vs_dirty = {v.id for v in vm.harts}
        classes = vm.table.classes
        self._cls_map = [classes.index(c) if c in classes else 0 for c in host.table.classes]

    def detach(self, vm: VirtualMachine) -> None:
        hs, gs = self.hs, self.gstage
        if hs is None or gs is None:
            return
        for hid, (serial, _hgatp) in list(hs.loaded.items()):
            if serial == self.serial:
                del hs.loaded[hid]  # the next VM on that hart fences the TLB whatever its VMID
        hs.vmids.discard(gs.vmid)
        free_gstage(gs, vm.hv, vm)
        self.gstage = None

    def restore(self, vm: VirtualMachine, state: Any) -> None:
        self._vs_dirty = {v.id for v in vm.harts}

    def vcpu_started(self, vm: VirtualMachine, vcpu: Hart) -> None:
        """SBI HSM hart_start reset ``vcpu``: its VS-stage view on a host hart may be stale."""
        self._vs_dirty.add(vcpu.id)

    # -- running ----------------------------------------------------------------------------------
    def run(self, vm: VirtualMachine, max_instructions: int | None, engine: str) -> RunResult:
        """Run the VM's vCPUs on the host's harts until the guest exits, ``max_instructions`` guest
        instructions ran, or every vCPU waits with nothing to wake it."""
        host = vm.host
        events = vm.events
        start_now = events.now
        retired0 = vm.vstats.guest_instructions()
        nharts = len(host.harts)
        queues: dict[int, list[Hart]] = {}
        for vcpu in vm.harts:
            queues.setdefault(vcpu.id % nharts, []).append(vcpu)
        costs = host.harts[0].class_costs
        min_cost = max(1, min(costs))
        quantum = vm.cost.quantum * min_cost * (64 if len(vm.harts) == 1 else 1)
        remaining = max_instructions
        vm.halt_requested = False
        status = "limit"
        while True:
            if vm.exit_requested:
                status = "pass" if vm.exit_code == 0 else "fail"
                break
            if vm.halt_requested:
                status = "halt"
                break
            if remaining is not None and remaining <= 0:
                break
            base = events.now
            due = events.peek()
            slice_ = quantum if due is None else max(min_cost, min(quantum, due - base))
            end = base
            ran = False
            for j, queue in sorted(queues.items()):
                picked = self._pick(vm, j, queue)
                if picked is None:
                    continue
                budget = slice_ if remaining is None else max(min_cost, min(slice_, remaining * min_cost))
                before = vm.vstats.direct_instructions
                used = self._run_vcpu(vm, picked, host.harts[j], budget, engine)
                if remaining is not None:
                    remaining -= vm.vstats.direct_instructions - before
                end = max(end, base + used)
                ran = True
                if vm.exit_requested:
                    break
            if ran:
                events.run(until=max(end, base + 1))
                continue
            wake = self._next_wakeup(vm)
            if wake is None:
                status = "wfi-deadlock"
                break
            vm.idle_cycles += max(0, wake - events.now)  # every vCPU waits: skip to the next event
            events.run(until=max(wake, events.now))
        return result_from_vm(vm, status, start_now, retired0)

    def _pick(self, vm: VirtualMachine, j: int, queue: list[Hart]) -> Hart | None:
        """The next runnable vCPU of host hart ``j`` (round robin), waking waiters whose interrupt
        is pending."""
        n = len(queue)
        start = self._rr.get(j, 0)
        for k in range(n):
            vcpu = queue[(start + k) % n]
            self._poll_guest_timer(vm, vcpu, self._vcpu_ticks(vm, vcpu))
            if vcpu.wfi and vcpu.interrupt_waiting():
                vcpu.wfi = False
            if not vcpu.wfi:
                self._rr[j] = (start + k + 1) % n
                return vcpu
        return None

    def _next_wakeup(self, vm: VirtualMachine) -> int | None:
        """The earliest cycle an event runs or a waiting vCPU's virtual timer fires."""
        times = []
        nxt = vm.events.peek()
        if nxt is not None:
            times.append(nxt)
        div = vm.cost.timebase_divisor
        off = vm.clint.offset
        now = vm.events.now
        for vcpu in vm.harts:
            deadline = self._guest_deadline(vm, vcpu)
            if deadline is not None and vcpu.csr.mie & STIP:
                ahead = vcpu.local_time() - now  # the vCPU's clock may run ahead of the World's
                times.append(max(now, (deadline - off) * div - ahead))
        return min(times) if times else None

    def run_hart(self, vm: VirtualMachine, vcpu: Hart, max_cycles: int, engine: str) -> int:
        """Run one vCPU on its host hart for up to ``max_cycles`` (a guest kernel written in Python
        drives its vCPUs with this); returns the cycles the host hart spent."""
        if vcpu.wfi:
            self._poll_guest_timer(vm, vcpu, self._vcpu_ticks(vm, vcpu))
            if not vcpu.interrupt_waiting():
                return 0
        vcpu.wfi = False
        return self._run_vcpu(vm, vcpu, host_hart_for(vm, vcpu), max_cycles, engine)

    def _run_vcpu(self, vm: VirtualMachine, vcpu: Hart, h: Hart, budget: int, engine: str) -> int:
        hs = self.hs
        if hs is None:
            raise HwVmmError(f"VM {vm.name!r} is not attached to the hardware-assisted technique")
        if vcpu.priv == M_MODE:
            raise HwVmmError(
                f"VM {vm.name!r} vCPU {vcpu.id} is in virtual M-mode: the hardware-assisted technique boots "
                "guest kernels (the VMM is their SBI firmware), and VS-mode cannot run machine-mode code"
            )
        if h.id in hs.running:
            raise HwVmmError(f"host hart {h.id} is already running a vCPU")
        host = vm.host
        work0 = h.work_cycles()
        vu0, vs0 = list(h.counts_by_priv[VU_KEY]), list(h.counts_by_priv[VS_KEY])
        hs0 = list(h.counts_by_priv[S_MODE])
        # Hosted: the hart is the host kernel's; the VMM saves its state first and puts it back
        # after the run (KVM's vcpu_load/put and world-switch save area; hostswitch.py).
        saved = save_host_state(h, VMM_PC) if vm.mode == "hosted" else None
        hs.boot(h, setup=saved is not None)
        # Time: the guest's clock is its vCPU's (which a Python guest kernel also reads), the host
        # hart's is its own; htimedelta carries the difference into VS-mode's ``time``.
        start = h.local_time()
        div = vm.cost.timebase_divisor
        delta = (vcpu.local_time() // div + vm.clint.offset) - (start // div + host.clint.offset)
        slot = _Slot(self, vm, vcpu, h, budget, delta=delta)
        hs.running[h.id] = slot
        try:
            try:
                self.enter(slot)
            except YieldToHost:
                pass  # a Python guest kernel took the hart back while its pending interrupt was delivered
            if slot.in_guest:
                slot.in_engine = True
                try:
                    slack = 4 * host.cost.timebase_divisor + 64
                    host.run_hart(h, budget + slack, engine)
                finally:
                    slot.in_engine = False
            if slot.in_guest:
                # The budget ran out between two timer checks: end the slice as the host timer would.
                slot.force_stop = True
                try:
                    h.take_trap(IRQ_STI, 0, True)
                except YieldToHost:
                    pass
        finally:
            del hs.running[h.id]
            if saved is not None:
                restore_host_state(h, saved, VMM_PC)
                hs.csrs.pop(h.id, None)  # nothing of the VMM's is loaded there any more
        return self._account(slot, work0, vu0, vs0, hs0)

    def _account(self, slot: _Slot, work0: int, vu0: list[int], vs0: list[int], hs0: list[int]) -> int:
        """Book a slice: guest instructions (VU/VS retired on the host hart) go to the vCPU's counters
        and the VM's stats; the rest of the host hart's work is the VMM's and the hardware's."""
        h, vm, vcpu = slot.hart, slot.vm, slot.vcpu
        used = h.work_cycles() - work0
        costs = h.class_costs
        vu = [a - b for a, b in zip(h.counts_by_priv[VU_KEY], vu0, strict=False)]
        vs = [a - b for a, b in zip(h.counts_by_priv[VS_KEY], vs0, strict=False)]
        hsn = [a - b for a, b in zip(h.counts_by_priv[S_MODE], hs0, strict=False)]
        user, vmm = sum(map(mul, costs, vu)), sum(map(mul, costs, hsn))
        st = vm.vstats
        st.direct_instructions += sum(vu) + sum(vs)
        st.cycles["guest_user"] += user
        st.cycles["hypervisor"] += vmm
        # Trap entries and returns, TLB lookups and nested walks, MMIO: the hardware working for the
        # guest. Booked as guest kernel time (slot.explicit is already in the VMM's categories).
        st.cycles["guest_kernel"] += max(0, used - user - vmm - slot.explicit)
        vmap = self._cls_map
        ucounts, scounts = vcpu.counts_by_priv[U_MODE], vcpu.counts_by_priv[S_MODE]
        for i, n in enumerate(vu):
            if n:
                ucounts[vmap[i]] += n
        for i, n in enumerate(vs):
            if n:
                scounts[vmap[i]] += n
        vc = vcpu.class_costs
        guest = sum(vc[vmap[i]] * (a + b) for i, (a, b) in enumerate(zip(vu, vs, strict=True)))
        if used > guest:
            vcpu.charge("vmm_hw", used - guest)  # the vCPU's clock covers what its host hart spent
        return used

    # -- timers ------------------------------------------------------------------------------------
    def _guest_deadline(self, vm: VirtualMachine, vcpu: Hart) -> int | None:
        """The vCPU's next virtual supervisor-timer deadline in guest mtime ticks: SBI set_timer,
        or the guest's own Sstc stimecmp when its (virtual) firmware enabled Sstc."""
        deadline = vm.timer_deadline[vcpu.id]
        c = vcpu.csr
        if c.menvcfgh & MENVCFGH_STCE and c.stimecmp != M64 and not (c.mip_hw | c.mip_sw) & STIP:
            deadline = c.stimecmp if deadline is None else min(deadline, c.stimecmp)
        return deadline

    def _vcpu_ticks(self, vm: VirtualMachine, vcpu: Hart) -> int:
        """The guest's time (mtime ticks) while the vCPU is not on a host hart."""
        return vcpu.local_time() // vm.cost.timebase_divisor + vm.clint.offset

    def _slot_ticks(self, slot: _Slot) -> int:
        """The guest's time (mtime ticks) while it runs on ``slot.hart``: host time + htimedelta."""
        host = slot.vm.host
        return slot.hart.local_time() // host.cost.timebase_divisor + host.clint.offset + slot.delta

    def _poll_guest_timer(self, vm: VirtualMachine, vcpu: Hart, ticks: int) -> None:
        """Raise the vCPU's STIP if a deadline passed at guest time ``ticks``."""
        deadline = vm.timer_deadline[vcpu.id]
        if deadline is not None and ticks >= deadline:
            vm.timer_deadline[vcpu.id] = None
            vcpu.set_irq(STIP, True)
        c = vcpu.csr
        if c.menvcfgh & MENVCFGH_STCE and ticks >= c.stimecmp:
            vcpu.set_irq(STIP, True)  # Sstc: STIP is (time >= stimecmp), a level

    # -- world switch --------------------------------------------------------------------------------
    def _charge(self, slot: _Slot, category: str, cycles: int) -> None:
        slot.hart.charge(f"vmm_{category}", cycles)
        slot.vm.vstats.cycles[category] += cycles
        slot.explicit += cycles

    def enter(self, slot: _Slot) -> None:
        """World switch in: the vCPU's state into the host hart's VS CSRs, then ``sret`` into it.

        The VMM remembers what each host hart's guest CSRs hold (what it last wrote there, or read
        back at the last exit) and writes only those that differ - as KVM leaves a vCPU's CSRs
        loaded while it stays on its hart. Writing an unchanged vsatp or hgatp would otherwise
        flush the hart's translation fast paths on every exit."""
        h, vm, vcpu = slot.hart, slot.vm, slot.vcpu
        hs, gs = self.hs, self.gstage
        assert hs is not None and gs is not None
        c = vcpu.csr
        pc = VMM_PC
        # The guest takes itself what its firmware delegated to S-mode (Priv 8.6.2) - unless its
        # handlers are Python (a native stvec), which run on the vCPU's state: those traps exit.
        reflect = slot.reflect = _is_native(c.stvec & ~3)
        if reflect and vcpu.check_interrupts():
            return  # delivered on the vCPU (to its Python handler, which normally yields)
        self._charge(slot, "world_switch", vm.hv_cost("world_switch"))
        self.world_switches += 1
        if slot.slice_end < 0:
            # The slice counts from here, so a small budget still lets the guest run (no livelock
            # of world switches that use the whole slice up).
            slot.slice_end = h.local_time() + slot.budget
        loaded = hs.csrs.setdefault(h.id, {})

        def w(num: int, value: int) -> None:
            value &= M32
            if loaded.get(num) != value:
                h.csr_write(num, value, pc)
                loaded[num] = value

        h.csr_write(STVEC, EXIT_VEC, pc)
        w(HEDELEG, 0 if reflect else c.medeleg & HEDELEG_MASK)
        w(HIDELEG, 0 if reflect else (c.mideleg & S_INTS) << 1)
        hgatp = gs.hgatp
        w(HGATP, hgatp)
        if hs.loaded.get(h.id) != (self.serial, hgatp):
            self._hfence(h, HFENCE_GVMA, gs.vmid)  # Priv 8.3.2: a VMID's G-stage entries may be stale
            hs.loaded[h.id] = (self.serial, hgatp)
        if vcpu.id in self._vs_dirty or hs.last_vcpu.get(h.id) != (self.serial, vcpu.id):
            self._hfence(h, HFENCE_VVMA, None)  # another vCPU's (or an older) VS-stage view
            self._vs_dirty.discard(vcpu.id)
            hs.last_vcpu[h.id] = (self.serial, vcpu.id)
        w(VSSTATUS, c.read(SSTATUS))
        w(VSTVEC, c.stvec)
        w(VSSCRATCH, c.sscratch)
        w(VSEPC, c.sepc)
        w(VSCAUSE, c.scause)
        w(VSTVAL, c.stval)
        w(VSATP, c.satp)
        w(SCOUNTEREN, c.scounteren)  # not swapped by V (Priv 8.2): part of the guest context
        # VSSIP/VSTIP/VSEIP: the guest's S-level interrupts (Priv 8.2.3); a Python handler gets
        # them on the vCPU instead (above), so nothing is injected for it.
        pending = 0 if reflect else (c.mip_sw | c.mip_hw) & c.mideleg & S_INTS
        w(HVIP, pending << 1)
        w(HIE, 0 if reflect else (c.mie & c.mideleg & S_INTS) << 1)
        delta = slot.delta & M64
        w(HTIMEDELTA, delta & M32)
        w(HTIMEDELTAH, delta >> 32)
        self._arm_host_timer(slot, loaded)
        status = HSTATUS_SPV | HSTATUS_VTW | (HSTATUS_SPVP if vcpu.priv == S_MODE else 0)
        h.csr_write(HSTATUS, status, pc)
        if vcpu.priv == S_MODE:
            h.csr_set(SSTATUS, MSTATUS_SPP, pc)
        else:
            h.csr_clear(SSTATUS, MSTATUS_SPP, pc)
        h.csr_write(SEPC, vcpu.pc, pc)
        h.x[:] = vcpu.x  # the VMM's register restore (a run of loads from the vCPU structure)
        slot.in_guest = True
        h.exec_sret(pc)  # Priv 8.6.4: V <- SPV, privilege <- SPP

    def _arm_host_timer(self, slot: _Slot, loaded: dict[int, int]) -> None:
        """Program the host hart's stimecmp (Sstc) at the earlier of the slice end and the vCPU's
        next virtual timer deadline (converted from guest to host ticks)."""
        h, vm = slot.hart, slot.vm
        div = vm.host.cost.timebase_divisor
        host_off = vm.host.clint.offset
        ticks = -(-slot.slice_end // div) + host_off
        deadline = self._guest_deadline(vm, slot.vcpu)
        if deadline is not None:
            ticks = min(ticks, deadline - slot.delta)
        ticks = max(0, ticks) & M64
        if loaded.get(STIMECMP) == ticks:
            return
        h.csr_write(STIMECMP, M32, VMM_PC)  # Sstc: high word first, through an all-ones low word
        h.csr_write(STIMECMPH, ticks >> 32, VMM_PC)
        h.csr_write(STIMECMP, ticks & M32, VMM_PC)
        loaded[STIMECMP] = ticks

    def _hfence(self, h: Hart, word: int, vmid: int | None) -> None:
        x = h.x
        saved = x[T0]
        if vmid is not None:
            x[T0] = vmid
            word |= T0 << 20  # rs2 = the VMID (rs1 = x0: every address)
        try:
            h.execute(word, VMM_PC)
        finally:
            x[T0] = saved

    def leave(self, slot: _Slot, spp: int) -> None:
        """World switch out: the host hart's guest state back into the vCPU (the hart is in HS)."""
        h, vm, vcpu = slot.hart, slot.vm, slot.vcpu
        hs = self.hs
        assert hs is not None
        loaded = hs.csrs.setdefault(h.id, {})
        c = vcpu.csr
        pc = VMM_PC

        def r(num: int) -> int:
            value = h.csr_read(num, pc)
            loaded[num] = value
            return value

        self._charge(slot, "world_switch", vm.hv_cost("world_switch"))
        self.world_switches += 1
        vcpu.x[:] = h.x
        vcpu.x[0] = 0
        vcpu.pc = h.csr_read(SEPC, pc)
        c.write(SSTATUS, r(VSSTATUS))
        c.stvec = r(VSTVEC)
        c.sscratch = r(VSSCRATCH)
        c.sepc = r(VSEPC)
        c.scause = r(VSCAUSE)
        c.stval = r(VSTVAL)
        satp = r(VSATP)
        if satp != c.satp:
            c.write(SATP, satp)
        c.scounteren = r(SCOUNTEREN)
        if not slot.reflect:  # (else hie/hvip are not the guest's: it runs only VU code here)
            mask = c.mideleg & S_INTS
            c.mie = (c.mie & ~mask) | ((r(HIE) >> 1) & mask)
            ssip = (r(HVIP) >> 1) & SSIP  # the guest may set or clear its own SSIP (sip is writable)
            c.mip_sw = (c.mip_sw & ~SSIP) | (ssip if mask & SSIP else c.mip_sw & SSIP)
        vcpu.set_priv(S_MODE if spp else U_MODE)
        slot.in_guest = False

    # -- exits ----------------------------------------------------------------------------------------
    def exit(self, slot: _Slot) -> None:
        """A trap from the guest reached HS-mode (the VMM's exit vector)."""
        h, vm, vcpu = slot.hart, slot.vm, slot.vcpu
        pc = VMM_PC
        cause = h.csr_read(SCAUSE, pc)
        tval = h.csr_read(STVAL, pc)
        epc = h.csr_read(SEPC, pc)
        spp = h.csr_read(SSTATUS, pc) & MSTATUS_SPP  # Priv 8.6.2: the guest's nominal privilege
        st = vm.vstats
        self._charge(slot, "hypervisor", vm.hv_cost("exit_hw"))
        if not slot.in_guest:
            raise HwVmmError(f"host hart {h.id}: exit (scause 0x{cause:08x}) while not running a guest")
        word: int | None = None
        gpa = 0
        fill = False
        if cause in ACCESS_FAULT_FOR_GPF:
            gpa = (h.csr_read(HTVAL, pc) << 2 | tval & 3) & M32  # Priv 8.6.3: htval = GPA >> 2
            gs = self.gstage
            fill = gs is not None and gs.lazy and vm.ram_base <= gpa < vm.ram_base + vm.ram_size
            if cause != CAUSE_FETCH_GPF and not fill:
                word = self._fetch_insn(slot, epc, spp)
        self.leave(slot, spp)
        stop = False
        if cause & INTERRUPT:
            irq = cause & ~INTERRUPT
            st.exits["timer" if irq == IRQ_STI else "interrupt"] += 1
            if irq == IRQ_STI:
                h.csr_write(STIMECMP, M32, pc)  # quiet the host timer until the next world switch
                h.csr_write(STIMECMPH, M32, pc)
                self.hs.csrs.setdefault(h.id, {})[STIMECMP] = M64  # type: ignore[union-attr]
                self._poll_guest_timer(vm, vcpu, self._slot_ticks(slot))
                stop = h.local_time() >= slot.slice_end
        elif cause == CAUSE_ECALL_VS:
            st.exits["sbi"] += 1
            if handle_sbi(vm, vcpu, vcpu.x):
                vcpu.pc = (vcpu.pc + 4) & M32
        elif fill and self._fill_gstage(slot, gpa):
            st.exits["gstage_fault"] += 1  # the guest retries the access (vcpu.pc is still epc)
        elif cause in ACCESS_FAULT_FOR_GPF:
            if word is not None and emulate_mmio(vm, vcpu.x, word, gpa):
                st.exits["mmio"] += 1
                vcpu.pc = (vcpu.pc + 4) & M32
            else:
                # Nothing of the VM is there (or it is not a load/store): an access fault, as the
                # bus gives on a machine without RAM at that address (Priv 3.6.1).
                st.exits["page_fault"] += 1
                vcpu.take_trap(ACCESS_FAULT_FOR_GPF[cause], tval)
        elif cause == CAUSE_VIRTUAL_INSN:
            st.exits["virtual_instruction"] += 1
            self._emulate(vcpu, tval)
        else:
            # Not delegated to the guest kernel: its handler is Python, or its firmware keeps it.
            st.exits["native_trap"] += 1
            self._reflect(vm, vcpu, cause, tval)
        if slot.force_stop or stop or not self._may_resume(slot):
            if slot.in_engine:
                raise YieldToHost()
            return
        self.enter(slot)

    def _fill_gstage(self, slot: _Slot, gpa: int) -> bool:
        """A lazy G-stage's fault in guest RAM: map the page (the host side faults it in and
        charges it, which may OOM-kill a hosted VMM), then ``HFENCE.GVMA gpa, vmid``: an invalid
        entry may have been cached (Priv 8.3.2; no Svvptc)."""
        gs, vm, h = self.gstage, slot.vm, slot.hart
        assert gs is not None
        if not map_guest_page(gs, vm, vm.hv, gpa):
            return False
        x = h.x
        saved = x[T0], x[T1]
        x[T0], x[T1] = gs.vmid, gpa >> 2
        try:
            h.execute(HFENCE_GVMA | T1 << 15 | T0 << 20, VMM_PC)
        finally:
            x[T0], x[T1] = saved
        return True

    def _may_resume(self, slot: _Slot) -> bool:
        vm, vcpu, h = slot.vm, slot.vcpu, slot.hart
        if vm.exit_requested or vm.halt_requested or vcpu.wfi or vcpu.priv == M_MODE:
            return False
        if h.local_time() >= slot.slice_end:
            return False
        due = vm.events.peek()
        return due is None or due > h.local_time()  # a device event is due: let the round end

    def _fetch_insn(self, slot: _Slot, epc: int, spp: int) -> int | None:
        """The guest's instruction at ``epc``: ``HLVX.WU`` (Priv 8.3.1) reads it through both
        stages with execute permission, as the guest's privilege (hstatus.SPVP, set by the trap)."""
        h = slot.hart
        x = h.x
        saved = x[T0]
        x[T0] = epc
        slot.hlvx, slot.hlvx_failed = True, False
        try:
            h.execute(HLVX_WU | T0 << 15 | T0 << 7, VMM_PC)
            word = None if slot.hlvx_failed else int(x[T0])
        finally:
            x[T0] = saved
            slot.hlvx = False
        if slot.hlvx_failed:
            # The nested trap rewrote sstatus.SPP: put the guest's privilege back for the world switch.
            if spp:
                h.csr_set(SSTATUS, MSTATUS_SPP, VMM_PC)
            h.csr_write(SEPC, epc, VMM_PC)
        return word

    def _emulate(self, vcpu: Hart, word: int) -> None:
        """Run ``word`` on the vCPU's state (a virtual-instruction exit): its own trap, if it takes
        one, is delivered on the vCPU as on real hardware."""
        emulate: Callable[[int], None] = getattr(vcpu, "emulate", vcpu.execute)
        try:
            emulate(word)
        except PrivilegedInstructionError:
            pass  # it trapped: trap entry already happened on the vCPU (delegated to its kernel)

    def _reflect(self, vm: VirtualMachine, vcpu: Hart, cause: int, tval: int) -> None:
        c = vcpu.csr
        if c.medeleg >> cause & 1:
            vcpu.take_trap(cause, tval)  # Priv 3.1.8: to the guest kernel at its stvec
            return
        # A trap the guest's firmware would get: the VMM is that firmware, and it does what
        # virtlevels/guests/firmware/sbi.S does with a trap it does not expect.
        console(
            vm,
            f"sbi: unexpected trap, mcause 0x{cause:08x} mepc 0x{vcpu.pc:08x} mtval 0x{tval:08x}\n".encode(),
        )
        vm.request_exit(0xFE)

    # -- guest software written in Python (the Python kernel as a guest) ---------------------------------
    def charge_guest_execute(self, vm: VirtualMachine, vcpu: Hart, word: int) -> None:
        """What ``word`` costs when the guest's Python kernel executes it: in VS-mode an S-level CSR
        access, ``sret`` or ``sfence.vma`` runs directly (no exit); virtual M-mode, the Sstc
        ``stimecmp`` (henvcfg.STCE is 0: a virtual-instruction exception, Priv 8.6.1) and WFI
        (hstatus.VTW) exit to the VMM, which emulates them."""
        st = vm.vstats
        csr = _csr_num(word)
        _op, ci = vm.table.decode(word)
        own = vcpu.class_costs[ci]
        if vcpu.priv == M_MODE or csr in (STIMECMP, STIMECMPH) or word == WFI:
            st.exits["privileged" if vcpu.priv == M_MODE else "virtual_instruction"] += 1
            cost = vm.hv_cost("exit_hw") + 2 * vm.hv_cost("world_switch")
            vcpu.charge("vmm_hw", cost)
            st.cycles["hypervisor"] += vm.hv_cost("exit_hw") + own  # the exit, then emulating it
            st.cycles["world_switch"] += 2 * vm.hv_cost("world_switch")
            st.emulated_instructions += 1
            return
        st.direct_instructions += 1
        st.cycles["guest_kernel"] += own
        if word & 0xFE007FFF == SFENCE_VMA or csr == SATP:
            self._vs_dirty.add(vcpu.id)  # the host TLB's VS-stage entries for it may be stale

    def stats(self, vm: VirtualMachine) -> dict[str, Any]:
        out = vm.vstats.to_dict()
        gs = self.gstage
        out["world_switches"] = self.world_switches
        if gs is not None:
            out["gstage"] = {"root": gs.root, "vmid": gs.vmid, "megapages": gs.megapages, "pages": gs.pages}
        return out
