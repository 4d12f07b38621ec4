"""Virtual Ethernet pairs (veth(4)): what one end sends the other receives, over a Link that
carries the pair's latency, bandwidth, loss and queue (as netem on a Mininet link)."""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels_vnet.context import NetContext
from virtlevels_vnet.devices.base import NetDev
from virtlevels_vnet.link import Link


@attrs.define(eq=False)
class Veth(NetDev):
    kind: str = "veth"
    peer: Any = None

    def destroy(self) -> None:
        """Deleting one end deletes the pair (veth_dellink)."""
        super().destroy()
        peer, self.peer = self.peer, None
        if peer is not None and peer.peer is self:
            peer.peer = None
            if peer.stack is not None:
                peer.stack.remove_device(peer.name)
            else:
                peer.destroy()


def veth_pair(
    ctx: NetContext,
    name_a: str,
    name_b: str,
    *,
    latency_ns: int = 0,
    bandwidth_bps: int | None = None,
    loss: float = 0.0,
    queue: int = 1000,
) -> tuple[Veth, Veth, Link]:
    a = Veth(ctx, name_a)
    b = Veth(ctx, name_b)
    a.peer, b.peer = b, a
    link = Link(ctx, a, b, latency_ns, bandwidth_bps, loss, queue, node_id=ctx.new_id("link"))
    g = ctx.world.graph
    ctx.graph_add(link.node_id, "link", latency_ns=latency_ns, bandwidth_bps=bandwidth_bps, loss=loss)
    g.link(a.node_id, link.node_id, "attached_to")
    g.link(b.node_id, link.node_id, "attached_to")
    return a, b, link
