"""The G-stage of a hardware-assisted VM: an Sv32x4 table mapping guest-physical RAM to its host frames.

Priv 8.5.1: with ``hgatp.MODE = Sv32x4`` a guest-physical address (34 bits) is translated by a
two-level table whose root is 16 KiB (4096 entries indexed by GPA[33:22]) and must be 16 KiB
aligned; the level-0 tables are ordinary 4 KiB Sv32 tables. G-stage leaves must have U set
(Priv 8.5.2: every G-stage access is checked as a U-mode access) and we preset A and D so no
walk ever needs to write a G-stage PTE.

Only the VM's RAM is mapped. Every other guest-physical address - the virtual devices and
anything outside the allocation - has no G-stage mapping, so a guest access to it is a
guest-page fault (causes 20, 21, 23) that exits to the VMM: that is how MMIO is trapped, and how
the VMM keeps host memory out of the guest's reach.

Each 4 MiB of guest RAM whose host frames are contiguous and 4 MiB aligned is one megapage
(a level-1 leaf); anything else (a hosted VMM's scattered frames) is mapped page by page through
a level-0 table. Every frame comes from the hypervisor's :class:`FramePool`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.machine.memory import PAGE_SHIFT, PAGE_SIZE
from virtlevels.machine.mmu import PTE_A, PTE_D, PTE_R, PTE_U, PTE_V, PTE_W, PTE_X

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels_hypervisor.vm import VirtualMachine

MEGA_PAGES = 1024  # 4 KiB pages per Sv32 megapage (4 MiB)
ROOT_PAGES = 4  # the Sv32x4 root is 16 KiB (Priv 8.5.1)
LEAF = PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D
HGATP_SV32X4 = 1 << 31
VMID_SHIFT = 22


def _pte(ppn: int, flags: int) -> bytes:
    return ((ppn << 10) | flags).to_bytes(4, "little")


@attrs.define(eq=False)
class GStage:
    """One VM's G-stage table in host memory: ``root`` (host-physical, 16 KiB) and the level-0
    tables it points to. ``megapages``/``pages`` count the leaves (for stats and tests)."""

    root: int
    vmid: int
    tables: list[int] = attrs.field(factory=list)  # host-physical addresses of level-0 tables
    megapages: int = 0
    pages: int = 0

    @property
    def hgatp(self) -> int:
        """The hgatp value selecting this table (Priv 8.2: MODE, VMID, PPN)."""
        return HGATP_SV32X4 | self.vmid << VMID_SHIFT | self.root >> PAGE_SHIFT


def build_gstage(vm: VirtualMachine, hv: Any, vmid: int) -> GStage:
    """Map ``vm``'s RAM (guest-physical ``vm.ram_base`` .. + ``vm.ram_size``) in a new G-stage
    table built in frames from ``hv.pool``; free it with :func:`free_gstage`."""
    host = vm.host
    pool = hv.pool
    root_ppn = pool.alloc(ROOT_PAGES, align_pages=ROOT_PAGES)
    gs = GStage(root_ppn << PAGE_SHIFT, vmid)
    try:
        host.phys_write(gs.root, bytes(ROOT_PAGES * PAGE_SIZE))
        mem = vm.guest_memory
        base_gppn = vm.ram_base >> PAGE_SHIFT
        npages = vm.ram_size >> PAGE_SHIFT
        for first in range(0, npages, MEGA_PAGES):
            gppn = base_gppn + first
            slot = gs.root + 4 * (gppn >> 10)  # GPA[33:22]: the root index
            count = min(MEGA_PAGES, npages - first)
            hppns = [mem.hppn_of(first + i) for i in range(count)]
            aligned = not gppn % MEGA_PAGES and not hppns[0] % MEGA_PAGES
            if count == MEGA_PAGES and aligned and hppns == list(range(hppns[0], hppns[0] + MEGA_PAGES)):
                host.phys_write(slot, _pte(hppns[0], LEAF))
                gs.megapages += 1
                continue
            table_ppn = pool.alloc(1)
            table = table_ppn << PAGE_SHIFT
            gs.tables.append(table)
            entries = bytearray(PAGE_SIZE)
            for i, hppn in enumerate(hppns):
                idx = (gppn + i) & 0x3FF
                entries[4 * idx : 4 * idx + 4] = _pte(hppn, LEAF)
            host.phys_write(table, bytes(entries))
            host.phys_write(slot, _pte(table_ppn, PTE_V))  # a pointer: V only (Priv 4.3.1)
            gs.pages += count
    except BaseException:
        free_gstage(gs, hv, vm)
        raise
    return gs


def free_gstage(gs: GStage, hv: Any, vm: VirtualMachine) -> None:
    """Scrub and return the G-stage's frames to the pool."""
    host = vm.host
    for table in gs.tables:
        host.phys_write(table, bytes(PAGE_SIZE))
        hv.pool.release(table >> PAGE_SHIFT, 1)
    gs.tables.clear()
    host.phys_write(gs.root, bytes(ROOT_PAGES * PAGE_SIZE))
    hv.pool.release(gs.root >> PAGE_SHIFT, ROOT_PAGES)
