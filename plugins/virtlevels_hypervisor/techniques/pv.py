"""Paravirtualization (Xen, Barham et al., SOSP 2003): the guest kernel knows it is virtualized
and asks the VMM through hypercalls instead of executing privileged instructions.

The PV teachos (``build_teachos(..., paravirt=True)``) runs deprivileged in host U-mode on the
same VMM as trap-and-emulate (:class:`~virtlevels_hypervisor.deprivileged.DeprivilegedVmm`, shadow
page tables included), but it executes no privileged instruction: its ``ecall``\\ s with the VLP
extension ID (docs/guests.md, "The VLP paravirtualization ABI") reach :meth:`PvTechnique.hypercall`,
which acts on the vCPU's virtual supervisor state. Page-table updates arrive batched
(``mmu_update``, as Xen's) and are validated: a PTE may only point into the guest's own RAM (or,
for a leaf, its virtual devices), so a PV guest cannot map memory outside its allocation. The
x86-like ``popf`` problem does not arise: a PV kernel changes its interrupt state by hypercall.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtlevels.machine.csr import SATP_MODE
from virtlevels.machine.hart import Hart
from virtlevels.machine.mmu import PTE_R, PTE_V, PTE_W, PTE_X
from virtlevels_hypervisor.techniques.trap import TrapTechnique

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels_hypervisor.vm import VirtualMachine

M32 = 0xFFFFFFFF
# VLP function IDs (docs/guests.md).
CSR_READ, CSR_WRITE, CSR_SET, CSR_CLEAR, SET_SATP, MMU_UPDATE, SRET, TLB_FLUSH, WAIT, TRAP_INFO = range(10)
# CSRs the calls accept: sstatus, sie, stvec, scounteren, sscratch, sepc, scause, stval, sip, satp.
PV_CSRS = frozenset((0x100, 0x104, 0x105, 0x106, 0x140, 0x141, 0x142, 0x143, 0x144, 0x180))
SBI_SUCCESS, SBI_ERR_NOT_SUPPORTED, SBI_ERR_INVALID_PARAM, SBI_ERR_INVALID_ADDRESS = 0, -2, -3, -5
MMU_UPDATE_LOW = 0x8020_0000  # docs/guests.md: PTE addresses below the kernel are refused
FN_NAMES = ("csr_read", "csr_write", "csr_set", "csr_clear", "set_satp", "mmu_update", "sret",
            "tlb_flush", "wait", "trap_info")  # fmt: skip


class PvTechnique(TrapTechnique):
    """``PvTechnique(quantum=20_000)``; counts hypercalls by function in ``calls``."""

    name = "pv"

    def __init__(self, quantum: int = 20_000) -> None:
        super().__init__(quantum)
        self.calls: dict[str, int] = {}
        self.rejected_ptes = 0

    def stats(self, vm: VirtualMachine) -> dict[str, object]:
        out = super().stats(vm)
        out["hypercalls_by_function"] = dict(sorted(self.calls.items()))
        out["rejected_ptes"] = self.rejected_ptes
        return out

    # -- the VLP ABI on virtual state -------------------------------------------------------------------
    def hypercall(self, vm: VirtualMachine, vcpu: Hart, x: list[int]) -> bool:
        """Serve one VLP call in ``x`` (a6 = function); False if the VM stopped."""
        fid, a0, a1 = x[16], x[10], x[11]
        name = FN_NAMES[fid] if fid < len(FN_NAMES) else f"fid_{fid}"
        self.calls[name] = self.calls.get(name, 0) + 1
        err, val = SBI_SUCCESS, 0
        csr = vcpu.csr
        if fid in (CSR_READ, CSR_WRITE, CSR_SET, CSR_CLEAR):
            if a0 not in PV_CSRS:
                err = SBI_ERR_INVALID_PARAM
            else:
                val = csr.read(a0)
                new = {CSR_WRITE: a1, CSR_SET: val | a1, CSR_CLEAR: val & ~a1}.get(fid)
                if new is not None:
                    csr.write(a0, new & M32)
        elif fid == SET_SATP:
            csr.write(0x180, a0)
            vcpu.sfence_vma(None, None)  # installs it and flushes the whole (virtual) TLB
        elif fid == MMU_UPDATE:
            err, val = self._mmu_update(vm, a0, a1)
        elif fid == SRET:
            if not self._sret(vm, vcpu, a0):
                err = SBI_ERR_INVALID_ADDRESS
            else:
                return True  # continues at sepc with the frame's registers: nothing to return
        elif fid == TLB_FLUSH:
            vcpu.sfence_vma(None if a0 == M32 else a0, None)
        elif fid == WAIT:
            if not vcpu.interrupt_waiting():
                vcpu.wfi = True  # WFI semantics (Priv 3.3.3): resumes when an enabled interrupt is pending
        elif fid == TRAP_INFO:
            words = (csr.read(0x142), csr.read(0x141), csr.read(0x143), csr.read(0x100))
            data = b"".join(w.to_bytes(4, "little") for w in words)
            if not vm.bus.is_plain_ram(a0, 16):
                err = SBI_ERR_INVALID_ADDRESS
            else:
                vm.bus.memory.write_bytes(a0, data)
        else:
            err = SBI_ERR_NOT_SUPPORTED
        x[10], x[11] = err & M32, val & M32
        return True

    def _sret(self, vm: VirtualMachine, vcpu: Hart, frame: int) -> bool:
        if not vm.bus.is_plain_ram(frame, 128):
            return False
        raw = vm.bus.memory.read_bytes(frame, 128)
        regs = [int.from_bytes(raw[4 * i : 4 * i + 4], "little") for i in range(32)]
        vcpu.pc = vcpu.sret()  # Priv 3.3.2 on the virtual sstatus/sepc
        vcpu.x[1:] = regs[1:]
        assert self.vmm is not None
        self.vmm.redirected = True
        return True

    def _mmu_update(self, vm: VirtualMachine, table: int, count: int) -> tuple[int, int]:
        """Xen-style batched PTE writes, each validated before it lands (docs/guests.md)."""
        assert self.vmm is not None
        shadow = self.vmm.shadow
        ram_end = vm.ram_base + vm.ram_size
        if count and not vm.bus.is_plain_ram(table, 8 * count):
            return SBI_ERR_INVALID_ADDRESS, 0
        raw = vm.bus.memory.read_bytes(table, 8 * count) if count else b""
        done = 0
        for i in range(count):
            addr = int.from_bytes(raw[8 * i : 8 * i + 4], "little")
            value = int.from_bytes(raw[8 * i + 4 : 8 * i + 8], "little")
            if addr & 3 or not MMU_UPDATE_LOW <= addr < ram_end or not vm.bus.is_plain_ram(addr, 4):
                return SBI_ERR_INVALID_ADDRESS, done
            if not self._pte_ok(vm, value):
                self.rejected_ptes += 1
                return SBI_ERR_INVALID_PARAM, done
            vm.bus.memory.write(addr, 4, value)
            vm.vstats.shadow_updates += shadow.pte_written(addr, 4)
            done += 1
        return SBI_SUCCESS, done

    @staticmethod
    def _pte_ok(vm: VirtualMachine, pte: int) -> bool:
        """Resource control: the page (or megapage, or next table) a PTE names is the guest's own."""
        if not pte & PTE_V:
            return True
        ppn = pte >> 10
        if pte & (PTE_R | PTE_W | PTE_X):
            # A leaf: a 4 KiB page or a 4 MiB megapage (we cannot tell the level here, so check
            # the page itself; a megapage's other pages are checked when the walk reaches them).
            pa = ppn << 12
            return vm.bus.is_plain_ram(pa, 4) or vm.bus.find(pa, 1) is not None
        return vm.bus.is_plain_ram(ppn << 12, 4096)


__all__ = ["PvTechnique", "SATP_MODE"]
