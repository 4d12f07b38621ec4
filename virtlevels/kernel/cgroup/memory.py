"""The memory controller (cgroup-v2.rst "Memory"; mm/memcontrol.c).

Every page a task touches is charged to its cgroup and every ancestor (:func:`charge_pages`).
Kinds: ``anon`` (private memory), ``file`` (page cache, the only reclaimable kind here, as
there is no swap), ``shmem`` (tmpfs/shared; counted in ``file`` of memory.stat too, as Linux
does) and ``kernel`` (page tables, stacks, slab).

- Over memory.max somewhere up the tree: count ``max`` there, reclaim page cache from that
  subtree; if that is not enough, count ``oom`` and pick a victim in that subtree: the task
  with the most pages charged (oom_badness uses rss; here all pages the task charged), ties to
  the highest pid (in Linux the last task scanned wins a tie, usually the newest). The charge
  fails and the victim is returned; the kernel core kills it, calls :func:`uncharge_task`, and
  retries. ``oom_kill`` is counted in the victim's cgroup (and upward, as every event).
- Over memory.high: count ``high``, reclaim up to the charged amount of page cache, and return
  a throttling delay computed as mem_cgroup_handle_over_high does (quadratic in the overage,
  at most 2 s; none under 10 ms).
memory.events counts the subtree (ancestors see their descendants' events); memory.events.local
only this cgroup. memory.min/low and memory.swap.max are accepted and shown but not enforced.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.kernel.cgroup.parse import kstrto, memparse
from virtlevels.kernel.errno import EAGAIN, EINVAL, KernelError

if TYPE_CHECKING:
    from virtlevels.kernel.cgroup.core import Cgroup

PAGE_SIZE = 4096
KINDS = ("anon", "file", "shmem", "kernel")
EVENTS = ("low", "high", "max", "oom", "oom_kill", "oom_group_kill")
COUNTERS = ("pgfault", "pgmajfault", "pgscan", "pgsteal")
NSEC_PER_SEC = 1_000_000_000
MEMCG_DELAY_PRECISION_SHIFT = 20
MEMCG_DELAY_SCALING_SHIFT = 14
MEMCG_CHARGE_BATCH = 64
MEMCG_MAX_HIGH_DELAY_NS = 2 * NSEC_PER_SEC
MIN_HIGH_DELAY_NS = NSEC_PER_SEC // 100  # penalties up to HZ/100 are not worth sleeping for


def _zeros(keys: tuple[str, ...]) -> dict[str, int]:
    return dict.fromkeys(keys, 0)


@attrs.define
class MemState:
    max: int | None = None  # pages; None = "max"
    high: int | None = None
    low: int | None = 0  # None = "max"
    min: int | None = 0
    swap_max: int | None = None
    oom_group: bool = False
    usage: int = 0  # pages charged in the subtree (kept on every cgroup)
    peak: int = 0
    local: dict[str, int] = attrs.field(factory=lambda: _zeros(KINDS))  # charged directly here
    stat: dict[str, int] = attrs.field(factory=lambda: _zeros(KINDS + COUNTERS))  # subtree totals
    events: dict[str, int] = attrs.field(factory=lambda: _zeros(EVENTS))
    events_local: dict[str, int] = attrs.field(factory=lambda: _zeros(EVENTS))

    def reset_config(self) -> None:
        self.max = self.high = self.swap_max = None
        self.low = self.min = 0
        self.oom_group = False
        self.events = _zeros(EVENTS)
        self.events_local = _zeros(EVENTS)

    def reparent_into(self, cg: Cgroup, parent: Cgroup) -> None:
        """cg is being removed: its own pages become the parent's (ancestors' totals already count them)."""
        for k, v in self.local.items():
            parent.mem.local[k] += v
            self.local[k] = 0
        charges = cg.hierarchy.mem_charges
        for rec in charges.values():
            for kind in KINDS:
                n = rec.pop((cg, kind), 0)
                if n:
                    rec[(parent, kind)] = rec.get((parent, kind), 0) + n


@attrs.frozen
class ChargeResult:
    """What :func:`charge_pages` did. ``ok``: the pages are charged. ``delay_ns``: throttle the
    task this long (memory.high). ``victims``: tasks the OOM killer chose (the charge failed;
    kill them, uncharge them and retry). ``oom_cgroup``: where memory.max was hit."""

    ok: bool
    delay_ns: int = 0
    reclaimed: int = 0
    victims: tuple[Hashable, ...] = ()
    oom_cgroup: Any = None


def _event(cg: Cgroup, name: str) -> None:
    """memcg_memory_event: local count here, hierarchical count here and in every non-root ancestor."""
    cg.mem.events_local[name] += 1
    for a in cg.ancestors():
        if a.parent is not None:
            a.mem.events[name] += 1


def _limited(cg: Cgroup) -> bool:
    return cg.parent is not None and cg.has("memory")


def _over_max(a: Cgroup, n: int) -> bool:
    return _limited(a) and a.mem.max is not None and a.mem.usage + n > a.mem.max


def _add(cg: Cgroup, n: int, kind: str, task: Hashable | None) -> None:
    cg.mem.local[kind] += n
    for a in cg.ancestors():
        m = a.mem
        m.usage += n
        m.stat[kind] += n
        if m.usage > m.peak:
            m.peak = m.usage
    if task is not None:
        rec = cg.hierarchy.mem_charges.setdefault(task, {})
        rec[(cg, kind)] = rec.get((cg, kind), 0) + n


def _sub(cg: Cgroup, n: int, kind: str) -> None:
    cg.mem.local[kind] -= n
    for a in cg.ancestors():
        a.mem.usage -= n
        a.mem.stat[kind] -= n


def reclaim(target: Cgroup, want: int) -> int:
    """Drop up to ``want`` pages of page cache from ``target``'s subtree (try_to_free_mem_cgroup_pages).

    Cgroups are scanned in pre-order; within one, the page cache of the tasks that charged it
    goes in their arrival order. Returns the pages reclaimed.
    """
    got = 0
    charges = target.hierarchy.mem_charges
    for c in target.walk():
        if got >= want:
            break
        take = min(c.mem.local["file"], want - got)
        if take <= 0:
            continue
        _sub(c, take, "file")
        left = take
        for rec in charges.values():
            if left == 0:
                break
            have = rec.get((c, "file"), 0)
            d = min(have, left)
            if d:
                rec[(c, "file")] = have - d
                left -= d
        for a in c.ancestors():
            a.mem.stat["pgscan"] += take
            a.mem.stat["pgsteal"] += take
        got += take
    return got


def task_pages(cg_or_h: Any, task: Hashable) -> int:
    """All pages ``task`` has charged (the badness the OOM killer ranks by)."""
    h = cg_or_h.hierarchy if hasattr(cg_or_h, "hierarchy") else cg_or_h
    return sum(h.mem_charges.get(task, {}).values())


def select_victims(oom_cg: Cgroup) -> tuple[Hashable, ...]:
    """The OOM victim(s) in ``oom_cg``'s subtree, with memory.events counted."""
    h = oom_cg.hierarchy
    candidates = [t for c in oom_cg.walk() for t in c.procs]
    if not candidates:
        return ()
    if h.oom_select is not None:
        chosen = h.oom_select(oom_cg, candidates)
        if chosen is None:
            return ()
    else:
        chosen = max(candidates, key=lambda t: (task_pages(h, t), h.pid_of(t)))
    # mem_cgroup_get_oom_group: the highest cgroup between the victim's and the OOM domain
    # with memory.oom.group set is killed as a whole.
    group = None
    for a in h.task_cgroup[chosen].ancestors():
        if a.mem.oom_group:
            group = a
        if a is oom_cg:
            break
    victims: tuple[Hashable, ...]
    if group is not None:
        victims = tuple(t for c in group.walk() for t in c.procs)
        _event(group, "oom_group_kill")
    else:
        victims = (chosen,)
    for v in victims:
        _event(h.task_cgroup[v], "oom_kill")
    return victims


