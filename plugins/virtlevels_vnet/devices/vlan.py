"""802.1Q VLAN subinterfaces (``ip link add link eth0 name eth0.10 type vlan id 10``): frames
sent through it leave the parent tagged with its VID; tagged frames arriving on the parent
with that VID come up through it untagged (net/8021q)."""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels_vnet.devices.base import NetDev
from virtlevels_vnet.frames.eth import push_vlan


@attrs.define(eq=False)
class VlanDev(NetDev):
    kind: str = "vlan"
    parent: Any = None
    vid: int = 0

    def _out(self, frame: bytes) -> None:
        self.parent.xmit(push_vlan(frame, self.vid))

    def destroy(self) -> None:
        if self.parent is not None:
            self.parent.vlans.pop(self.vid, None)
        super().destroy()
