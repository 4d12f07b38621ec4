"""Live migration of a domain between two hypervisors of one World, by pre-copy (issue 5 item 8).

The algorithm is Clark et al.'s ("Live Migration of Virtual Machines", NSDI 2005, section 3),
as QEMU and Xen implement it:

1. *Round 0*: turn dirty-page tracking on, then send every guest page the source has touched
   while the guest keeps running on the source.
2. *Iterative rounds*: send the pages the guest dirtied during the previous round, again while
   it runs, until the dirty set is at most ``dirty_threshold`` pages or ``max_rounds`` is reached.
3. *Stop-and-copy*: pause the guest, send the last dirty pages and the vCPU, device and VMM state,
   restore them on the destination and resume it there. The source VM is then destroyed.

Time. Sending a page costs ``[hypervisor] migrate_page`` cycles (costs.py). While a round's
pages are in flight the guest runs on the source for that many World cycles, so a busier guest
dirties more pages per round. The stop-and-copy phase is the *downtime*: the guest is paused, the
World clock advances by the time the last pages and the state take, and the guest's own clock
does not (the domain's time shift hides the pause, as a VMM re-offsets the TSC after migration),
so the migrated guest continues exactly where it stopped.

Dirty-page tracking (``tracking="watch"``, the default) is write protection through the Machine
protocol's store watchers, the mechanism of KVM's dirty log (KVM_GET_DIRTY_LOG with
write-protected pages): every guest page is watched (``watch_page``) both on the VM — stores by
emulated vCPUs, the VMM's ``phys_write`` and device DMA reach the VM's watchers — and on the host
— stores by guest code running on host harts (trap, bt, pv, hw) reach the host's. The first store
to a watched page marks it dirty and unwatches it (the page becomes writable at full speed again);
collecting a round's dirty set watches those pages again. ``tracking="compare"`` instead keeps a
copy of every page sent and compares page contents each round (no write protection, more work per
round, and it does not report pages rewritten with the same bytes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.backend import GuestState
from virtlevels.errors import ConfigError, LifecycleError
from virtlevels.machine.memory import PAGE_SHIFT, PAGE_SIZE
from virtlevels.machine.snapshot import encode

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels.machine.hart import Hart
    from virtlevels_hypervisor.domain import Domain
    from virtlevels_hypervisor.hypervisor import Hypervisor
    from virtlevels_hypervisor.vm import VirtualMachine

TRACKING = ("watch", "compare")


@attrs.frozen
class MigrationRound:
    """One pre-copy round: ``pages`` sent, taking ``cycles`` of World time (the transfer, during
    which the guest ran ``guest_instructions``); ``dirtied``: pages dirty when the round ended
    (what the next round must send)."""

    index: int
    pages: int
    cycles: int
    dirtied: int
    guest_instructions: int

    def to_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


@attrs.frozen
class MigrationReport:
    """What a migration did (the figures ``virsh domjobinfo`` reports)."""

    domain: str
    source: str
    destination: str
    status: str  # "completed" | "guest-exited" (the guest powered off during pre-copy)
    tracking: str
    rounds: tuple[MigrationRound, ...]
    converged: bool  # the dirty set fell to the threshold (False: the round limit stopped it)
    stop_copy_pages: int
    state_bytes: int
    state_pages: int
    downtime_cycles: int
    total_cycles: int
    page_cost: int

    @property
    def total_pages(self) -> int:
        return sum(r.pages for r in self.rounds) + self.stop_copy_pages

    @property
    def pages_per_round(self) -> list[int]:
        return [r.pages for r in self.rounds]

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "source": self.source,
            "destination": self.destination,
            "status": self.status,
            "tracking": self.tracking,
            "rounds": [r.to_dict() for r in self.rounds],
            "pages_per_round": self.pages_per_round,
            "converged": self.converged,
            "stop_copy_pages": self.stop_copy_pages,
            "state_bytes": self.state_bytes,
            "state_pages": self.state_pages,
            "total_pages": self.total_pages,
            "downtime_cycles": self.downtime_cycles,
            "total_cycles": self.total_cycles,
            "page_cost": self.page_cost,
        }


@attrs.define(eq=False)
class DirtyLog:
    """Which guest pages were written since the last :meth:`collect` (see the module docstring)."""

    vm: VirtualMachine
    mode: str = "watch"
    dirty: set[int] = attrs.field(factory=set, init=False)  # guest page indexes
    _armed: set[int] = attrs.field(factory=set, init=False)
    _h2g: dict[int, int] = attrs.field(factory=dict, init=False)
    _sent: dict[int, bytes] = attrs.field(factory=dict, init=False)
    _active: bool = attrs.field(default=False, init=False)

    @property
    def base_ppn(self) -> int:
        return self.vm.ram_base >> PAGE_SHIFT

    @property
    def npages(self) -> int:
        return self.vm.ram_size >> PAGE_SHIFT

    def start(self) -> None:
        if self.mode not in TRACKING:
            raise ConfigError(f"dirty-page tracking must be one of {', '.join(TRACKING)}, not {self.mode!r}")
        self._active = True
        if self.mode != "watch":
            return
        mem = self.vm.guest_memory
        self._h2g = {mem.hppn_of(i): i for i in range(self.npages)}
        self.vm.store_watchers.append(self._on_vm_store)
        self.vm.host.store_watchers.append(self._on_host_store)
        for i in range(self.npages):
            self._arm(i)

    def stop(self) -> None:
        if not self._active:
            return
        self._active = False
        if self.mode == "watch":
            for i in list(self._armed):
                self._disarm(i)
            self.vm.store_watchers.remove(self._on_vm_store)
            self.vm.host.store_watchers.remove(self._on_host_store)
        self._sent.clear()

    def _arm(self, i: int) -> None:
        if i not in self._armed:
            self._armed.add(i)
            self.vm.watch_page(self.base_ppn + i)
            self.vm.host.watch_page(self.vm.guest_memory.hppn_of(i))

    def _disarm(self, i: int) -> None:
        if i in self._armed:
            self._armed.discard(i)
            self.vm.unwatch_page(self.base_ppn + i)
            self.vm.host.unwatch_page(self.vm.guest_memory.hppn_of(i))

    def _mark(self, i: int) -> None:
        # The write-protect fault: log the page and let further stores to it run unobserved.
        if i in self._armed:
            self.dirty.add(i)
            self._disarm(i)

    def _on_vm_store(self, _hart: Hart | None, paddr: int, width: int) -> None:
        first, last = paddr >> PAGE_SHIFT, (paddr + max(1, width) - 1) >> PAGE_SHIFT
        for ppn in range(first, last + 1):
            i = ppn - self.base_ppn
            if 0 <= i < self.npages:
                self._mark(i)

    def _on_host_store(self, _hart: Hart | None, paddr: int, width: int) -> None:
        first, last = paddr >> PAGE_SHIFT, (paddr + max(1, width) - 1) >> PAGE_SHIFT
        for hppn in range(first, last + 1):
            i = self._h2g.get(hppn)
            if i is not None:
                self._mark(i)

    # -- rounds ---------------------------------------------------------------------------------
    def touched(self) -> list[int]:
        """Guest page indexes the host holds a page for (the others read as zero)."""
        pages = self.vm.host.bus.memory.pages
        mem = self.vm.guest_memory
        return [i for i in range(self.npages) if mem.hppn_of(i) in pages]

    def collect(self) -> list[int]:
        """The pages dirtied since the last call, sorted; tracking restarts for them."""
        if self.mode == "watch":
            out = sorted(self.dirty)
            self.dirty.clear()
            for i in out:
                self._arm(i)
            return out
        mem = self.vm.guest_memory
        out = []
        for i in self.touched():
            data = mem.read_bytes((self.base_ppn + i) << PAGE_SHIFT, PAGE_SIZE)
            if self._sent.get(i) != data:
                out.append(i)
        return out

    def read(self, i: int) -> bytes:
        data = self.vm.guest_memory.read_bytes((self.base_ppn + i) << PAGE_SHIFT, PAGE_SIZE)
        if self.mode == "compare":
            self._sent[i] = data
        return data


def migrate(
    domain: Domain,
    dest: Hypervisor,
    *,
    max_rounds: int = 30,
    dirty_threshold: int = 8,
    tracking: str = "watch",
    verify: bool = True,
) -> MigrationReport:
    """Move ``domain``'s guest to ``dest`` (a Hypervisor on another machine of the same World).

    The domain must be running (live migration) or paused (it stays paused; the rounds then run
    with the guest stopped). On success the domain runs on ``dest`` and the source VM's RAM is
    freed; on failure the destination VM is destroyed and the guest carries on at the source
    (nothing is half-applied). If the guest powers off during pre-copy the migration is abandoned
    (status ``"guest-exited"``). ``verify`` compares every guest page of both sides before the
    switch-over (a check on the dirty log; the guest is paused then, so it costs no guest time)."""
    from virtlevels_hypervisor.costs import hv_cost

    if domain.lifecycle.state not in (GuestState.RUNNING, GuestState.PAUSED) or domain.vm is None:
        raise LifecycleError(f"domain {domain.id}: cannot migrate in state {domain.lifecycle.state.value!r}")
    if domain.kernel is not None:
        raise LifecycleError(f"domain {domain.id}: migration is not supported for the Python kernel")
    if dest is domain.hypervisor:
        raise ConfigError(f"domain {domain.id}: the destination is the hypervisor it already runs on")
    if dest.world is not domain.world:
        raise ConfigError(f"domain {domain.id}: live migration is between machines of one World")
    if dest.mode != domain.spec.mode:
        raise ConfigError(
            f"domain {domain.id}: cannot migrate a {domain.spec.mode} guest to a {dest.mode} hypervisor"
        )
    if max_rounds < 1 or dirty_threshold < 0:
        raise ConfigError("migration needs max_rounds >= 1 and dirty_threshold >= 0")
    if tracking not in TRACKING:
        raise ConfigError(f"dirty-page tracking must be one of {', '.join(TRACKING)}, not {tracking!r}")

    world = domain.world
    src_vm, src_hv = domain.vm, domain.hypervisor
    page_cost = hv_cost(src_vm.cost, "migrate_page")
    live = domain.lifecycle.state is GuestState.RUNNING
    start_now = world.now
    dst_vm = domain._create_vm(dest)  # OutOfHostMemory etc.: nothing has happened yet
    log = DirtyLog(src_vm, tracking)
    rounds: list[MigrationRound] = []
    paused_here = False
    try:
        # Boot the image on the destination first, as a restore into a new VM does: loading is
        # where a technique sets itself up for a guest (and a bare-metal image maps its HTIF);
        # the pages and state sent next overwrite everything the guest can see.
        domain._boot(dst_vm)
        log.start()

        def send(pages: list[int]) -> None:
            for i in pages:
                dst_vm.phys_write((log.base_ppn + i) << PAGE_SHIFT, log.read(i))
            # The VMM's work on the sender: charged to the VM's hypervisor category.
            src_vm.charge("hypervisor", len(pages) * page_cost)

        def in_flight(cycles: int) -> tuple[int, bool]:
            """The guest runs while ``cycles`` of transfer happen; (instructions, still alive)."""
            if cycles <= 0:
                return 0, True
            if not live:
                world.run(until=world.now + cycles)
                return 0, True
            result = domain.run(cycles=cycles)
            return result.instructions, domain.vm is src_vm

        pending = log.touched() if tracking == "watch" else log.collect()
        converged = False
        for index in range(max_rounds):
            send(pending)
            t0 = world.now
            insns, alive = in_flight(len(pending) * page_cost)
            if not alive:
                log.stop()
                domain._free_vm(dst_vm, dest)
                return _report(domain, src_hv, dest, "guest-exited", tracking, rounds, False, 0, 0, 0,
                               world.now - start_now, page_cost)  # fmt: skip
            dirty = log.collect()
            rounds.append(MigrationRound(index, len(pending), world.now - t0, len(dirty), insns))
            pending = dirty
            if len(pending) <= dirty_threshold:
                converged = True
                break

        # Stop-and-copy: the guest is paused (its clock stops) while the rest goes over.
        if live:
            domain.pause()
            paused_here = True
        down0 = world.now
        # What the last round left dirty, and anything written since (nothing, when the loop
        # ended right after a collect; kept for clarity of the invariant).
        last = sorted(set(pending) | set(log.collect()))
        send(last)
        log.stop()
        state = domain._machine_state(src_vm)
        mem_state = state.pop("memory")
        state_bytes = len(encode({"state": state}))
        state_pages = -(-state_bytes // PAGE_SIZE)
        world.run(until=world.now + (len(last) + state_pages) * page_cost)
        downtime = world.now - down0
        if verify:
            _verify_memory(domain.id, mem_state, dst_vm)
        # The destination takes the state; its RAM already holds the guest's pages.
        state["memory"] = dst_vm.guest_memory.snapshot()
        domain._apply_machine_state(dst_vm, state)
    except BaseException:
        log.stop()
        if dst_vm in dest.vms:
            domain._free_vm(dst_vm, dest)
        if paused_here:
            domain.resume()
        raise
    # Switch over: the domain lives on the destination; the source's RAM is freed.
    domain.vm = dst_vm
    domain.hypervisor = dest
    domain._free_vm(src_vm, src_hv)
    if paused_here:
        domain.resume()
    return _report(domain, src_hv, dest, "completed", tracking, rounds, converged, len(last), state_bytes,
                   state_pages, world.now - start_now, page_cost, downtime)  # fmt: skip


def _report(
    domain: Domain,
    src: Hypervisor,
    dst: Hypervisor,
    status: str,
    tracking: str,
    rounds: list[MigrationRound],
    converged: bool,
    stop_pages: int,
    state_bytes: int,
    state_pages: int,
    total: int,
    page_cost: int,
    downtime: int = 0,
) -> MigrationReport:
    return MigrationReport(
        domain=domain.id,
        source=src.name,
        destination=dst.name,
        status=status,
        tracking=tracking,
        rounds=tuple(rounds),
        converged=converged,
        stop_copy_pages=stop_pages,
        state_bytes=state_bytes,
        state_pages=state_pages,
        downtime_cycles=downtime,
        total_cycles=total,
        page_cost=page_cost,
    )


def _verify_memory(name: str, src_pages: dict[int, bytes], dst_vm: VirtualMachine) -> None:
    """Every guest page equal on both sides (absent pages read as zero)."""
    from virtlevels.errors import VirtlevelsError

    dst_pages = dst_vm.guest_memory.snapshot()
    zero = bytes(PAGE_SIZE)
    for ppn in sorted(set(src_pages) | set(dst_pages)):
        if src_pages.get(ppn, zero) != dst_pages.get(ppn, zero):
            raise VirtlevelsError(
                f"domain {name}: migration lost a write to guest page 0x{ppn << PAGE_SHIFT:08x} "
                "(a dirty-log bug)"
            )
