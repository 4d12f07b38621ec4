"""The hypervisor: it owns a host Machine's RAM, makes VMs from it and schedules their vCPUs.

In native mode (Type 1, ESXi/Hyper-V) the hypervisor owns the physical machine: it keeps the low
``reserved`` bytes of RAM for itself and hands out the rest from a :class:`FramePool` — one
contiguous block per VM's RAM (so the H extension's G-stage can map it with megapages) and single
frames for its own structures (shadow page tables, G-stage tables, the translation cache). The
host may itself be a VirtualMachine: a hypervisor inside a VM (Popek-Goldberg Theorem 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.errors import ConfigError, VirtlevelsError
from virtlevels.machine.devices.finisher import TestFinisher
from virtlevels.machine.devices.plic import Plic
from virtlevels.machine.devices.uart import Uart16550
from virtlevels.machine.memmap import BLOCK_BASE, PLIC_BASE, TEST_FINISHER_BASE, UART_BASE
from virtlevels.machine.memory import PAGE_SHIFT, PAGE_SIZE
from virtlevels_hypervisor.vm import VirtualMachine

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels.world import World

MIB = 1 << 20


class OutOfHostMemory(VirtlevelsError):
    """The hypervisor's frame pool cannot satisfy an allocation (resource control: no overcommit)."""


