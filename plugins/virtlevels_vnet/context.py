"""Per-World state of the virtual network: the clock conversion, MAC allocation, observers.

All timing goes through the World's event queue, in cycles; the network counts time at
``hz`` cycles per second (1 GHz, as the kernel's default), so a 1 ms link is 1,000,000 cycles.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import attrs

from virtlevels.events import EventHandle
from virtlevels.world import World

NODE_KINDS = ("netdev", "bridge", "link", "router", "network", "namespace", "process")

_CONTEXTS: weakref.WeakKeyDictionary[World, NetContext] = weakref.WeakKeyDictionary()


@attrs.define(eq=False)
class NetContext:
    world: World
    hz: int = 1_000_000_000
    _next_mac: int = 1
    _next_id: int = 0
    #: virtlevels_on_packet notifier, or None when no plugin observes packets (costs nothing then).
    packet_observer: Callable[..., None] | None = None

    def __attrs_post_init__(self) -> None:
        self.packet_observer = self.world.observer("packet")

    def now_ns(self) -> int:
        return self.world.events.now * 1_000_000_000 // self.hz

    def ns_to_cycles(self, ns: int) -> int:
        return -(-ns * self.hz // 1_000_000_000)

    def schedule_ns(self, delay_ns: int, callback: Callable[[], object]) -> EventHandle:
        ev = self.world.events
        return ev.schedule(ev.now + self.ns_to_cycles(max(0, delay_ns)), callback)

    def new_mac(self) -> bytes:
        """A locally administered unicast MAC (02:...), allocated in order: deterministic."""
        n = self._next_mac
        self._next_mac += 1
        return bytes([0x02, 0x00]) + n.to_bytes(4, "big")

    def new_id(self, kind: str) -> str:
        self._next_id += 1
        return f"vnet:{kind}:{self._next_id - 1}"

    def graph_add(self, node_id: str, kind: str, **attrs_: Any) -> None:
        g = self.world.graph
        if node_id not in g:
            g.add(node_id, kind, **attrs_)


def context_for(world: World) -> NetContext:
    """The one NetContext of ``world`` (made on first use)."""
    ctx = _CONTEXTS.get(world)
    if ctx is None:
        ctx = _CONTEXTS[world] = NetContext(world)
    return ctx