def _overage(usage: int, high: int) -> int:
    """calculate_overage: how far over high, as a 20-bit fixed-point fraction of high."""
    if usage <= high:
        return 0
    return ((usage - high) << MEMCG_DELAY_PRECISION_SHIFT) // max(high, 1)


def high_delay_ns(cg: Cgroup, n: int) -> int:
    """mem_cgroup_handle_over_high / calculate_high_delay for ``n`` pages just charged."""
    worst = 0
    for a in cg.ancestors():
        if _limited(a) and a.mem.high is not None:
            worst = max(worst, _overage(a.mem.usage, a.mem.high))
    if not worst:
        return 0
    penalty = (worst * worst * NSEC_PER_SEC) >> (MEMCG_DELAY_PRECISION_SHIFT + MEMCG_DELAY_SCALING_SHIFT)
    penalty = min(penalty * n // MEMCG_CHARGE_BATCH, MEMCG_MAX_HIGH_DELAY_NS)
    return 0 if penalty <= MIN_HIGH_DELAY_NS else penalty


def charge_pages(cg: Cgroup, n: int, kind: str = "anon", task: Hashable | None = None) -> ChargeResult:
    """Charge ``n`` pages of ``kind`` made by ``task`` in ``cg`` (try_charge_memcg)."""
    if kind not in KINDS:
        raise ValueError(f"unknown memory kind {kind!r} (known: {KINDS})")
    reclaimed = 0
    while True:
        over = next(
            (
                a
                for a in cg.ancestors()
                if _limited(a) and a.mem.max is not None and a.mem.usage + n > a.mem.max
            ),
            None,
        )
        if over is None:
            break
        assert over.mem.max is not None
        _event(over, "max")
        need = over.mem.usage + n - over.mem.max
        got = reclaim(over, need)
        reclaimed += got
        if got >= need:
            continue
        _event(over, "oom")
        return ChargeResult(False, reclaimed=reclaimed, victims=select_victims(over), oom_cgroup=over)
    _add(cg, n, kind, task)
    for a in cg.ancestors():
        # reclaim_high: every over-high cgroup up the tree counts an event and reclaims.
        if _limited(a) and a.mem.high is not None and a.mem.usage > a.mem.high:
            _event(a, "high")
            reclaimed += reclaim(a, n)
    return ChargeResult(True, delay_ns=high_delay_ns(cg, n), reclaimed=reclaimed)


def uncharge_pages(cg: Cgroup, n: int, kind: str = "anon", task: Hashable | None = None) -> None:
    """Return ``n`` pages charged in ``cg`` (pages freed)."""
    n = min(n, cg.mem.local[kind])
    _sub(cg, n, kind)
    if task is not None:
        rec = cg.hierarchy.mem_charges.get(task)
        if rec is not None and (cg, kind) in rec:
            rec[(cg, kind)] = max(0, rec[(cg, kind)] - n)


def uncharge_task(h: Any, task: Hashable) -> int:
    """Free every page ``task`` charged (it exited or was OOM-killed); returns how many."""
    rec = h.mem_charges.pop(task, {})
    total = 0
    for (cg, kind), n in rec.items():
        n = min(n, cg.mem.local[kind])
        if n:
            _sub(cg, n, kind)
            total += n
    return total


def count_fault(cg: Cgroup, major: bool = False) -> None:
    """A page fault by a task of ``cg`` (memory.stat pgfault / pgmajfault)."""
    for a in cg.ancestors():
        a.mem.stat["pgfault"] += 1
        if major:
            a.mem.stat["pgmajfault"] += 1


# -- files ---------------------------------------------------------------------------------------
def _show(pages: int | None) -> str:
    return "max\n" if pages is None else f"{pages * PAGE_SIZE}\n"


def page_counter_memparse(text: str) -> int | None:
    """ "max" or a size with an optional K/M/G/T/P/E suffix, in whole pages (rounded down)."""
    s = text.strip()
    if s == "max":
        return None
    return memparse(s) // PAGE_SIZE


def read_current(cg: Cgroup) -> str:
    return f"{cg.mem.usage * PAGE_SIZE}\n"


def read_peak(cg: Cgroup) -> str:
    return f"{cg.mem.peak * PAGE_SIZE}\n"


def read_limit(field: str) -> Any:
    def read(cg: Cgroup) -> str:
        return _show(getattr(cg.mem, field))

    return read


def write_minlow(field: str) -> Any:
    def write(cg: Cgroup, text: str) -> None:
        setattr(cg.mem, field, page_counter_memparse(text))

    return write


def write_high(cg: Cgroup, text: str) -> None:
    """memory_high_write: set, then reclaim page cache down to the new limit (no OOM)."""
    cg.mem.high = page_counter_memparse(text)
    if cg.mem.high is not None and cg.mem.usage > cg.mem.high:
        reclaim(cg, cg.mem.usage - cg.mem.high)


def write_max(cg: Cgroup, text: str) -> None:
    """memory_max_write: set, reclaim, then OOM-kill (through the hierarchy's ``on_kill``) until
    usage fits or no victim is left."""
    cg.mem.max = page_counter_memparse(text)
    h = cg.hierarchy
    while cg.mem.max is not None and cg.mem.usage > cg.mem.max:
        if reclaim(cg, cg.mem.usage - cg.mem.max):
            continue
        _event(cg, "oom")
        if h.on_kill is None:
            break
        victims = select_victims(cg)
        if not victims:
            break
        before = cg.mem.usage
        for v in victims:
            h.on_kill(v)
        if cg.mem.usage >= before:
            break  # the kill freed nothing; do not loop forever


def write_swap_max(cg: Cgroup, text: str) -> None:
    cg.mem.swap_max = page_counter_memparse(text)


def read_events(cg: Cgroup) -> str:
    return "".join(f"{k} {cg.mem.events[k]}\n" for k in EVENTS)


def read_events_local(cg: Cgroup) -> str:
    return "".join(f"{k} {cg.mem.events_local[k]}\n" for k in EVENTS)


def read_oom_group(cg: Cgroup) -> str:
    return f"{int(cg.mem.oom_group)}\n"


def write_oom_group(cg: Cgroup, text: str) -> None:
    v = kstrto(text.strip(), signed=True, bits=32)
    if v not in (0, 1):
        raise KernelError(EINVAL, "memory.oom.group takes 0 or 1")
    cg.mem.oom_group = bool(v)


def write_reclaim(cg: Cgroup, text: str) -> None:
    """memory.reclaim: reclaim that many bytes; EAGAIN if not all could be."""
    parts = text.split()
    if not parts:
        raise KernelError(EINVAL, "memory.reclaim needs a size")
    want = (memparse(parts[0]) + PAGE_SIZE - 1) // PAGE_SIZE
    if reclaim(cg, want) < want:
        raise KernelError(EAGAIN, "could not reclaim that much")


def read_stat(cg: Cgroup) -> str:
    """memory.stat (memory_stat_format order, the lines this model tracks plus zeros)."""
    s = cg.mem.stat
    anon, file, shmem, kernel = s["anon"], s["file"] + s["shmem"], s["shmem"], s["kernel"]
    b = PAGE_SIZE
    rows = [
        ("anon", anon * b), ("file", file * b), ("kernel", kernel * b), ("kernel_stack", 0),
        ("pagetables", 0), ("sec_pagetables", 0), ("percpu", 0), ("sock", 0), ("vmalloc", 0),
        ("shmem", shmem * b), ("file_mapped", 0), ("file_dirty", 0), ("file_writeback", 0),
        ("swapcached", 0), ("anon_thp", 0), ("file_thp", 0), ("shmem_thp", 0),
        ("inactive_anon", (anon + shmem) * b), ("active_anon", 0), ("inactive_file", s["file"] * b),
        ("active_file", 0), ("unevictable", 0), ("slab_reclaimable", 0), ("slab_unreclaimable", 0),
        ("slab", 0), ("workingset_refault_anon", 0), ("workingset_refault_file", 0),
        ("workingset_activate_anon", 0), ("workingset_activate_file", 0),
        ("workingset_restore_anon", 0), ("workingset_restore_file", 0), ("workingset_nodereclaim", 0),
        ("pgscan", s["pgscan"]), ("pgsteal", s["pgsteal"]), ("pgfault", s["pgfault"]),
        ("pgmajfault", s["pgmajfault"]),
    ]  # fmt: skip
    return "".join(f"{k} {v}\n" for k, v in rows)
