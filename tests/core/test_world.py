from __future__ import annotations

import pytest

from virtlevels import World
from virtlevels.events import EventQueue


def test_events_run_in_time_then_priority_then_insertion_order() -> None:
    q = EventQueue()
    log: list[str] = []
    q.schedule(10, lambda: log.append("b"))
    q.schedule(5, lambda: log.append("a"))
    q.schedule(10, lambda: log.append("c"))
    q.schedule(10, lambda: log.append("urgent"), priority=-1)
    h = q.schedule(7, lambda: log.append("cancelled"))
    q.cancel(h)
    assert len(q) == 4
    assert q.run() == 10
    assert log == ["a", "urgent", "b", "c"]


def test_events_cannot_be_scheduled_in_the_past_and_run_until_stops() -> None:
    q = EventQueue()
    log: list[int] = []
    q.schedule(3, lambda: log.append(3))
    q.schedule(9, lambda: log.append(9))
    assert q.run(until=5) == 5
    assert log == [3]
    with pytest.raises(ValueError, match="already at 5"):
        q.schedule(4, lambda: None)
    q.schedule_in(1, lambda: log.append(6))
    q.run()
    assert log == [3, 6, 9]


def test_events_scheduled_from_callbacks() -> None:
    q = EventQueue()
    log: list[int] = []

    def tick() -> None:
        log.append(q.now)
        if q.now < 30:
            q.schedule_in(10, tick)

    q.schedule(0, tick)
    q.run()
    assert log == [0, 10, 20, 30]


def _scenario(seed: int) -> tuple[list[tuple[int, int]], list[str]]:
    world = World(seed, entry_points=False)
    trace: list[tuple[int, int]] = []
    for i in range(50):
        delay = world.rng.randrange(100)
        world.schedule(delay, lambda i=i: trace.append((world.now, i)))
    world.run()
    for _ in range(3):
        world.graph.add(world.new_id("machine"), "machine")
    return trace, world.graph.nodes()


def test_world_is_deterministic_for_a_seed() -> None:
    assert _scenario(42) == _scenario(42)
    assert _scenario(42)[0] != _scenario(43)[0]


def test_world_ids_are_stable() -> None:
    world = World(0, entry_points=False)
    assert world.new_id("machine") == "machine:0"
    assert world.new_id("hart", "machine:0") == "machine:0/hart:0"
    assert world.new_id("hart", "machine:0") == "machine:0/hart:1"
    assert world.new_id("machine") == "machine:1"
    assert "world" in world.graph
