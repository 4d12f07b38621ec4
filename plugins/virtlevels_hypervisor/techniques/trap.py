"""Trap-and-emulate (Popek & Goldberg 1974; the classic VMM of IBM VM/370): the guest kernel runs
deprivileged in host U-mode, its privileged instructions trap and are emulated on virtual state.

The VMM is :class:`~virtlevels_hypervisor.deprivileged.DeprivilegedVmm` (supervisor software on
the host Machine, so it also runs nested inside a VM) with shadow page tables
(:mod:`virtlevels_hypervisor.shadow`). The guest boots "kernel": the VMM is its SBI firmware.

Equivalence holds only when every sensitive instruction is privileged (Theorem 1). On the
``x86-like`` ISA profile it is not: a guest kernel's ``popf`` runs in host U-mode and silently
drops its interrupt-enable change, and ``pushf``/``smsw``/``sgdt`` read host state, not the
virtual one. This technique does nothing about that, on purpose: the divergence is the lesson.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from virtlevels.machine.hart import Hart
from virtlevels.machine.machine import RunResult
from virtlevels_hypervisor.deprivileged import DeprivilegedVmm
from virtlevels_hypervisor.techniques.base import TechniqueBase, result_from_vm

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels_hypervisor.vm import VirtualMachine


class TrapTechnique(TechniqueBase):
    """``TrapTechnique(quantum=20_000)``: one instance per VM; ``quantum`` = host cycles per slice."""

    name = "trap"
    boot = "kernel"

    def __init__(self, quantum: int = 20_000) -> None:
        self.quantum = quantum
        self.vmm: DeprivilegedVmm | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def attach(self, vm: VirtualMachine) -> None:
        hv = vm.hv
        if hv is None:
            raise ValueError("a trap-and-emulate VM needs the Hypervisor that made it (frames for shadows)")
        self.vmm = DeprivilegedVmm(vm, hv.alloc_frame, hv.free_frame, quantum=self.quantum)

    def detach(self, vm: VirtualMachine) -> None:
        if self.vmm is not None:
            self.vmm.release()

    def _vmm(self, vm: VirtualMachine) -> DeprivilegedVmm:
        if self.vmm is None or self.vmm.vm is not vm:
            self.attach(vm)
        assert self.vmm is not None
        return self.vmm

    # -- running ------------------------------------------------------------------------------------
    def run(self, vm: VirtualMachine, max_instructions: int | None, engine: str = "interp") -> RunResult:
        """Run every vCPU, slice by slice, on the shared clock until the guest exits, the
        instruction limit passes, or every vCPU waits with no timer armed."""
        vmm = self._vmm(vm)
        start_now = vm.events.now
        g0 = vm.vstats.guest_instructions()
        status = "limit"
        while True:
            if vm.exit_requested:
                status = "pass" if vm.exit_code == 0 else "fail"
                break
            if max_instructions is not None and vm.vstats.guest_instructions() - g0 >= max_instructions:
                break
            used = 0
            for vcpu in vm.harts:
                used = max(used, vmm.run_vcpu(vcpu, self.quantum, engine))
                if vm.exit_requested:
                    break
            if used:
                vm.events.run(until=vm.events.now + used)
                continue
            # Every vCPU waits for an interrupt: jump to the next virtual timer deadline or event.
            dues = [d for d in (vmm.next_deadline(v) for v in vm.harts) if d is not None]
            nxt = vm.events.peek()
            if nxt is not None:
                dues.append(nxt)
            if not dues:
                status = "wfi-deadlock"
                break
            target = max(min(dues), vm.events.now + 1)
            vm.idle_cycles += target - vm.events.now
            vm.events.run(until=target)
        return result_from_vm(vm, status, start_now, g0)

    def run_hart(self, vm: VirtualMachine, vcpu: Hart, max_cycles: int, engine: str = "interp") -> int:
        return self._vmm(vm).run_vcpu(vcpu, max_cycles, engine)

    def charge_guest_execute(self, vm: VirtualMachine, vcpu: Hart, word: int) -> None:
        self._vmm(vm).guest_executed(vcpu, word)

    def stats(self, vm: VirtualMachine) -> dict[str, Any]:
        out = vm.vstats.to_dict()
        vmm = self._vmm(vm)
        out.update(vmm.shadow.stats())
        out["injected_interrupts"] = vmm.injected
        out["reflected_exceptions"] = vmm.reflected
        return out


# -- the x86-like demonstration: a teachos that restores interrupt state with popf ---------------------

#: The user program of the demonstration: it sleeps, so the kernel idles (and needs the timer).
SLEEPER_SOURCE = r"""
    .globl _start