@attrs.define
class FramePool:
    """First-fit allocator of host page frames in ``[base, base + size)``."""

    base: int
    size: int
    #: Free runs as (first ppn, count), sorted by ppn.
    free: list[tuple[int, int]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if self.base % PAGE_SIZE or self.size % PAGE_SIZE or self.size <= 0:
            raise ConfigError(f"frame pool 0x{self.base:x}+0x{self.size:x} is not page-aligned or is empty")
        self.free = [(self.base >> PAGE_SHIFT, self.size >> PAGE_SHIFT)]

    @property
    def free_bytes(self) -> int:
        return sum(n for _p, n in self.free) * PAGE_SIZE

    def alloc(self, npages: int, align_pages: int = 1) -> int:
        """The first ppn of ``npages`` contiguous free frames aligned to ``align_pages``."""
        for i, (start, count) in enumerate(self.free):
            first = -(-start // align_pages) * align_pages
            if first + npages <= start + count:
                pieces = []
                if first > start:
                    pieces.append((start, first - start))
                if first + npages < start + count:
                    pieces.append((first + npages, start + count - first - npages))
                self.free[i : i + 1] = pieces
                return first
        raise OutOfHostMemory(
            f"no {npages} contiguous free host pages (aligned to {align_pages}); {self.free_bytes} bytes free"
        )

    def release(self, ppn: int, npages: int) -> None:
        runs = sorted([*self.free, (ppn, npages)])
        merged: list[tuple[int, int]] = []
        for start, count in runs:
            if merged and merged[-1][0] + merged[-1][1] > start:
                raise VirtlevelsError(f"double free of host pages at ppn 0x{ppn:x}")
            if merged and merged[-1][0] + merged[-1][1] == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + count)
            else:
                merged.append((start, count))
        self.free = merged


@attrs.define(eq=False)
class Hypervisor:
    """A hypervisor on ``host`` (a PhysicalMachine or a VirtualMachine)."""

    host: Any
    world: World | None = None
    mode: str = "native"
    reserved: int = 1 * MIB  # low host RAM kept for the hypervisor itself
    name: str = "hypervisor"
    pool: FramePool = attrs.field(init=False)
    vms: list[VirtualMachine] = attrs.field(factory=list, init=False)
    node_id: str | None = attrs.field(default=None, init=False)
    _allocations: dict[int, Callable[[], None]] = attrs.field(factory=dict, init=False)  # id(vm) -> release
    _vmm_frames: list[int] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("native", "hosted"):
            raise ConfigError(f"hypervisor mode must be 'native' or 'hosted', not {self.mode!r}")
        if self.world is None:
            self.world = getattr(self.host, "world", None)
        base, size = self.host.ram_base, self.host.ram_size
        if size <= self.reserved:
            raise ConfigError(f"host RAM ({size} bytes) is not larger than the hypervisor's reserve")
        self.pool = FramePool(base + self.reserved, size - self.reserved)
        world = self.world
        if world is not None:
            self.node_id = world.new_id("hypervisor")
            world.graph.add(self.node_id, "hypervisor", name=self.name, mode=self.mode)
            host_node = getattr(self.host, "node_id", None)
            if host_node is not None and host_node in world.graph.g:
                world.graph.link(self.node_id, host_node, "runs_on")

    # -- VMs ------------------------------------------------------------------------------------
    def create_vm(
        self,
        technique: str | Any = "emulate",
        *,
        ram_size: int = 16 * MIB,
        vcpus: int = 1,
        name: str | None = None,
        profile: Any = None,
        isa_extensions: tuple[str, ...] = (),
        disk: Any = None,
        uart_echo: Any = None,
    ) -> VirtualMachine:
        """A VM with ``ram_size`` bytes of this host's RAM, ``vcpus`` vCPUs and the virtual devices
        (CLINT, PLIC, UART, test finisher, a block device when ``disk`` is given).

        Nothing is left behind when it fails: the allocation is returned to the pool."""
        from virtlevels_hypervisor.techniques import make_technique

        if ram_size <= 0 or ram_size % (4 * MIB):
            raise ConfigError(f"VM RAM must be a positive multiple of 4 MiB, got {ram_size}")
        if vcpus < 1:
            raise ConfigError(f"a VM needs at least one vCPU, got {vcpus}")
        tech = make_technique(technique) if isinstance(technique, str) else technique
        npages = ram_size >> PAGE_SHIFT
        hppn_of, release = self._allocate_ram(npages)
        vm: VirtualMachine | None = None
        try:
            vm = VirtualMachine(
                num_harts=vcpus,
                ram_size=ram_size,
                profile=profile if profile is not None else self.host.cost,
                world=self.world,
                isa_extensions=isa_extensions or tuple(getattr(self.host, "isa_extensions", ())),
                name=name or f"vm{len(self.vms)}",
                host=self.host,
                hv=self,
                technique=tech,
                mode=self.mode,
                hppn_of=hppn_of,
            )
            vm.add_device(PLIC_BASE, Plic(num_harts=vcpus))
            vm.add_device(UART_BASE, Uart16550(echo=uart_echo))
            vm.add_device(TEST_FINISHER_BASE, TestFinisher())
            if disk is not None:
                from virtlevels.machine.devices.block import BlockDevice

                vm.add_device(BLOCK_BASE, BlockDevice(backing=disk))
            tech.attach(vm)
        except BaseException:
            release()
            if self.world is not None and vm is not None:
                drop_machine_nodes(self.world, vm)
            raise
        self._allocations[id(vm)] = release
        self.vms.append(vm)
        # VM creation is VMM work done before the guest's first instruction (costs.py "vm_create"):
        # it shows in the new VM's own breakdown (vCPU 0, category "vm_create") so a start-up
        # measurement over the VM's work includes it; the guest's clock still starts at 0.
        vm.harts[0].charge("vm_create", vm.hv_cost("vm_create"))
        if self.world is not None and vm.node_id is not None:
            mid = self.world.new_id("memory", parent=vm.node_id)
            self.world.graph.add(mid, "memory", size=ram_size, owner=vm.name)
            self.world.graph.link(mid, vm.node_id, "part_of")
            host_mem = _host_memory_node(self.world, self.host)
            if host_mem is not None:
                self.world.graph.link(mid, host_mem, "allocated_from")
            if self.node_id is not None:
                self.world.graph.link(vm.node_id, self.node_id, "runs_on")
        return vm

    def destroy_vm(self, vm: VirtualMachine) -> None:
        """Free the VM's RAM (scrubbed: the next VM reads zeros) and its graph nodes."""
        release = self._allocations.pop(id(vm), None)
        if release is None:
            raise VirtlevelsError(f"VM {vm.name!r} does not belong to this hypervisor")
        vm.technique.detach(vm)
        release()
        self.vms.remove(vm)
        if self.world is not None:
            drop_machine_nodes(self.world, vm)

    def _allocate_ram(self, npages: int) -> tuple[Callable[[int], int], Callable[[], None]]:
        """Host frames for ``npages`` of guest RAM: (guest page index -> host ppn, release).

        Native mode: one contiguous, 4 MiB-aligned block of the pool (G-stage megapages), zeroed
        first so a new VM never sees what an old one left."""
        first = self.pool.alloc(npages, align_pages=(4 * MIB) >> PAGE_SHIFT)
        mem = self.host.bus.memory
        for ppn in range(first, first + npages):
            p = mem.pages.get(ppn)
            if p is not None:
                p[0][:] = bytes(PAGE_SIZE)

        def release() -> None:
            for ppn in range(first, first + npages):
                page = mem.pages.get(ppn)
                if page is not None:
                    page[0][:] = bytes(PAGE_SIZE)
            self.pool.release(first, npages)

        return _contiguous(first), release

    def close(self) -> None:
        """Destroy every VM and remove the hypervisor's graph node (the host machine stays)."""
        for vm in list(self.vms):
            self.destroy_vm(vm)
        world = self.world
        if world is not None and self.node_id is not None and self.node_id in world.graph.g:
            world.graph.remove(self.node_id)

    # -- frames for the VMM's own structures ----------------------------------------------------
    def alloc_frame(self) -> int:
        """One zeroed host frame (its physical address) for the VMM's own data."""
        ppn = self.pool.alloc(1)
        self._vmm_frames.append(ppn)
        self.host.phys_write(ppn << PAGE_SHIFT, bytes(PAGE_SIZE))
        return ppn << PAGE_SHIFT

    def free_frame(self, paddr: int) -> None:
        ppn = paddr >> PAGE_SHIFT
        self._vmm_frames.remove(ppn)
        self.pool.release(ppn, 1)


def _contiguous(first: int) -> Callable[[int], int]:
    def hppn_of(i: int) -> int:
        return first + i

    return hppn_of


def _host_memory_node(world: World, host: Any) -> str | None:
    node = getattr(host, "node_id", None)
    if node is None:
        return None
    for pred in world.graph.g.predecessors(node):
        if world.graph.g.nodes[pred].get("kind") == "memory":
            return str(pred)
    return None


def drop_machine_nodes(world: World, machine: Any) -> None:
    """Remove a machine's (or VM's) graph node with its harts/vCPUs, memory and devices."""
    node = getattr(machine, "node_id", None)
    if node is None or node not in world.graph.g:
        return
    g = world.graph.g
    kinds = ("hart", "vcpu", "memory", "device")
    doomed = [n for n in g.predecessors(node) if g.nodes[n].get("kind") in kinds]
    for n in [*doomed, node]:
        if n in world.graph.g:
            world.graph.remove(n)
