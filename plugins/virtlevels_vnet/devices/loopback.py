"""The loopback device (drivers/net/loopback.c): what is sent comes back in, ifindex 1, MTU 65536."""

from __future__ import annotations

from functools import partial

import attrs

from virtlevels_vnet.devices.base import NetDev


@attrs.define(eq=False)
class Loopback(NetDev):
    mtu: int = 65536
    kind: str = "loopback"

    def _out(self, frame: bytes) -> None:
        # Through the event queue (netif_rx defers to softirq), so a reply never recurses.
        self.ctx.schedule_ns(0, partial(self.deliver, frame))
