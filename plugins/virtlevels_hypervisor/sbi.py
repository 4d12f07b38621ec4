"""The VMM as the guest's SBI firmware (RISC-V SBI 2.0), for every technique that boots "kernel".

A guest kernel's ``ecall`` from (virtual) S-mode reaches the VMM, which serves it on the VM's
virtual hardware exactly as virtlevels/guests/firmware/sbi.S serves it on the physical machine:
base (ch. 4), TIME set_timer (ch. 6, the vCPU's virtual timer), the legacy console and shutdown
(ch. 5), DBCN (ch. 12) and SRST (ch. 10) with the firmware's exit-code rules, and HSM (ch. 9:
hart_start, hart_stop, hart_get_status) on the VM's vCPUs. The paravirtual extension (EID
``VLP_EID``, docs/guests.md) is forwarded to the technique's ``hypercall``.

**Hart state management.** As under OpenSBI, only the boot hart (vCPU 0) enters the kernel; the
other vCPUs are STOPPED (:func:`hsm_boot`) until the kernel starts one with ``hart_start``, which
puts it in S-mode at ``start_addr`` with a0 = its hart id, a1 = ``opaque``, ``satp`` = 0 and
``sstatus.SIE`` = 0 (SBI 2.0 section 9.1). A stopped vCPU waits (``wfi``) with no interrupt enabled,
so every technique's run loop leaves it alone, and no host hart time goes to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtlevels.guests.layout import VLP_EID
from virtlevels.machine.hart import S_MODE, Hart

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels_hypervisor.vm import VirtualMachine

M32 = 0xFFFFFFFF
EID_PUTCHAR, EID_GETCHAR, EID_SHUTDOWN = 0x01, 0x02, 0x08
EID_BASE, EID_TIME, EID_DBCN, EID_SRST, EID_HSM = 0x10, 0x54494D45, 0x4442434E, 0x53525354, 0x48534D
# SBI 2.0 section 3.2, table 1: standard error codes.
SBI_SUCCESS, SBI_ERR_FAILED, SBI_ERR_NOT_SUPPORTED, SBI_ERR_INVALID_PARAM = 0, -1, -2, -3
SBI_ERR_INVALID_ADDRESS, SBI_ERR_ALREADY_AVAILABLE = -5, -6
SPEC_VERSION, IMPL_ID, IMPL_VERSION = 0x0200_0000, 0x564C, 1
KNOWN = (EID_BASE, EID_TIME, EID_DBCN, EID_SRST, EID_HSM, EID_PUTCHAR, EID_GETCHAR, EID_SHUTDOWN)
# SBI 2.0 section 9, table 20: HSM hart states (this firmware has no suspend, and its transitions
# complete within the call, so the *_PENDING states are never observed).
HSM_STARTED, HSM_STOPPED = 0, 1
HSM_HART_START, HSM_HART_STOP, HSM_HART_GET_STATUS = 0, 1, 2
SATP, SSTATUS_SIE = 0x180, 1 << 1
M64 = (1 << 64) - 1

def hsm_boot(vm: VirtualMachine, boot_hart: int = 0) -> None:
    """Boot as OpenSBI does: ``boot_hart`` is STARTED (it enters the kernel), every other vCPU is
    STOPPED until the kernel starts it."""
    vm.hsm_stopped = set()
    for vcpu in vm.harts:
        if vcpu.id != boot_hart:
            _stop(vm, vcpu)


def hsm_status(vm: VirtualMachine, hartid: int) -> int:
    """The HSM state of vCPU ``hartid`` (STARTED unless the firmware stopped it)."""
    return HSM_STOPPED if hartid in vm.hsm_stopped else HSM_STARTED


def _stop(vm: VirtualMachine, vcpu: Hart) -> None:
    # The hart leaves the kernel for good: it waits with no interrupt enabled and no timer armed
    # (its S-mode state is undefined until hart_start, SBI 2.0 section 9.1).
    vm.hsm_stopped.add(vcpu.id)
    c = vcpu.csr
    c.mie = 0
    if c.stimecmp != M64:
        c.stimecmp = M64
        vcpu.stimer_changed()
    vm.set_guest_timer(vcpu, None)
    vcpu.wfi = True


def _start(vm: VirtualMachine, hartid: int, addr: int, opaque: int) -> int:
    """hart_start (SBI 2.0 section 9.1): the SBI error code."""
    if not 0 <= hartid < len(vm.harts):
        return SBI_ERR_INVALID_PARAM
    stopped = vm.hsm_stopped
    if hartid not in stopped:
        return SBI_ERR_ALREADY_AVAILABLE
    if not vm.bus.is_ram(addr, 4):
        return SBI_ERR_INVALID_ADDRESS  # satp = 0: start_addr is a physical address
    vcpu = vm.harts[hartid]
    stopped.discard(hartid)
    vcpu.set_priv(S_MODE)
    vcpu.csr.write(SATP, 0)
    vcpu.csr.mstatus &= ~SSTATUS_SIE
    vcpu.pc = addr & M32
    vcpu.x[10], vcpu.x[11] = hartid, opaque & M32
    vcpu.wfi = False
    vcpu.context_changed()
    started = getattr(vm.technique, "vcpu_started", None)
    if started is not None:
        started(vm, vcpu)  # the technique forgets cached translation state of that vCPU
    return SBI_SUCCESS


def _hsm(vm: VirtualMachine, vcpu: Hart, fid: int, x: list[int]) -> tuple[int, int] | None:
    """An HSM call: (error, value), or None when the calling hart stopped (the call does not return)."""
    a0, a1, a2 = x[10], x[11], x[12]
    if fid == HSM_HART_START:
        return _start(vm, a0, a1, a2), 0
    if fid == HSM_HART_STOP:
        _stop(vm, vcpu)
        return None
    if fid == HSM_HART_GET_STATUS:
        if not 0 <= a0 < len(vm.harts):
            return SBI_ERR_INVALID_PARAM, 0
        return SBI_SUCCESS, hsm_status(vm, a0)
    return SBI_ERR_NOT_SUPPORTED, 0  # hart_suspend (FID 3) is optional: not implemented


def console(vm: VirtualMachine, data: bytes) -> None:
    """Bytes the guest printed through the firmware: the VM's UART output."""
    vm.device("uart0").emit(data)


