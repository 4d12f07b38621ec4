"""What an observer hook costs when no plugin implements it, and when one does.

Objects bind an observer once (``world.observer("trap")``) and their hot path tests a local
against None; this measures that test against a real pluggy call, per event.

    python benchmarks/observer_overhead.py
"""

from __future__ import annotations

import time

import virtlevels
from virtlevels import World

N = 1_000_000


def event_loop(observer: object, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        # the shape of a trap path: one local test per event
        if observer is not None:
            observer(machine=None, hart_id=0, cause=8, tval=0, epc=i, from_priv=0, to_priv=3,  # type: ignore[operator]
                     interrupt=False)
    return time.perf_counter() - start


def baseline(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        pass
    return time.perf_counter() - start


class Counter:
    calls = 0

    @virtlevels.hookimpl
    def virtlevels_on_trap(self, cause: int) -> None:
        Counter.calls += 1


def main() -> None:
    bare = World(0, entry_points=False)
    unused = bare.observer("trap")
    assert unused is None
    empty = baseline(N)
    none_cost = event_loop(unused, N)
    watched = World(0, entry_points=False)
    watched.register_plugin(Counter(), "counter")
    used = watched.observer("trap")
    used_cost = event_loop(used, N // 10) * 10
    print(f"events: {N:,}")
    print(f"empty loop               : {empty / N * 1e9:8.1f} ns/event")
    print(f"no plugin (None check)   : {(none_cost - empty) / N * 1e9:8.1f} ns/event over the empty loop")
    print(f"one plugin implementing  : {(used_cost - empty) / N * 1e9:8.1f} ns/event over the empty loop")


if __name__ == "__main__":
    main()
