"""The World's event queue: one simulated clock in cycles, deterministic ordering.

Events at the same time run by priority, then in the order they were scheduled (a counter,
as SimPy breaks ties), so the same inputs always give the same interleaving.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import attrs


@attrs.define(eq=False)
class EventHandle:
    """A scheduled callback; :meth:`EventQueue.cancel` takes it back."""

    time: int
    priority: int
    seq: int
    callback: Callable[[], object] | None

    @property
    def cancelled(self) -> bool:
        return self.callback is None


@attrs.define
class EventQueue:
    """A min-heap of (time, priority, sequence) with a monotonic clock."""

    now: int = 0
    _heap: list[tuple[int, int, int, EventHandle]] = attrs.field(factory=list, alias="_heap")
    _seq: int = attrs.field(default=0, alias="_seq")
    processed: int = 0

    def schedule(self, time: int, callback: Callable[[], object], *, priority: int = 0) -> EventHandle:
        """Run ``callback`` when the clock reaches ``time`` (cycles); never in the past."""
        if time < self.now:
            raise ValueError(f"cannot schedule at cycle {time}: the clock is already at {self.now}")
        handle = EventHandle(time, priority, self._seq, callback)
        heapq.heappush(self._heap, (time, priority, self._seq, handle))
        self._seq += 1
        return handle

    def schedule_in(self, delay: int, callback: Callable[[], object], *, priority: int = 0) -> EventHandle:
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        return self.schedule(self.now + delay, callback, priority=priority)

    def cancel(self, handle: EventHandle) -> None:
        # Lazy deletion: the entry stays in the heap and is skipped when popped.
        handle.callback = None

    def peek(self) -> int | None:
        """Time of the next live event, or None."""
        heap = self._heap
        while heap and heap[0][3].callback is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def step(self) -> bool:
        """Run the next live event; False when the queue is empty."""
        heap = self._heap
        while heap:
            time, _prio, _seq, handle = heapq.heappop(heap)
            callback = handle.callback
            if callback is None:
                continue
            handle.callback = None
            self.now = time
            self.processed += 1
            callback()
            return True
        return False

    def run(self, until: int | None = None) -> int:
        """Run events up to and including time ``until`` (all if None); returns the clock."""
        while True:
            nxt = self.peek()
            if nxt is None or (until is not None and nxt > until):
                break
            self.step()
        if until is not None and until > self.now:
            self.now = until
        return self.now

    def advance(self, time: int) -> None:
        """Move the clock forward without running events (for components that keep their own time)."""
        if time > self.now:
            self.now = time

    def __len__(self) -> int:
        return sum(1 for entry in self._heap if entry[3].callback is not None)
