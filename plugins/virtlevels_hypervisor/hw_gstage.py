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
(a level-1 leaf); anything else (scattered frames) is mapped page by page through a level-0
table. In native mode every frame comes from the hypervisor's :class:`FramePool` and the whole
RAM is mapped up front.

In hosted mode (``lazy=True``; KVM's way) the table starts empty: guest RAM is the VMM process's
anonymous memory, which has no host frames until it is touched. The first guest access to a page
is a guest-page fault whose address is inside the RAM; the VMM then faults the page in on the host
side (charged to the VMM process's memory cgroup) and maps it with :func:`map_guest_page` - as
KVM's EPT-violation / G-stage fault handler does with ``get_user_pages``. The root and level-0
tables are frames of the host kernel (``hv.alloc_frame`` / ``hv.alloc_frames``).
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
    lazy: bool = False  # pages are mapped on their first guest-page fault (hosted mode)

    @property
    def hgatp(self) -> int:
        """The hgatp value selecting this table (Priv 8.2: MODE, VMID, PPN)."""
        return HGATP_SV32X4 | self.vmid << VMID_SHIFT | self.root >> PAGE_SHIFT


def _alloc(hv: Any, npages: int, align: int) -> int:
    """``npages`` contiguous zeroed host frames aligned to ``align`` pages: their host-physical address."""
    pool = getattr(hv, "pool", None)
    if pool is None:
        return int(hv.alloc_frames(npages, align))
    ppn = pool.alloc(npages, align_pages=align)
    return int(ppn) << PAGE_SHIFT


def _free(hv: Any, paddr: int, npages: int) -> None:
    pool = getattr(hv, "pool", None)
    if pool is None:
        hv.free_frames(paddr, npages)
    else:
        pool.release(paddr >> PAGE_SHIFT, npages)


def build_gstage(vm: VirtualMachine, hv: Any, vmid: int, *, lazy: bool = False) -> GStage:
    """Map ``vm``'s RAM (guest-physical ``vm.ram_base`` .. + ``vm.ram_size``) in a new G-stage
    table built in frames of ``hv`` (its pool in native mode); free it with :func:`free_gstage`.
    ``lazy``: map nothing yet (pages are mapped on their first guest-page fault)."""
    host = vm.host
    root = _alloc(hv, ROOT_PAGES, ROOT_PAGES)
    gs = GStage(root, vmid, lazy=lazy)
    try:
        host.phys_write(gs.root, bytes(ROOT_PAGES * PAGE_SIZE))
        if lazy:
            return gs
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
            table = _alloc(hv, 1, 1)
            gs.tables.append(table)
            entries = bytearray(PAGE_SIZE)
            for i, hppn in enumerate(hppns):
                idx = (gppn + i) & 0x3FF
                entries[4 * idx : 4 * idx + 4] = _pte(hppn, LEAF)
            host.phys_write(table, bytes(entries))
            host.phys_write(slot, _pte(table >> PAGE_SHIFT, PTE_V))  # a pointer: V only (Priv 4.3.1)
            gs.pages += count
    except BaseException:
        free_gstage(gs, hv, vm)
        raise
    return gs


def map_guest_page(gs: GStage, vm: VirtualMachine, hv: Any, gpa: int) -> bool:
    """Map the guest RAM page holding ``gpa`` (a lazy G-stage's fault path): its host frame comes
    from ``vm.guest_memory`` (in hosted mode the VMM process's page fault, charged to its cgroup),
    and a level-0 table is added under the root slot when there is none. False when ``gpa`` is not
    guest RAM or the page is already mapped (the fault has another cause)."""
    if not vm.ram_base <= gpa < vm.ram_base + vm.ram_size:
        return False
    host = vm.host
    gppn = gpa >> PAGE_SHIFT
    slot = gs.root + 4 * (gppn >> 10)
    ptr = int.from_bytes(host.phys_read(slot, 4), "little")
    if ptr & PTE_V and ptr & (PTE_R | PTE_W | PTE_X):
        return False  # a megapage leaf: mapped already
    if not ptr & PTE_V:
        table = _alloc(hv, 1, 1)
        gs.tables.append(table)
        host.phys_write(table, bytes(PAGE_SIZE))
        host.phys_write(slot, _pte(table >> PAGE_SHIFT, PTE_V))
    else:
        table = (ptr >> 10) << PAGE_SHIFT
    entry = table + 4 * (gppn & 0x3FF)
    if int.from_bytes(host.phys_read(entry, 4), "little") & PTE_V:
        return False
    hppn = vm.guest_memory.hppn(gppn)
    host.phys_write(entry, _pte(hppn, LEAF))
    gs.pages += 1
    return True


def free_gstage(gs: GStage, hv: Any, vm: VirtualMachine) -> None:
    """Scrub and return the G-stage's frames to the pool."""
    host = vm.host
    for table in gs.tables:
        host.phys_write(table, bytes(PAGE_SIZE))
        _free(hv, table, 1)
    gs.tables.clear()
    host.phys_write(gs.root, bytes(ROOT_PAGES * PAGE_SIZE))
    _free(hv, gs.root, ROOT_PAGES)
