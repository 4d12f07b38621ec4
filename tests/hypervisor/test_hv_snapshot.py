"""Domain snapshot/restore: byte-exact round trips, and a restored guest continues as if never saved."""

from __future__ import annotations

import pytest
from virtlevels_hypervisor.domain import Domain

from virtlevels.backend import GuestState
from virtlevels.errors import ConfigError, LifecycleError
from virtlevels.world import World

LIMIT = 3_000_000
SPEC = {"name": "s", "kernel": {"programs": ["counter", "hello", "counter"], "timer_interval": 3000}}


def fresh(spec: dict = SPEC) -> tuple[World, Domain]:  # type: ignore[type-arg]
    w = World(entry_points=False)
    dom = Domain.from_spec(w, spec)
    dom.start()
    return w, dom


def reference() -> str:
    _w, dom = fresh()
    result = dom.run(LIMIT)
    assert result.status == "pass"
    return result.uart


def test_snapshot_restore_is_byte_exact() -> None:
    w, dom = fresh()
    dom.run(60_000)
    first = dom.snapshot()
    assert dom.snapshot() == first  # taking a snapshot changes nothing
    dom.run(50_000)
    assert dom.snapshot() != first
    dom.restore(first)
    assert dom.snapshot() == first
    dom.pause()
    w.run(until=w.now + 99_999)  # time passes while the guest is paused: still the same bytes
    assert dom.snapshot() == first
    dom.resume()
    w.run(until=w.now + 99_999)  # a running guest lives through World time (its clock moves)
    assert dom.snapshot() != first


def test_restored_guest_continues_like_one_never_saved() -> None:
    expected = reference()
    _w, dom = fresh()
    dom.run(60_000)
    saved = dom.snapshot()
    dom.run(200_000)  # run on, then go back
    dom.restore(saved)
    assert dom.run(LIMIT).uart == expected


def test_restore_into_another_world_and_domain() -> None:
    expected = reference()
    _w, dom = fresh()
    dom.run(60_000)
    saved = dom.snapshot()
    w2 = World(entry_points=False)
    w2.run(until=7_777_777)  # a World whose clock is elsewhere
    other = Domain.from_snapshot(w2, saved)
    assert other.state is GuestState.RUNNING and other.snapshot() == saved
    assert other.run(LIMIT).uart == expected
    # ...and a stopped domain with the same spec restores it too (virsh restore).
    w3 = World(entry_points=False)
    third = Domain.from_spec(w3, SPEC)
    third.restore(saved)
    assert third.snapshot() == saved


def test_snapshot_while_paused_and_vmm_counters_travel() -> None:
    _w, dom = fresh()
    dom.run(30_000)
    dom.pause()
    saved = dom.snapshot()
    assert dom.vm is not None
    emulated = dom.vm.vstats.emulated_instructions
    dom.resume()
    dom.run(10_000)
    dom.restore(saved)
    assert dom.vm.vstats.emulated_instructions == emulated
    assert dom.snapshot() == saved


def test_bad_snapshots_change_nothing() -> None:
    _w, dom = fresh()
    dom.run(20_000)
    before = dom.snapshot()
    with pytest.raises(ConfigError, match="not a domain snapshot"):
        dom.restore(b"garbage")
    _w2, other = fresh({"name": "s", "memory": "32MiB", "kernel": ["hello"]})
    with pytest.raises(ConfigError, match="snapshot spec.memory is '32MiB', the domain has '16MiB'"):
        dom.restore(other.snapshot())
    assert dom.snapshot() == before
    # A stopped domain whose restore fails stays stopped and allocates nothing.
    w4 = World(entry_points=False)
    d4 = Domain.from_spec(w4, {"name": "s", "memory": "32MiB", "kernel": ["hello"]})
    free = d4.hypervisor.pool.free_bytes
    with pytest.raises(ConfigError):
        d4.restore(before)
    assert d4.state is GuestState.DEFINED and d4.vm is None and d4.hypervisor.pool.free_bytes == free


def test_snapshot_needs_a_vm() -> None:
    w = World(entry_points=False)
    dom = Domain.from_spec(w, SPEC)
    with pytest.raises(LifecycleError, match="cannot snapshot in state 'defined'"):
        dom.snapshot()
