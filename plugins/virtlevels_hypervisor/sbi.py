"""The VMM as the guest's SBI firmware (RISC-V SBI 2.0), for every technique that boots "kernel".

A guest kernel's ``ecall`` from (virtual) S-mode reaches the VMM, which serves it on the VM's
virtual hardware exactly as virtlevels/guests/firmware/sbi.S serves it on the physical machine:
base (ch. 4), TIME set_timer (ch. 6, the vCPU's virtual timer), the legacy console and shutdown
(ch. 5), DBCN (ch. 12) and SRST (ch. 10) with the firmware's exit-code rules. The paravirtual
extension (EID ``VLP_EID``, docs/guests.md) is forwarded to the technique's ``hypercall``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtlevels.guests.layout import VLP_EID
from virtlevels.machine.hart import Hart

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels_hypervisor.vm import VirtualMachine

M32 = 0xFFFFFFFF
EID_PUTCHAR, EID_GETCHAR, EID_SHUTDOWN = 0x01, 0x02, 0x08
EID_BASE, EID_TIME, EID_DBCN, EID_SRST = 0x10, 0x54494D45, 0x4442434E, 0x53525354
SBI_SUCCESS, SBI_ERR_NOT_SUPPORTED, SBI_ERR_INVALID_ADDRESS = 0, -2, -5
SPEC_VERSION, IMPL_ID, IMPL_VERSION = 0x0200_0000, 0x564C, 1
KNOWN = (EID_BASE, EID_TIME, EID_DBCN, EID_SRST, EID_PUTCHAR, EID_GETCHAR, EID_SHUTDOWN)


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
    when the call ended the VM (the run loop stops; the pc is not advanced)."""
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
    elif eid == EID_SRST and fid == 0:
        vm.request_exit(srst_exit_code(a1) if a0 == 0 else 0)
        return False
    else:
        err = SBI_ERR_NOT_SUPPORTED
    x[10], x[11] = err & M32, val & M32
    return True
