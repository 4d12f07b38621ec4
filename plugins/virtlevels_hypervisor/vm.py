"""A virtual machine is a Machine: vCPUs, guest-physical RAM carved from the host, virtual devices.

DESIGN.md "Machine protocol": a :class:`VirtualMachine` offers what a
:class:`~virtlevels.machine.machine.PhysicalMachine` offers (it *is* one, structurally: harts, a bus
with RAM and MMIO devices, a cost model, the World's clock), so a kernel — teachos, the Python
kernel, or another hypervisor — runs on it unchanged (Popek-Goldberg Theorem 2 needs exactly this).

What differs is *who executes the harts*. The vCPUs (:class:`VCpu`) hold the guest's architectural
state — registers, pc, privilege, every CSR including the virtual M-mode ones — whenever the VM is
not inside :meth:`run`/:meth:`run_hart`; the VM's :class:`~.techniques.base.Technique` decides how
guest instructions are executed: interpreted on that virtual state (full emulation), or run on a
host hart, deprivileged or in VS-mode, with exits into the VMM that emulate on the vCPU state.

Guest RAM is :class:`GuestMemory`: guest-physical pages that *are* host pages of the VM's
allocation (the same page objects), so a store by the guest on a host hart and a load through the
VM's bus see one byte. An address outside the allocation is not RAM on the VM's bus: the guest gets
an access fault, never host memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.errors import VirtlevelsError
from virtlevels.machine.hart import Hart
from virtlevels.machine.machine import PhysicalMachine, RunResult
from virtlevels.machine.memory import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, Page, PhysicalMemory
from virtlevels_hypervisor.costs import hv_cost

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels.machine.image import Image
    from virtlevels.machine.protocol import Machine
    from virtlevels_hypervisor.techniques.base import Technique

#: Cycle categories a VM's work is reported in (issue 5 item 7).
CATEGORIES = ("guest_user", "guest_kernel", "hypervisor", "emulation", "translation", "world_switch")


class GuestAccessError(VirtlevelsError):
    """A guest-physical address outside the VM's allocation (a VMM bug or a bad request, never a
    guest fault: guests get access faults from the bus instead)."""


@attrs.define(eq=False)
class GuestMemory(PhysicalMemory):
    """Guest-physical RAM ``[base_ppn, base_ppn + npages)`` whose pages are the host's.

    ``hppn_of(i)`` gives the host page number of the i-th guest page (contiguous in native mode, the
    VMM process's frames in hosted mode); ``host`` is the host's memory (a PhysicalMemory, or a VM's
    GuestMemory when nested). ``host_write`` routes VMM writes through the host's port so its
    watchers (translated code, LR reservations) see them.
    """

    host: PhysicalMemory = attrs.field(kw_only=True)
    base_ppn: int = attrs.field(kw_only=True)
    npages: int = attrs.field(kw_only=True)
    hppn_of: Callable[[int], int] = attrs.field(kw_only=True)
    host_write: Callable[[int, bytes], None] | None = attrs.field(default=None, kw_only=True)

    def hppn(self, ppn: int) -> int:
        i = ppn - self.base_ppn
        if not 0 <= i < self.npages:
            raise GuestAccessError(f"guest-physical page 0x{ppn << PAGE_SHIFT:08x} is outside the VM's RAM")
        return self.hppn_of(i)

    def page(self, ppn: int) -> Page:
        return self.host.page(self.hppn(ppn))

    def read_bytes(self, paddr: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            off = paddr & PAGE_MASK
            chunk = min(n, PAGE_SIZE - off)
            out += self.host.read_bytes((self.hppn(paddr >> PAGE_SHIFT) << PAGE_SHIFT) | off, chunk)
            paddr += chunk
            n -= chunk
        return bytes(out)

    def write_bytes(self, paddr: int, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n:
            off = paddr & PAGE_MASK
            chunk = min(n - pos, PAGE_SIZE - off)
            hpa = (self.hppn(paddr >> PAGE_SHIFT) << PAGE_SHIFT) | off
            if self.host_write is not None:
                self.host_write(hpa, bytes(data[pos : pos + chunk]))
            else:
                self.host.write_bytes(hpa, data[pos : pos + chunk])
            paddr += chunk
            pos += chunk

    @property
    def touched_bytes(self) -> int:
        pages = self.host.pages
        return sum(PAGE_SIZE for i in range(self.npages) if self.hppn_of(i) in pages)

    def snapshot(self) -> dict[int, bytes]:
        """Every guest page the host has touched, by guest page number (byte-exact)."""
        pages = self.host.pages
        out: dict[int, bytes] = {}
        for i in range(self.npages):
            p = pages.get(self.hppn_of(i))
            if p is not None:
                out[self.base_ppn + i] = bytes(p[0])
        return out

    def restore(self, pages: dict[int, bytes]) -> None:
        # In place: the host's page objects stay the same, so nothing that caches them goes stale;
        # pages absent from the snapshot become zero again. Changed pages are written through the
        # host's port, so its watchers (translated code, LR reservations) see the change.
        present = {int(k): v for k, v in pages.items()}
        hpages = self.host.pages
        zero = bytes(PAGE_SIZE)
        for i in range(self.npages):
            gppn = self.base_ppn + i
            data = present.get(gppn)
            hp = hpages.get(self.hppn_of(i))
            if data is None and hp is None:
                continue
            want = zero if data is None else bytes(data)
            if hp is not None and hp[0] == want:
                continue
            hpa = self.hppn_of(i) << PAGE_SHIFT
            if self.host_write is not None:
                self.host_write(hpa, want)
            else:
                self.host.page(self.hppn_of(i))[0][:] = want


@attrs.define
class VmStats:
    """Efficiency figures (issue 5 item 7): what ran directly, what the VMM did, and where cycles went."""

    direct_instructions: int = 0
    emulated_instructions: int = 0
    translated_instructions: int = 0
    callouts: int = 0
    hypercalls: int = 0
    shadow_updates: int = 0
    exits: Counter[str] = attrs.field(factory=Counter)
    cycles: Counter[str] = attrs.field(factory=Counter)

    def guest_instructions(self) -> int:
        return self.direct_instructions + self.emulated_instructions + self.translated_instructions

    def direct_fraction(self) -> float:
        total = self.guest_instructions()
        return self.direct_instructions / total if total else 0.0

    def state(self) -> dict[str, Any]:
        """The counters as plain data (for snapshots; :meth:`load_state` reads it back)."""
        out: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in attrs.fields(VmStats) if f.name not in ("exits", "cycles")
        }
        out["exits"] = dict(sorted(self.exits.items()))
        out["cycles"] = dict(sorted(self.cycles.items()))
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        for f in attrs.fields(VmStats):
            if f.name not in ("exits", "cycles"):
                setattr(self, f.name, int(state[f.name]))
        self.exits = Counter({str(k): int(v) for k, v in state["exits"].items()})
        self.cycles = Counter({str(k): int(v) for k, v in state["cycles"].items()})

    def to_dict(self) -> dict[str, Any]:
        return {
            "guest_instructions": self.guest_instructions(),
            "direct_instructions": self.direct_instructions,
            "direct_fraction": round(self.direct_fraction(), 6),
            "emulated_instructions": self.emulated_instructions,
            "translated_instructions": self.translated_instructions,
            "callouts": self.callouts,
            "hypercalls": self.hypercalls,
            "shadow_updates": self.shadow_updates,
            "exits": dict(sorted(self.exits.items())),
            "exits_total": sum(self.exits.values()),
            "cycles_by_category": {k: self.cycles.get(k, 0) for k in CATEGORIES},
        }


@attrs.define(eq=False)
class VCpu(Hart):
    """A virtual CPU: a hart whose state is the guest's and whose machine is the VM."""

    def execute(self, word: int, pc: int | None = None) -> None:
        """An instruction executed by guest software written in Python (the Python kernel as a
        guest, a nested VMM): the technique charges what running it deprivileged would cost."""
        vm = self.machine
        tech = getattr(vm, "technique", None)
        if tech is not None:
            tech.charge_guest_execute(vm, self, word)
        Hart.execute(self, word, pc)

    def emulate(self, word: int, pc: int | None = None) -> None:
        """The VMM emulating one guest instruction on this virtual state (no extra charge)."""
        Hart.execute(self, word, pc)


@attrs.define(eq=False)
class VirtualMachine(PhysicalMachine):
    """A VM made by a :class:`~virtlevels_hypervisor.hypervisor.Hypervisor` on its ``host`` Machine.

    Build it with :meth:`Hypervisor.create_vm`, which allocates ``ram_size`` bytes of host RAM and
    passes ``hppn_of``; the VM's RAM is at the usual ``ram_base`` (0x8000_0000) in guest-physical
    space.
    """

    host: Any = attrs.field(default=None, kw_only=True)  # the Machine it runs on
    hv: Any = attrs.field(default=None, kw_only=True)  # the Hypervisor that made it
    technique: Any = attrs.field(default=None, kw_only=True)
    mode: str = attrs.field(default="native", kw_only=True)
    hppn_of: Callable[[int], int] | None = attrs.field(default=None, kw_only=True)
    vstats: VmStats = attrs.field(factory=VmStats, init=False)
    guest_image: Any = attrs.field(default=None, init=False)
    #: Per-vCPU guest timer deadline in mtime ticks (SBI set_timer), None when disarmed.
    timer_deadline: list[int | None] = attrs.field(factory=list, init=False)
    #: The SBI firmware's per-hart HSM state: ids of the STOPPED vCPUs (SBI 2.0 ch. 9).
    hsm_stopped: set[int] = attrs.field(factory=set, init=False)

    hart_class = VCpu

    def __attrs_post_init__(self) -> None:
        if self.host is None or self.hppn_of is None:
            raise VirtlevelsError("a VirtualMachine is made by a Hypervisor (Hypervisor.create_vm)")
        super().__attrs_post_init__()
        self.events = self.host.events  # one clock: the VM's devices schedule on the host's queue
        host_mem = self.host.bus.memory
        self.bus.memory = GuestMemory(
            host=host_mem,
            base_ppn=self.ram_base >> PAGE_SHIFT,
            npages=self.ram_size >> PAGE_SHIFT,
            hppn_of=self.hppn_of,
            host_write=self.host.phys_write,
        )
        self.timer_deadline = [None] * self.num_harts

    def _register_graph(self) -> None:
        world = self.world
        if world is None:
            return
        graph = world.graph
        self.node_id = world.new_id("vm")
        graph.add(self.node_id, "vm", name=self.name, vcpus=self.num_harts, ram=self.ram_size, mode=self.mode)
        for hart in self.harts:
            hid = world.new_id("vcpu", parent=self.node_id)
            graph.add(hid, "vcpu", index=hart.id)
            graph.link(hid, self.node_id, "part_of")
        host_node = getattr(self.host, "node_id", None)
        if host_node is not None and host_node in graph.g:
            graph.link(self.node_id, host_node, "runs_on")

    # -- the Machine protocol: running goes through the technique ----------------------------------
    @property
    def tech(self) -> Technique:
        if self.technique is None:
            raise VirtlevelsError(f"VM {self.name!r} has no technique")
        return self.technique  # type: ignore[no-any-return]

    def run(self, max_instructions: int | None = None, engine: str = "interp") -> RunResult:
        """Run the guest until it exits, ``max_instructions`` guest instructions ran, or it waits forever."""
        return self.tech.run(self, max_instructions, engine)

    def run_hart(self, hart: Hart, max_cycles: int, engine: str = "interp") -> int:
        return self.tech.run_hart(self, hart, max_cycles, engine)

    def load(self, image: Image) -> None:
        """Boot ``image`` the way the technique boots guests (see Technique.load)."""
        self.guest_image = image
        self.tech.load(self, image)

    def load_raw(self, image: Image) -> None:
        """PhysicalMachine.load: place every segment in guest RAM and point the vCPUs at the entry."""
        PhysicalMachine.load(self, image)

    # -- VMM services ---------------------------------------------------------------------------
    @property
    def guest_memory(self) -> GuestMemory:
        mem = self.bus.memory
        assert isinstance(mem, GuestMemory)
        return mem

    def gpa_to_hpa(self, gpa: int) -> int:
        """The host-physical address of guest-physical ``gpa`` (GuestAccessError outside the RAM)."""
        return self.guest_memory.hppn(gpa >> PAGE_SHIFT) << PAGE_SHIFT | (gpa & PAGE_MASK)

    def hv_cost(self, key: str) -> int:
        return hv_cost(self.cost, key)

    def charge(self, category: str, cycles: int) -> None:  # type: ignore[override]
        """Account VMM work: in the VM's breakdown and on the clock of the host hart doing it."""
        self.vstats.cycles[category] += cycles
        host_hart = getattr(self.host, "running_hart", None)
        if host_hart is not None:
            host_hart.charge(f"vmm_{category}", cycles)
        else:
            self.host.charge(f"vmm_{category}", cycles)

    def set_guest_timer(self, vcpu: Hart, deadline: int | None) -> None:
        """SBI set_timer (SBI 2.0 ch. 6): arm the vCPU's virtual timer; clears the pending STIP."""
        from virtlevels.machine.csr import STIP

        self.timer_deadline[vcpu.id] = deadline
        vcpu.set_irq(STIP, False)

    def update_guest_timer(self, vcpu: Hart) -> bool:
        """Raise the vCPU's virtual STIP if its deadline has passed; True when it is pending."""
        from virtlevels.machine.csr import STIP

        deadline = self.timer_deadline[vcpu.id]
        if deadline is not None and self.mtime() >= deadline:
            self.timer_deadline[vcpu.id] = None
            vcpu.set_irq(STIP, True)
        return bool(vcpu.csr.mip_hw & STIP)

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["vm"] = self.vstats.to_dict()
        out["technique"] = getattr(self.technique, "name", None)
        out["mode"] = self.mode
        return out

    def snapshot(self) -> dict[str, Any]:
        state = super().snapshot()
        state["vm"] = {
            "technique": getattr(self.technique, "name", None),
            "timer_deadline": list(self.timer_deadline),
            "hsm_stopped": sorted(self.hsm_stopped),
        }
        tech_snap = getattr(self.technique, "snapshot", None)
        if tech_snap is not None:
            state["vm"]["technique_state"] = tech_snap(self)
        return state

    def restore(self, state: dict[str, Any]) -> None:
        events = self.events
        super().restore(state)
        self.events = events  # the VM keeps the host's clock (which never runs backwards)
        vm_state = state.get("vm", {})
        self.timer_deadline = list(vm_state.get("timer_deadline", [None] * self.num_harts))
        self.hsm_stopped = {int(i) for i in vm_state.get("hsm_stopped", ())}
        tech_restore = getattr(self.technique, "restore", None)
        if tech_restore is not None:
            tech_restore(self, vm_state.get("technique_state"))


def is_vm(machine: Machine | Any) -> bool:
    return isinstance(machine, VirtualMachine)
