"""The net_device every kind of interface is: name, MAC, MTU, flags, counters, taps.

``xmit`` is the stack (or a bridge) sending a frame out of the device; ``deliver`` is a frame
arriving from the device's wire. On arrival a device enslaved to a bridge hands the frame to
the bridge's rx handler (netdev_rx_handler_register, as br_handle_frame); a tagged frame whose
VID has a VLAN subinterface goes to it (vlan_do_receive); otherwise the owning stack gets it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from virtlevels_vnet.context import NetContext
from virtlevels_vnet.frames.eth import pop_vlan, vlan_id

Tap = Callable[[bytes, str], None]


@attrs.define(eq=False)
class NetDev:
    ctx: NetContext
    name: str
    mac: bytes = b""
    mtu: int = 1500
    kind: str = "ether"
    ifindex: int = 0
    up: bool = False
    #: True for devices that carry bare IP packets (TUN): no Ethernet header, no ARP.
    l3: bool = False
    stack: Any = None  # the owning NetStack (network namespace)
    master: Any = None  # the Bridge this device is a port of
    rx_handler: Callable[[Any, bytes], None] | None = None
    link: Any = None  # the Link to the peer (veth, switch port)
    vlans: dict[int, Any] = attrs.field(factory=dict)
    taps: list[Tap] = attrs.field(factory=list)
    node_id: str = ""
    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0

    def __attrs_post_init__(self) -> None:
        if not self.mac and not self.l3:
            self.mac = self.ctx.new_mac()
        if not self.node_id:
            self.node_id = self.ctx.new_id("netdev")
        self.ctx.graph_add(self.node_id, "netdev", name=self.name, devkind=self.kind)

    # -- transmit ------------------------------------------------------------------------------
    def xmit(self, frame: bytes) -> None:
        if not self.up:
            self.tx_dropped += 1
            return
        self.tx_packets += 1
        self.tx_bytes += len(frame)
        if self.taps:
            for tap in self.taps:
                tap(frame, "tx")
        obs = self.ctx.packet_observer
        if obs is not None:
            obs(device=self, frame=frame, direction="tx")
        self._out(frame)

    def _out(self, frame: bytes) -> None:
        link = self.link
        if link is not None:
            link.send(self, frame)
        else:
            self.tx_dropped += 1  # no carrier

    # -- receive -------------------------------------------------------------------------------
    def deliver(self, frame: bytes) -> None:
        if not self.up:
            self.rx_dropped += 1
            return
        self.rx_packets += 1
        self.rx_bytes += len(frame)
        if self.taps:
            for tap in self.taps:
                tap(frame, "rx")
        obs = self.ctx.packet_observer
        if obs is not None:
            obs(device=self, frame=frame, direction="rx")
        handler = self.rx_handler
        if handler is not None:
            handler(self, frame)
            return
        self._demux(frame)

    def _demux(self, frame: bytes) -> None:
        """Up the stack: to a VLAN subinterface by the tag's VID, else to the owning stack."""
        if self.vlans and not self.l3:
            vid = vlan_id(frame)
            if vid is not None:
                sub = self.vlans.get(vid)
                if sub is not None:
                    sub.deliver(pop_vlan(frame))
                else:
                    self.rx_dropped += 1
                return
        stack = self.stack
        if stack is not None:
            # A TUN device carries bare IP packets: straight to ip_rcv, no Ethernet demux.
            if self.l3:
                stack.ip_rcv(self, frame)
            else:
                stack.receive(self, frame)

    def destroy(self) -> None:
        """Unregister the device (its graph node goes; subclasses also drop their peers)."""
        g = self.ctx.world.graph
        if self.node_id in g:
            g.remove(self.node_id)
        self.up = False