def srst_exit_code(reason: int) -> int:
    # The firmware's rule (sbi.S): reason 0 passes; 0xE000_0000 | code fails with code; else 1.
    if reason == 0:
        return 0
    if reason & 0xF000_0000 == 0xE000_0000:
        return reason & 0xFFFF
    return 1


def handle_sbi(vm: VirtualMachine, vcpu: Hart, x: list[int]) -> bool:
    """Serve the SBI call in ``x`` (a7 = EID, a6 = FID, a0-a5 arguments; a0/a1 = error/value).

    ``x`` is the register file the guest trapped with (a host hart's, or the vCPU's). Returns False
    when the call ended the VM, or stopped the calling hart (HSM hart_stop): the run loop stops for
    it and the pc is not advanced."""
    eid, fid, a0, a1 = x[17], x[16], x[10], x[11]
    err, val = SBI_SUCCESS, 0
    if eid == VLP_EID:
        hypercall = getattr(vm.technique, "hypercall", None)
        if hypercall is None:
            err = SBI_ERR_NOT_SUPPORTED
        else:
            return bool(hypercall(vm, vcpu, x))
    elif eid == EID_BASE:
        if fid == 0:
            val = SPEC_VERSION
        elif fid == 1:
            val = IMPL_ID
        elif fid == 2:
            val = IMPL_VERSION
        elif fid == 3:
            val = int(a0 in KNOWN or (a0 == VLP_EID and hasattr(vm.technique, "hypercall")))
        elif fid in (4, 5, 6):
            val = 0  # mvendorid, marchid, mimpid: not implemented (0 is legal)
        else:
            err = SBI_ERR_NOT_SUPPORTED
    elif eid == EID_TIME and fid == 0:
        vm.set_guest_timer(vcpu, a0 | a1 << 32)
    elif eid == EID_PUTCHAR:
        console(vm, bytes([a0 & 0xFF]))
        x[10] = 0
        return True
    elif eid == EID_GETCHAR:
        x[10] = M32  # no input: -1
        return True
    elif eid == EID_SHUTDOWN:
        vm.request_exit(0)
        return False
    elif eid == EID_DBCN and fid == 0:  # write(num_bytes, base_lo, base_hi)
        try:
            console(vm, vm.phys_read(a1 | x[12] << 32, a0))
            val = a0
        except Exception:  # outside the guest's RAM (ConfigError / GuestAccessError)
            err = SBI_ERR_INVALID_ADDRESS
    elif eid == EID_DBCN and fid == 1:
        val = 0  # read: no input
    elif eid == EID_DBCN and fid == 2:
        console(vm, bytes([a0 & 0xFF]))
    elif eid == EID_HSM:
        res = _hsm(vm, vcpu, fid, x)
        if res is None:
            return False  # hart_stop: the hart does not come back (its pc is set by hart_start)
        err, val = res
    elif eid == EID_SRST and fid == 0:
        vm.request_exit(srst_exit_code(a1) if a0 == 0 else 0)
        return False
    else:
        err = SBI_ERR_NOT_SUPPORTED
    x[10], x[11] = err & M32, val & M32
    return True
