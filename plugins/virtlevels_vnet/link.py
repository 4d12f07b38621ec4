"""Point-to-point links with latency, bandwidth, seeded loss and a bounded transmit queue.

Each direction is a FIFO: a frame starts transmitting when the wire is free, occupies it for
``len * 8 / bandwidth`` seconds, and arrives ``latency`` later. A frame that finds ``queue``
frames waiting is tail-dropped (as a pfifo qdisc with txqueuelen ``queue``); a lost frame
(netem-style Bernoulli loss drawn from the link's own seeded generator) uses the wire but never
arrives. Arrivals are World events, so the same seed gives the same deliveries.
"""

from __future__ import annotations

import random
from collections import deque
from functools import partial
from typing import Any

import attrs

from virtlevels_vnet.context import NetContext


@attrs.define(eq=False)
class LinkStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    dropped: int = 0  # queue overflow
    bytes: int = 0


@attrs.define(eq=False)
class Link:
    ctx: NetContext
    a: Any  # NetDev
    b: Any
    latency_ns: int = 0
    bandwidth_bps: int | None = None  # None: unlimited
    loss: float = 0.0
    queue: int = 1000
    node_id: str = ""
    stats: list[LinkStats] = attrs.field(factory=lambda: [LinkStats(), LinkStats()])
    _rng: random.Random = attrs.field(init=False)
    _lat_cycles: int = attrs.field(default=0, init=False)
    _busy: list[int] = attrs.field(factory=lambda: [0, 0])
    _inflight: list[deque[int]] = attrs.field(factory=lambda: [deque(), deque()])

    def __attrs_post_init__(self) -> None:
        if self.latency_ns < 0:
            raise ValueError(f"link {self.a.name}-{self.b.name}: negative latency")
        if self.bandwidth_bps is not None and self.bandwidth_bps <= 0:
            raise ValueError(f"link {self.a.name}-{self.b.name}: bandwidth must be positive")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"link {self.a.name}-{self.b.name}: loss {self.loss} is not in [0, 1]")
        if self.queue < 1:
            raise ValueError(f"link {self.a.name}-{self.b.name}: queue must hold at least one frame")
        # Its own generator, seeded from the World's seed and the link's id: adding a link
        # elsewhere does not change this link's losses.
        self._rng = random.Random(f"{self.ctx.world.seed}:{self.node_id}")
        self._lat_cycles = self.ctx.ns_to_cycles(self.latency_ns)
        a, b = self.a, self.b
        a.link, b.link = self, self

    def send(self, src: Any, frame: bytes) -> None:
        d = 0 if src is self.a else 1
        st = self.stats[d]
        events = self.ctx.world.events
        now = events.now
        st.sent += 1
        if self.bandwidth_bps is None and not self.loss:
            # The fast path: an ideal wire (a veth pair) only adds latency.
            st.delivered += 1
            st.bytes += len(frame)
            events.schedule(now + self._lat_cycles, partial((self.b if d == 0 else self.a).deliver, frame))
            return
        q = self._inflight[d]
        while q and q[0] <= now:
            q.popleft()
        if len(q) >= self.queue:
            st.dropped += 1
            return
        tx = 0
        if self.bandwidth_bps is not None:
            tx = -(-len(frame) * 8 * self.ctx.hz // self.bandwidth_bps)
        done = max(now, self._busy[d]) + tx
        self._busy[d] = done
        q.append(done)
        st.bytes += len(frame)
        if self.loss and self._rng.random() < self.loss:
            st.lost += 1
            return
        st.delivered += 1
        events.schedule(done + self._lat_cycles, partial((self.b if d == 0 else self.a).deliver, frame))

    def other(self, dev: Any) -> Any:
        return self.b if dev is self.a else self.a
