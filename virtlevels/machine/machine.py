"""The physical machine: harts, sparse RAM, a bus of MMIO devices, a cost model and a clock.

Time. The machine clock is its event queue's clock (the World's, or its own when standalone),
in cycles. Harts run in rounds: each hart in turn runs one quantum (``cost.quantum`` steps) from
the round's start time, its own clock advancing by the cycles its work costs; the round ends at
the latest hart's clock, and events due by then (timer interrupts, device completions) run
before the next round. When every hart waits in WFI the clock jumps to the next event (counted
as ``idle``); with no event left, the run ends as ``wfi-deadlock``. The order is fixed, so the
same program and inputs give the same cycles every time.

Exit. A device (HTIF, test finisher) calls ``request_exit(code)``; the storing instruction
retires and the run ends with status ``pass`` (code 0) or ``fail``. ``max_instructions``
bounds the steps (retired instructions plus exceptions taken) and ends with ``limit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs

from virtlevels.cost import CostModel, load_profile
from virtlevels.errors import ConfigError
from virtlevels.events import EventQueue
from virtlevels.machine.bus import Bus
from virtlevels.machine.hart import PRIV_NAMES, Hart
from virtlevels.machine.image import Image
from virtlevels.machine.isa.table import HYPERVISOR_PROFILE, InstructionTable
from virtlevels.machine.memmap import CLINT_BASE, NATIVE_BASE, NATIVE_SIZE, RAM_BASE, RAM_SIZE_DEFAULT
from virtlevels.machine.memory import PAGE_SHIFT, PhysicalMemory
from virtlevels.machine.mmu import Mmu
from virtlevels.machine.trap import YieldToHost

if TYPE_CHECKING:
    from virtlevels.machine.engines import Engine
    from virtlevels.world import World

RUN_STATUSES = ("pass", "fail", "limit", "halt", "wfi-deadlock")


class Tracer(Protocol):
    """Set ``machine.tracer`` to watch execution (``--trace``); the interpreter then steps one at a time."""

    def instruction(self, hart: Hart, pc: int, word: int) -> None:
        """Called before each instruction is executed."""

    def trap(
        self, hart: Hart, cause: int, tval: int, epc: int, from_priv: int, to_priv: int, interrupt: bool
    ) -> None:
        """Called after trap entry wrote the trap CSRs."""


@attrs.frozen
class RunResult:
    """What one call of :meth:`PhysicalMachine.run` did (counts are for this call)."""

    status: str  # one of RUN_STATUSES
    exit_code: int | None
    instructions: int
    cycles: int
    cycles_by_category: dict[str, int] = attrs.field(hash=False)
    instructions_by_class: dict[str, int] = attrs.field(hash=False)
    traps: dict[str, int] = attrs.field(hash=False)
    uart: str = ""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define(eq=False)
class MachineHost:
    """The :class:`~virtlevels.machine.bus.DeviceHost` (and InterruptHost, DmaHost) a device gets."""

    machine: PhysicalMachine
    device: str

    def now(self) -> int:
        return self.machine.current_time()

    def raise_irq(self, line: int, level: bool) -> None:
        router = self.machine.irq_router
        if router is not None:
            router(line, level)

    def request_exit(self, code: int) -> None:
        self.machine.request_exit(code)

    def charge(self, category: str, cycles: int) -> None:
        self.machine.charge(category, cycles)

    def schedule(self, delay_cycles: int, callback: Callable[[], None]) -> object:
        m = self.machine
        if m.running_hart is not None:
            m.quantum_break = True  # the running slice was sized without this event: end it early
        return m.events.schedule(max(m.current_time() + max(0, delay_cycles), m.events.now), callback)

    def cancel(self, handle: object) -> None:
        """Take back an event ``schedule`` returned (a re-armed timer's old deadline)."""
        from virtlevels.events import EventHandle

        if isinstance(handle, EventHandle):
            self.machine.events.cancel(handle)

    @property
    def hart_count(self) -> int:
        return len(self.machine.harts)

    @property
    def cost(self) -> CostModel:
        return self.machine.cost

    def set_hart_interrupt(self, hart_id: int, bit: int, level: bool) -> None:
        self.machine.harts[hart_id].set_irq(1 << bit, level)

    def dma_read(self, paddr: int, n: int) -> bytes:
        bus = self.machine.bus
        if n and not bus.is_plain_ram(paddr, n):
            from virtlevels.machine.devices.dma import DmaFault

            raise DmaFault(f"DMA read of {n} bytes at 0x{paddr:x} is not RAM")
        return bus.memory.read_bytes(paddr, n)

    def dma_write(self, paddr: int, data: bytes) -> None:
        m = self.machine
        if data and not m.bus.is_plain_ram(paddr, len(data)):
            from virtlevels.machine.devices.dma import DmaFault

            raise DmaFault(f"DMA write of {len(data)} bytes at 0x{paddr:x} is not RAM")
        for ppn in range(paddr >> PAGE_SHIFT, ((paddr + max(1, len(data)) - 1) >> PAGE_SHIFT) + 1):
            if ppn in m.watched_pages:
                m.store_observed(None, max(paddr, ppn << PAGE_SHIFT), len(data))
        m.bus.memory.write_bytes(paddr, data)


@attrs.define(eq=False)
class PhysicalMachine:
    """A RISC-V RV32IMA machine with M, S and U modes (QEMU virt-like memory map)."""

    num_harts: int = 1
    ram_size: int = RAM_SIZE_DEFAULT
    profile: CostModel | str = "default"  # a CostModel, a profile name, or a path to a TOML profile
    world: World | None = None
    table: InstructionTable = attrs.field(factory=InstructionTable)
    hypervisor: bool = False  # the H extension (misa.H): the rv32imah instruction profile
    ram_base: int = RAM_BASE
    with_clint: bool = True
    svadu: bool = True
    isa_extensions: tuple[str, ...] = ()  # names registered through virtlevels_register_isa_extensions
    name: str = "machine"

    cost: CostModel = attrs.field(init=False)
    bus: Bus = attrs.field(init=False)
    harts: list[Hart] = attrs.field(init=False)
    events: EventQueue = attrs.field(init=False)
    devices: dict[str, tuple[int, Any]] = attrs.field(factory=dict, init=False)
    node_id: str | None = attrs.field(default=None, init=False)
    exit_requested: bool = attrs.field(default=False, init=False)
    quantum_break: bool = attrs.field(default=False, init=False)  # end the running slice after this store
    exit_code: int | None = attrs.field(default=None, init=False)
    halt_requested: bool = attrs.field(default=False, init=False)
    watched_pages: dict[int, int] = attrs.field(factory=dict, init=False)  # ppn -> watchers
    store_watchers: list[Callable[[Hart | None, int, int], None]] = attrs.field(factory=list, init=False)
    fence_i_hook: Callable[[Hart], None] | None = attrs.field(default=None, init=False)
    tracer: Tracer | None = attrs.field(default=None, init=False)
    irq_router: Callable[[int, bool], None] | None = attrs.field(default=None, init=False)
    running_hart: Hart | None = attrs.field(default=None, init=False)
    current_hart: Hart | None = attrs.field(default=None, init=False)
    idle_cycles: int = attrs.field(default=0, init=False)
    machine_charges: dict[str, int] = attrs.field(factory=dict, init=False)
    clint: Any = attrs.field(default=None, init=False)
    #: Native code entries: trap-vector address -> Python handler (see add_native_entry).
    native_entries: dict[int, Callable[[Hart], None]] = attrs.field(factory=dict, init=False)
    _engines: dict[str, Engine] = attrs.field(factory=dict, init=False)
    #: The class of the harts (a VirtualMachine's are vCPUs, a Hart subclass).
    hart_class: ClassVar[type[Hart]] = Hart
    _trap_observer: Callable[..., None] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.hypervisor and not self.table.hypervisor:
            self.table = InstructionTable(profile=HYPERVISOR_PROFILE)
        if self.num_harts < 1:
            raise ConfigError(f"a machine needs at least one hart, got {self.num_harts}")
        if isinstance(self.profile, CostModel):
            self.cost = self.profile
        else:
            extra = self.world.registry.cost_profiles if self.world is not None else None
            self.cost = load_profile(self.profile, extra)
        self.events = self.world.events if self.world is not None else EventQueue()
        self.bus = Bus(PhysicalMemory())
        self.bus.add_ram(self.ram_base, self.ram_size)
        if self.world is not None:
            self._trap_observer = self.world.observer("trap")
        self._apply_isa_extensions()
        costs = [self.cost.instruction_cost(c) for c in self.table.classes]
        self.harts = []
        for i in range(self.num_harts):
            mmu = Mmu(self.bus, capacity=self.cost.tlb_entries, svadu=self.svadu)
            hart = self.hart_class(i, self, mmu, list(costs), trap_observer=self._trap_observer)
            self.harts.append(hart)
        self._register_graph()
        if self.with_clint:
            from virtlevels.machine.devices.clint import Clint

            self.clint = Clint(harts=self.num_harts, timebase_divisor=self.cost.timebase_divisor)
            self.add_device(CLINT_BASE, self.clint)

    def _apply_isa_extensions(self) -> None:
        if not self.isa_extensions:
            return
        if self.world is None:
            raise ConfigError("ISA extensions are found through a World's plugins: pass world=")
        known = self.world.registry.isa_extensions
        for name in self.isa_extensions:
            ext = known.get(name)
            if ext is None:
                registered = ", ".join(sorted(known)) or "none"
                raise ConfigError(f"unknown ISA extension {name!r} (registered: {registered})")
            ext.apply(self.table)
            if ext.profile:
                self.table.profile = name

    # -- wiring -------------------------------------------------------------------------------
    @property
    def memory(self) -> PhysicalMemory:
        return self.bus.memory

    @property
    def now(self) -> int:
        return self.events.now

    def _register_graph(self) -> None:
        world = self.world
        if world is None:
            return
        graph = world.graph
        self.node_id = world.new_id("machine")
        graph.add(self.node_id, "machine", name=self.name, harts=self.num_harts, profile=self.cost.name)
        for hart in self.harts:
            hid = world.new_id("hart", parent=self.node_id)
            graph.add(hid, "hart", index=hart.id, isa=self.table.profile)
            graph.link(hid, self.node_id, "part_of")
        mid = world.new_id("memory", parent=self.node_id)
        graph.add(mid, "memory", base=self.ram_base, size=self.ram_size)
        graph.link(mid, self.node_id, "part_of")

    def add_device(self, base: int, device: Any) -> Any:
        """Map ``device`` at physical ``base``; it gets a host through ``attach`` if it has one."""
        if device.name in self.devices:
            raise ConfigError(f"a device named {device.name!r} is already attached")
        self.bus.add_device(base, device)
        self.devices[device.name] = (base, device)
        for hart in self.harts:  # the page may have been RAM in someone's fast path
            hart.context_changed()
        attach = getattr(device, "attach", None)
        if attach is not None:
            attach(MachineHost(self, device.name))
        if self.irq_router is None and callable(getattr(device, "set_irq", None)):
            self.irq_router = device.set_irq  # the interrupt controller (PLIC) receives device lines
        if self.world is not None and self.node_id is not None:
            did = self.world.new_id("device", parent=self.node_id)
            self.world.graph.add(did, "device", name=device.name, base=base, size=device.size)
            self.world.graph.link(did, self.node_id, "attached_to")
        return device

    def device(self, name: str) -> Any:
        return self.devices[name][1]

    # -- native code ----------------------------------------------------------------------------
    def add_native_entry(self, addr: int, handler: Callable[[Hart], None]) -> None:
        """Make ``addr`` (in the native region, memmap.NATIVE_BASE..) a trap vector whose code is
        ``handler(hart)``: when trap entry sets pc to ``addr``, the handler runs right after the trap
        CSRs are written. It runs as that privilege's software, so it changes hardware state only
        with :meth:`Hart.execute` (``hart.exec_sret()`` to return); engines continue at ``hart.pc``,
        or the handler raises :class:`~virtlevels.machine.trap.YieldToHost` to give the hart back
        to the host code running it (:meth:`run_hart`)."""
        if not NATIVE_BASE <= addr < NATIVE_BASE + NATIVE_SIZE or addr & 3:
            raise ConfigError(
                f"native entry 0x{addr:08x} is not a word address in the native region "
                f"0x{NATIVE_BASE:08x}-0x{NATIVE_BASE + NATIVE_SIZE - 1:08x}"
            )
        self.native_entries[addr] = handler

    def remove_native_entry(self, addr: int) -> None:
        self.native_entries.pop(addr, None)

    # -- the physical-memory port -------------------------------------------------------------
    # What a kernel's linear map of RAM is: its loads and stores to physical memory (page tables,
    # frames, copies to and from user pages) are plain memory accesses, not privileged state, so
    # they need no instruction to trap. Writes go past the watchers (LR reservations, translated
    # code), as DMA does.
    def phys_read(self, paddr: int, n: int) -> bytes:
        """``n`` bytes of RAM at ``paddr`` (ConfigError if the range is not RAM)."""
        if n and not self.bus.is_plain_ram(paddr, n):
            raise ConfigError(f"physical read of {n} bytes at 0x{paddr:08x} is not RAM")
        return self.bus.memory.read_bytes(paddr, n)

    def phys_write(self, paddr: int, data: bytes) -> None:
        """Write RAM at ``paddr``; stores to watched pages are reported as any store is."""
        n = len(data)
        if n and not self.bus.is_plain_ram(paddr, n):
            raise ConfigError(f"physical write of {n} bytes at 0x{paddr:08x} is not RAM")
        watched = self.watched_pages
        if watched:
            for ppn in range(paddr >> PAGE_SHIFT, ((paddr + max(1, n) - 1) >> PAGE_SHIFT) + 1):
                if ppn in watched:
                    lo = max(paddr, ppn << PAGE_SHIFT)
                    hi = min(paddr + n, (ppn + 1) << PAGE_SHIFT)
                    self.store_observed(None, lo, hi - lo)
        self.bus.memory.write_bytes(paddr, data)

    # -- loading ------------------------------------------------------------------------------
    def load(self, image: Image) -> None:
        """Place ``image`` in RAM and point every hart at its entry (a0 = hartid, as Spike does)."""
        mem = self.bus.memory
        for seg in image.segments:
            end = seg.addr + max(seg.memsize, len(seg.data))
            if end > seg.addr and not self.bus.is_ram(seg.addr, end - seg.addr):
                label = seg.name or f"segment at 0x{seg.addr:08x}"
                raise ConfigError(
                    f"{image.source or 'image'}: {label} (0x{seg.addr:08x}-0x{end:08x}) is outside RAM "
                    f"(0x{self.ram_base:08x}-0x{self.ram_base + self.ram_size:08x})"
                )
            mem.write_bytes(seg.addr, seg.data)
            if seg.memsize > len(seg.data):
                mem.write_bytes(seg.addr + len(seg.data), bytes(seg.memsize - len(seg.data)))
        for hart in self.harts:
            hart.pc = image.entry
            hart.x[10] = hart.id
            hart.x[11] = 0
            hart.context_changed()
        tohost = image.symbol("tohost")
        if tohost is not None and "htif" not in self.devices:
            self._map_htif(tohost, image.symbol("fromhost"))

    def _map_htif(self, tohost: int, fromhost: int | None) -> None:
        try:
            from virtlevels.machine.devices.htif import Htif
        except ImportError:  # pragma: no cover - the devices package is optional at this layer
            return
        offset = 8
        if fromhost is not None and fromhost > tohost and (fromhost - tohost) % 8 == 0:
            offset = fromhost - tohost
        console = None
        for _base, dev in self.devices.values():
            if callable(getattr(dev, "emit", None)):
                console = dev.emit  # HTIF console characters go to the UART's output
                break
        self.add_device(tohost, Htif(console=console, fromhost_offset=offset))

    # -- services for harts and devices -------------------------------------------------------
    def current_time(self) -> int:
        hart = self.running_hart
        return hart.local_time() if hart is not None else self.events.now

    def mtime(self) -> int:
        if self.clint is not None:
            return int(self.clint.mtime)
        return self.current_time() // self.cost.timebase_divisor

    def request_exit(self, code: int) -> None:
        if not self.exit_requested:
            self.exit_requested = True
            self.exit_code = code

    def stop(self) -> None:
        """Ask the run loop to stop at the next quantum boundary (status ``halt``)."""
        self.halt_requested = True

    def charge(self, category: str, cycles: int) -> None:
        hart = self.running_hart
        if hart is not None:
            hart.charge(category, cycles)
        else:
            self.machine_charges[category] = self.machine_charges.get(category, 0) + cycles

    # Pages whose stores must be seen one by one (LR reservations; a translator's code pages).
    def watch_page(self, ppn: int) -> None:
        n = self.watched_pages.get(ppn, 0)
        self.watched_pages[ppn] = n + 1
        if n == 0:
            for hart in self.harts:
                hart.drop_write_caches()

    def unwatch_page(self, ppn: int) -> None:
        n = self.watched_pages.get(ppn, 0)
        if n <= 1:
            self.watched_pages.pop(ppn, None)
        else:
            self.watched_pages[ppn] = n - 1

    def store_observed(self, hart: Hart | None, paddr: int, width: int) -> None:
        """A store to a watched page: break other harts' reservations on it, tell the watchers."""
        for other in self.harts:
            res = other.reservation
            if other is not hart and res is not None and paddr < res + 4 and res < paddr + width:
                self.release(other)  # Unpriv 8.2: another hart's store to the reservation set
        for watcher in self.store_watchers:
            watcher(hart, paddr, width)

    def reserve(self, hart: Hart, paddr: int) -> None:
        self.release(hart)
        hart.reservation = paddr
        self.watch_page(paddr >> PAGE_SHIFT)

    def release(self, hart: Hart) -> None:
        if hart.reservation is not None:
            self.unwatch_page(hart.reservation >> PAGE_SHIFT)
            hart.reservation = None

    # -- running ------------------------------------------------------------------------------
    def engine(self, name: str = "interp") -> Engine:
        eng = self._engines.get(name)
        if eng is None:
            from virtlevels.machine.engines import get_engine

            eng = self._engines[name] = get_engine(name)
        return eng

    def _totals(self) -> tuple[int, dict[str, int], dict[str, int], dict[str, int]]:
        retired = 0
        by_cat: dict[str, int] = dict(self.machine_charges)
        by_cls: dict[str, int] = {}
        traps: dict[str, int] = {}
        for hart in self.harts:
            retired += hart.retired()
            for k, v in hart.cycles_by_category().items():
                by_cat[k] = by_cat.get(k, 0) + v
            for counts in hart.counts_by_priv.values():
                for cls, n in zip(self.table.classes, counts, strict=False):
                    by_cls[cls] = by_cls.get(cls, 0) + n
            for k, v in hart.traps.items():
                traps[k] = traps.get(k, 0) + v
        by_cat["idle"] = by_cat.get("idle", 0) + self.idle_cycles
        return retired, by_cat, by_cls, traps

    def run(self, max_instructions: int | None = None, engine: str = "interp") -> RunResult:
        """Run until a device asks to exit, ``max_instructions`` steps pass, or every hart waits forever."""
        eng = self.engine(engine)
        table_costs = [self.cost.instruction_cost(c) for c in self.table.classes]
        for hart in self.harts:
            if len(hart.class_costs) != len(table_costs):  # the table was extended since creation
                hart.class_costs = list(table_costs)
                for counts in hart.counts_by_priv.values():
                    counts.extend([0] * (len(table_costs) - len(counts)))
        start_now = self.events.now
        retired0, cat0, cls0, traps0 = self._totals()
        self.halt_requested = False
        quantum = self.cost.quantum
        min_cost = max(1, min(table_costs))
        pollers = [d for _b, d in self.devices.values() if callable(getattr(d, "poll_input", None))]
        if len(self.harts) == 1 and not pollers:
            # Quanta exist to interleave harts (and poll input); one hart only needs slices bounded
            # by the next event, as single-vCPU TCG runs until its next deadline.
            quantum *= 64
        remaining = max_instructions
        status = "limit"
        while True:
            if self.exit_requested:
                status = "pass" if self.exit_code == 0 else "fail"
                break
            if self.halt_requested:
                status = "halt"
                break
            if remaining is not None and remaining <= 0:
                status = "limit"
                break
            for dev in pollers:
                dev.poll_input()
            base = self.events.now
            end = base
            ran = False
            # A quantum ends early when an event is due (a timer, a device completion), so large
            # quanta keep interrupts timely, as QEMU's icount mode bounds a slice by the next deadline.
            due = self.events.peek()
            slice_ = quantum if due is None else max(1, min(quantum, (due - base) // min_cost))
            for hart in self.harts:
                if hart.wfi and hart.interrupt_waiting():
                    hart.wfi = False
                if hart.wfi:
                    continue
                budget = slice_ if remaining is None else min(slice_, remaining)
                if budget <= 0:
                    break
                hart.round_base = base
                hart.round_work = hart.work_cycles()
                self.quantum_break = False
                self.running_hart = hart
                try:
                    steps = eng.run(hart, budget)
                except YieldToHost:
                    # A native handler gave the hart back; under run() there is no host scheduler
                    # to take it, so the run stops here (status "halt").
                    steps = 1
                    self.halt_requested = True
                finally:
                    self.running_hart = None
                ran = True
                if remaining is not None:
                    remaining -= steps
                end = max(end, base + hart.work_cycles() - hart.round_work)
                if self.exit_requested:
                    break
            if ran:
                self.events.run(until=end)
                continue
            nxt = self.events.peek()
            if nxt is None:
                status = "wfi-deadlock"
                break
            self.idle_cycles += max(0, nxt - self.events.now)  # every hart waits: skip to the next event
            self.events.run(until=nxt)
        retired1, cat1, cls1, traps1 = self._totals()
        return RunResult(
            status=status,
            exit_code=self.exit_code if status in ("pass", "fail") else None,
            instructions=retired1 - retired0,
            cycles=self.events.now - start_now,
            cycles_by_category={k: v - cat0.get(k, 0) for k, v in cat1.items() if v - cat0.get(k, 0)},
            instructions_by_class={k: v - cls0.get(k, 0) for k, v in cls1.items() if v - cls0.get(k, 0)},
            traps={k: v - traps0.get(k, 0) for k, v in traps1.items() if v - traps0.get(k, 0)},
            uart=self.console_output(),
        )

    def run_hart(self, hart: Hart, max_cycles: int, engine: str = "interp") -> int:
        """Run one hart alone from the current time for at most ``max_cycles`` of its work, or until
        a native handler raises YieldToHost; returns the cycles its work cost.

        This is the step API for a host that schedules harts itself (a kernel driven by World
        events): no events run meanwhile, so the timers (CLINT MTIP, Sstc STIP) are polled from the
        hart's local clock between slices, each slice ending at the next timer deadline."""
        eng = self.engine(engine)
        min_cost = max(1, min(hart.class_costs))
        clint = self.clint
        # The hart's clock goes on from where its last run left it if the host has not yet moved
        # the World's clock past that (a VMM that enters the guest again at once).
        hart.round_base = hart.local_time()
        start = hart.round_work = hart.work_cycles()
        self.running_hart = hart
        try:
            while not self.exit_requested:
                used = hart.work_cycles() - start
                if used >= max_cycles:
                    break
                left = max_cycles - used
                if clint is not None:
                    due = clint.poll(hart.id)
                    if due is not None:
                        left = min(left, max(1, due - hart.local_time()))
                if hart.wfi:
                    if not hart.interrupt_waiting():
                        break  # waiting for an interrupt no timer of this hart will raise
                    hart.wfi = False
                self.quantum_break = False
                eng.run(hart, max(1, left // min_cost))
        except YieldToHost:
            pass
        finally:
            self.running_hart = None
            self.quantum_break = False
        return hart.work_cycles() - start

    def console_output(self) -> str:
        """Everything the guest printed on the UART (HTIF console output is routed there too)."""
        chunks = []
        for _base, dev in self.devices.values():
            out = getattr(dev, "output", None)
            if isinstance(out, bytes | bytearray) and dev.name != "htif":
                chunks.append(bytes(out))
        if not chunks and "htif" in self.devices:
            chunks.append(bytes(self.devices["htif"][1].output))
        return b"".join(chunks).decode("utf-8", errors="replace")

    def stats(self) -> dict[str, Any]:
        """Totals since the machine was created."""
        retired, by_cat, by_cls, traps = self._totals()
        return {
            "instructions": retired,
            "cycles": self.events.now,
            "cycles_by_category": by_cat,
            "instructions_by_class": by_cls,
            "traps": traps,
            "tlb": {f"hart{h.id}": h.mmu.snapshot_counters() for h in self.harts},
            "privilege_names": dict(PRIV_NAMES),
        }

    # -- snapshot -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        from virtlevels.machine.snapshot import take

        return take(self)

    def restore(self, state: dict[str, Any]) -> None:
        from virtlevels.machine.snapshot import restore

        restore(self, state)
