"""Pre-copy live migration between two hypervisors of one World."""

from __future__ import annotations

from pathlib import Path

import pytest
from virtlevels_hypervisor.costs import HYPERVISOR_COSTS
from virtlevels_hypervisor.domain import Domain
from virtlevels_hypervisor.equivalence import group_lines as by_process
from virtlevels_hypervisor.hypervisor import Hypervisor
from virtlevels_hypervisor.migration import migrate

from virtlevels.backend import GuestState
from virtlevels.errors import ConfigError, LifecycleError
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.world import World

LIMIT = 5_000_000
DIRTIER = str(Path(__file__).parent / "data" / "hv_dirtier.S")
SPEC = {"name": "m", "kernel": {"programs": [DIRTIER, "counter"], "timer_interval": 3000}}
SOLO = {"name": "m", "kernel": {"programs": [DIRTIER]}}  # stores all the time: every round dirties
PAGE_COST = HYPERVISOR_COSTS["migrate_page"]


def reference(spec: dict = SPEC) -> tuple[str, int | None]:  # type: ignore[type-arg]
    w = World(entry_points=False)
    dom = Domain.from_spec(w, spec)
    dom.start()
    result = dom.run(LIMIT)
    assert result.status == "pass"
    return result.uart, result.exit_code


def setup(run_first: int, spec: dict = SPEC) -> tuple[World, Domain, Hypervisor]:  # type: ignore[type-arg]
    w = World(entry_points=False)
    dom = Domain.from_spec(w, spec)
    dom.start()
    dom.run(run_first)
    dest = Hypervisor(PhysicalMachine(ram_size=64 << 20, world=w, name="host-b"), w, name="hv-b")
    return w, dom, dest


@pytest.mark.parametrize("tracking", ["watch", "compare"])
def test_migrated_guest_output_equals_unmigrated(tracking: str) -> None:
    expected, code = reference()
    w, dom, dest = setup(120_000)
    src = dom.hypervisor
    src_vm = dom.vm
    report = migrate(dom, dest, dirty_threshold=2, tracking=tracking)
    assert report.status == "completed" and dom.hypervisor is dest and dom.vm in dest.vms
    assert src_vm not in src.vms and src.vms == []  # the source's RAM is freed
    assert dom.state is GuestState.RUNNING
    # What was sent: round 0 = the pages the guest had touched, then each round = what the
    # previous one left dirty; downtime = the last dirty pages + the state pages.
    assert report.rounds[0].pages > 0
    for prev, nxt in zip(report.rounds, report.rounds[1:], strict=False):
        assert nxt.pages == prev.dirtied
    assert report.stop_copy_pages >= report.rounds[-1].dirtied
    assert report.total_pages == sum(report.pages_per_round) + report.stop_copy_pages
    assert report.downtime_cycles == (report.stop_copy_pages + report.state_pages) * PAGE_COST
    assert report.rounds[0].guest_instructions > 0  # the guest ran during round 0
    result = dom.run(LIMIT)
    assert (result.status, result.exit_code) == ("pass", code)
    assert by_process(result.uart) == by_process(expected)


def test_dirtying_guest_needs_several_rounds_and_the_round_limit_stops_it() -> None:
    _w, dom, dest = setup(120_000)
    report = migrate(dom, dest, dirty_threshold=0, max_rounds=3)
    assert len(report.rounds) >= 2
    assert all(r.dirtied > 0 for r in report.rounds[:-1])
    _w, dom2, dest2 = setup(120_000)
    capped = migrate(dom2, dest2, dirty_threshold=0, max_rounds=1)
    assert len(capped.rounds) == 1 and not capped.converged
    assert capped.stop_copy_pages == capped.rounds[0].dirtied > 0


def test_watch_tracking_catches_every_write() -> None:
    # verify=True compares every page of both sides at switch-over: a store the dirty log missed
    # would raise. Migrate twice (there and back) mid-run.
    # Single-process guest: the whole console output must be equal.
    expected, _code = reference(SOLO)
    w, dom, dest = setup(30_000, SOLO)
    home = dom.hypervisor
    there = migrate(dom, dest, dirty_threshold=1, verify=True)
    assert all(r.dirtied > 0 for r in there.rounds[:-1]) and there.rounds[0].dirtied > 0
    dom.run(20_000)
    migrate(dom, home, dirty_threshold=1, verify=True)
    assert dom.run(LIMIT).uart == expected


def test_guest_does_not_see_the_downtime() -> None:
    _w, dom, dest = setup(100_000)
    before = dom.guest_now
    report = migrate(dom, dest)
    pre_copy = sum(r.cycles for r in report.rounds)
    # The guest lived through the pre-copy rounds (it ran), not through the stop-and-copy.
    assert dom.guest_now - before == pre_copy
    assert report.total_cycles == pre_copy + report.downtime_cycles


def test_paused_domain_migrates_and_stays_paused() -> None:
    expected, _ = reference()
    w, dom, dest = setup(90_000)
    dom.pause()
    report = migrate(dom, dest)
    assert report.status == "completed" and len(report.rounds) == 1 and report.stop_copy_pages == 0
    assert dom.state is GuestState.PAUSED
    dom.resume()
    assert by_process(dom.run(LIMIT).uart) == by_process(expected)


def test_failed_migration_leaves_the_guest_at_the_source() -> None:
    w, dom, _dest = setup(50_000)
    tiny = Hypervisor(PhysicalMachine(ram_size=8 << 20, world=w, name="tiny"), w, name="hv-tiny")
    src, vm = dom.hypervisor, dom.vm
    with pytest.raises(Exception, match="contiguous free host pages"):
        migrate(dom, tiny)
    assert dom.hypervisor is src and dom.vm is vm and tiny.vms == [] and dom.state is GuestState.RUNNING
    assert vm is not None and not vm.watched_pages and not vm.host.watched_pages
    with pytest.raises(ConfigError, match="already runs on"):
        migrate(dom, src)
    other = Hypervisor(PhysicalMachine(ram_size=64 << 20, world=World(entry_points=False)))
    with pytest.raises(ConfigError, match="one World"):
        migrate(dom, other)
    dom.stop()
    with pytest.raises(LifecycleError, match="cannot migrate in state 'stopped'"):
        migrate(dom, _dest)