_start:
    li    a0, 1
    la    a1, before
    li    a2, 9
    li    a7, 64              # write
    ecall
    la    a0, req
    li    a1, 0
    li    a7, 101             # nanosleep(1 ms): every process asleep, the kernel idles
    ecall
    li    a0, 1
    la    a1, after
    li    a2, 8
    li    a7, 64
    ecall
    li    a0, 0
    li    a7, 93              # exit
    ecall
    .rodata
before: .ascii "sleeping\n"
after:  .ascii "awake!!\n"
    .data
    .balign 8
req:    .word 0, 0, 1000000, 0  # __kernel_timespec {0 s, 1000000 ns}
"""


def popf_arch_source() -> str:
    """teachos's arch_native.S with an idle loop in the style of x86 kernels: enable interrupts
    with ``popf`` (x86 ``sti``/``popf``), spin until the timer interrupt arrives *in the kernel*,
    disable them again. Natively (and under every technique that preserves equivalence) the
    interrupt is taken in S-mode and the loop ends; deprivileged in U-mode, popf silently drops
    the enable (Robin & Irvine's POPF), the virtual interrupt is never deliverable, the kernel spins.
    """
    from importlib import resources

    src = resources.files("virtlevels.guests.teachos").joinpath("arch_native.S").read_text(encoding="utf-8")
    kernel_path = """1:  csrrw sp, sscratch, sp             # put sp and sscratch (0) back
    j     kernel_trap
"""
    if kernel_path not in src:
        raise ValueError("arch_native.S changed: the popf variant's patch point is gone")
    src = src.replace(
        kernel_path,
        """1:  csrrw sp, sscratch, sp             # put sp and sscratch (0) back
    csrw  sscratch, t0                 # a trap in the kernel: an interrupt while idling?
    csrr  t0, scause
    bgez  t0, 2f                       # an exception: a kernel bug
    li    t0, SSTATUS_SPIE
    csrc  sstatus, t0                  # return with interrupts off (the idle loop's popf undoes it)
    la    t0, kernel_irq
    sw    t0, 0(t0)                    # non-zero: the idle loop may go on
    csrr  t0, sscratch
    csrw  sscratch, zero
    sret
2:  csrr  t0, sscratch
    csrw  sscratch, zero
    j     kernel_trap
""",
    )
    idle = """arch_idle:
    wfi                                # Priv 3.3.3: resumes when an enabled interrupt is pending
    ret
"""
    if idle not in src:
        raise ValueError("arch_native.S changed: the popf variant's idle patch point is gone")
    src = src.replace(
        idle,
        """arch_idle:
    li    t0, SSTATUS_SIE_BIT
    popf  t0                           # x86 sti: interrupts on while idle
1:  la    t1, kernel_irq
    lw    t2, 0(t1)
    beqz  t2, 1b                       # spin until the timer interrupt has been taken
    sw    zero, 0(t1)
    popf  zero                         # x86 cli
    ret

    .data
    .balign 4
kernel_irq: .word 0
    .text
""",
    )
    return "    .equ SSTATUS_SIE_BIT, 2\n" + src


def build_teachos_popf(programs: Any = None, **kwargs: Any) -> Any:
    """A teachos image for the ``x86-like`` profile whose idle loop uses ``popf`` (see
    :func:`popf_arch_source`); default programs: the sleeper."""
    from virtlevels.guests import build_teachos
    from virtlevels.guests.builder import UserProgram
    from virtlevels.machine.isa import x86like
    from virtlevels.machine.isa.encodings import ENCODINGS

    if programs is None:
        programs = [UserProgram("sleeper", SLEEPER_SOURCE, "sleeper.S")]
    return build_teachos(programs, arch_source=popf_arch_source(), encodings=ENCODINGS + x86like.ENCODINGS,
                         **kwargs)  # fmt: skip
