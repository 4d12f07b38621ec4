"""The host kernel's hart state, saved and restored around a hosted VMM's run on that hart.

In hosted mode (Type 2) the VMM's in-kernel part borrows a hart of the host kernel for one vCPU
slice, as KVM's ``vcpu_load``/``vcpu_put`` and its world-switch code do on Linux
(arch/riscv/kvm/vcpu_switch.S saves the host's sstatus, hstatus, sscratch, stvec and scounteren;
the rest of the host's supervisor state is saved in ``kvm_arch_vcpu_load``/``put``). Every
technique that runs guest code on a host hart programs that hart's supervisor CSRs for itself -
``stvec`` (its exit vector), ``satp`` (a shadow table), ``stimecmp`` (the slice timer), ``sie``,
and under the H extension ``hstatus``, ``hedeleg``/``hideleg``, ``hgatp``, ``htimedelta``, the VS
CSRs - so before the run it saves what the host kernel had there and after the run it puts it
back, by instructions on the hart (``csrr``/``csrw``, Priv 2.1), so the host kernel's own ISA
processes keep trapping into the host kernel.

Machine-mode state (the firmware's delegation) is not touched: the host kernel's firmware already
delegates what a hypervisor in the kernel needs (virtlevels/kernel/hw.py, Priv 8.4).
"""

from __future__ import annotations

from typing import Any

import attrs

M32 = 0xFFFFFFFF

# Supervisor CSRs (Priv 2.2 table 2.3; Sstc). stimecmp is handled apart (64 bits, written safely).
SSTATUS, SIE, STVEC, SCOUNTEREN, SSCRATCH, SEPC, SCAUSE, STVAL = (
    0x100, 0x104, 0x105, 0x106, 0x140, 0x141, 0x142, 0x143)  # fmt: skip
SATP, STIMECMP, STIMECMPH = 0x180, 0x14D, 0x15D
S_CSRS = (SIE, STVEC, SCOUNTEREN, SSCRATCH, SEPC, SCAUSE, STVAL)
# Hypervisor and VS CSRs (Priv 8.2): what a hardware-assisted VMM writes or its exits set.
HSTATUS, HEDELEG, HIDELEG, HIE, HTIMEDELTA, HCOUNTEREN, HTIMEDELTAH = (
    0x600, 0x602, 0x603, 0x604, 0x605, 0x606, 0x615)  # fmt: skip
HTVAL, HVIP, HTINST, HGATP = 0x643, 0x645, 0x64A, 0x680
# (vsie is a view of hie through hideleg, Priv 8.2.12: restoring hie restores it.)
VSSTATUS, VSTVEC, VSSCRATCH, VSEPC, VSCAUSE, VSTVAL, VSATP = 0x200, 0x205, 0x240, 0x241, 0x242, 0x243, 0x280
H_CSRS = (
    HEDELEG, HIDELEG, HIE, HTIMEDELTA, HTIMEDELTAH, HCOUNTEREN, HTVAL, HVIP, HTINST, HGATP,
    VSSTATUS, VSTVEC, VSSCRATCH, VSEPC, VSCAUSE, VSTVAL, VSATP,
)  # fmt: skip


@attrs.define
class SavedHostState:
    """What the host kernel had on a hart: CSRs by number, registers, pc."""

    hart_id: int
    csrs: dict[int, int]
    x: list[int]
    pc: int
    priv: int


def save_host_state(h: Any, pc: int) -> SavedHostState:
    """Read the host kernel's supervisor (and, with H, hypervisor) CSRs on ``h`` (``csrr`` at ``pc``)."""
    nums = [SSTATUS, SATP, STIMECMP, STIMECMPH, *S_CSRS]
    if getattr(h, "hext", False):
        nums += [HSTATUS, *H_CSRS]
    csrs = {num: h.csr_read(num, pc=pc) & M32 for num in nums}
    return SavedHostState(h.id, csrs, list(h.x), h.pc, h.priv)


def restore_host_state(h: Any, saved: SavedHostState, pc: int) -> None:
    """Put the host kernel's state back on ``h`` (``csrw`` at ``pc``); a CSR the VMM left unchanged
    is not written. If ``satp`` changed meanwhile, ``sfence.vma`` follows its restore: the VMM's
    translations (a shadow table's) must not serve the host's address space (Priv 4.2.1)."""
    if h.id != saved.hart_id:
        raise ValueError(f"host state of hart {saved.hart_id} restored on hart {h.id}")
    want = saved.csrs

    def put(num: int) -> None:
        if h.csr_read(num, pc=pc) & M32 != want[num]:
            h.csr_write(num, want[num], pc=pc)

    if HSTATUS in want:
        for num in (HSTATUS, *H_CSRS):
            put(num)
    for num in S_CSRS:
        put(num)
    if h.csr_read(SATP, pc=pc) & M32 != want[SATP]:
        h.csr_write(SATP, want[SATP], pc=pc)
        h.exec_sfence_vma(pc=pc)
    lo, hi = want[STIMECMP], want[STIMECMPH]
    if h.csr_read(STIMECMP, pc=pc) != lo or h.csr_read(STIMECMPH, pc=pc) != hi:
        h.csr_write(STIMECMP, M32, pc=pc)  # Sstc: never a transient earlier deadline (Priv 3.2.1 idiom)
        h.csr_write(STIMECMPH, hi, pc=pc)
        h.csr_write(STIMECMP, lo, pc=pc)
    put(SSTATUS)  # last: SIE, SPP, SPIE as the host kernel had them
    h.x[:] = saved.x
    h.pc = saved.pc
