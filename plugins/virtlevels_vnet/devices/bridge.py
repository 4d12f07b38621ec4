"""Linux-bridge-like learning switch (net/bridge): MAC learning with ageing, flooding of unknown
and group destinations, and per-port VLAN filtering (``bridge vlan add dev P vid V [pvid]
[untagged]``, IEEE 802.1Q ingress/egress rules).

The bridge is itself an interface (its *local port*) that the owning stack can address, as
``br0`` is. Without ``vlan_filtering`` every frame is in VLAN 0 and tags pass through untouched.
The forwarding path works on bytes: no frame object is made per hop.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels_vnet.devices.base import NetDev
from virtlevels_vnet.frames.eth import pop_vlan, push_vlan, vlan_id

DEFAULT_AGEING_NS = 300 * 1_000_000_000  # br_ageing_time default, 300 s


@attrs.define(eq=False)
class Port:
    dev: Any
    pvid: int | None = 1
    vids: set[int] = attrs.field(factory=lambda: {1})
    untagged: set[int] = attrs.field(factory=lambda: {1})


class BridgeError(ValueError):
    pass


@attrs.define(eq=False)
class Bridge(NetDev):
    kind: str = "bridge"
    vlan_filtering: bool = False
    ageing_ns: int = DEFAULT_AGEING_NS
    ports: dict[Any, Port] = attrs.field(factory=dict)
    #: (vid, mac) -> [port device, last seen (cycles), static]
    fdb: dict[tuple[int, bytes], list[Any]] = attrs.field(factory=dict)
    flooded: int = 0
    forwarded: int = 0
    _ageing_cycles: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.ports[self] = Port(self)  # the local port (the bridge's own interface)
        self._ageing_cycles = self.ctx.ns_to_cycles(self.ageing_ns)

    # -- configuration ---------------------------------------------------------------------------------
    def add_port(self, dev: Any) -> None:
        """``ip link set DEV master BR``."""
        if dev is self or dev.master is not None:
            raise BridgeError(
                f"{dev.name} is already enslaved to {dev.master.name if dev.master else 'itself'}"
            )
        if dev.l3:
            raise BridgeError(f"{dev.name} is a layer-3 device and cannot be a bridge port")
        dev.master = self
        dev.rx_handler = self.port_rx
        self.ports[dev] = Port(dev)
        g = self.ctx.world.graph
        g.link(dev.node_id, self.node_id, "member_of")

    def del_port(self, dev: Any) -> None:
        if self.ports.pop(dev, None) is None:
            raise BridgeError(f"{dev.name} is not a port of {self.name}")
        dev.master = None
        dev.rx_handler = None
        for key in [k for k, e in self.fdb.items() if e[0] is dev]:
            del self.fdb[key]
        self.ctx.world.graph.unlink(dev.node_id, self.node_id, "member_of")

    def port(self, dev: Any) -> Port:
        p = self.ports.get(dev)
        if p is None:
            raise BridgeError(f"{getattr(dev, 'name', dev)} is not a port of {self.name}")
        return p

    def vlan_add(self, dev: Any, vid: int, *, pvid: bool = False, untagged: bool = False) -> None:
        """``bridge vlan add dev DEV vid VID [pvid] [untagged]``."""
        if not 1 <= vid <= 4094:
            raise BridgeError(f"VLAN id {vid} out of range 1-4094 (port {dev.name})")
        p = self.port(dev)
        p.vids.add(vid)
        if pvid:
            p.pvid = vid
        if untagged:
            p.untagged.add(vid)
        else:
            p.untagged.discard(vid)

    def vlan_del(self, dev: Any, vid: int) -> None:
        p = self.port(dev)
        p.vids.discard(vid)
        p.untagged.discard(vid)
        if p.pvid == vid:
            p.pvid = None

    def set_access(self, dev: Any, vid: int) -> None:
        """An access port: only ``vid``, as PVID, untagged (what most switch configs mean)."""
        p = self.port(dev)
        p.vids, p.untagged, p.pvid = set(), set(), None
        self.vlan_add(dev, vid, pvid=True, untagged=True)

    def add_static(self, mac: bytes, dev: Any, vid: int = 0) -> None:
        self.fdb[(vid, mac)] = [dev, 0, True]

    def lookup(self, mac: bytes, vid: int = 0) -> Any:
        e = self.fdb.get((vid, mac))
        if e is None or (not e[2] and self.ctx.world.events.now - e[1] > self._ageing_cycles):
            return None
        return e[0]

    # -- the data path ---------------------------------------------------------------------------------
    def port_rx(self, dev: Any, frame: bytes) -> None:
        """A frame arrived on port ``dev`` (br_handle_frame -> br_handle_frame_finish)."""
        if not self.up:
            return
        vid = 0
        if self.vlan_filtering:
            port = self.ports[dev]
            tag = vlan_id(frame)
            if tag is not None:
                vid = tag
                frame = pop_vlan(frame)
                if vid == 0:  # priority-tagged: classified to the PVID
                    vid = port.pvid or 0
            else:
                vid = port.pvid or 0
            if vid == 0 or vid not in port.vids:
                dev.rx_dropped += 1  # ingress filtering (802.1Q 8.6.2)
                return
        src = frame[6:12]
        if not src[0] & 1:
            key = (vid, src)
            e = self.fdb.get(key)
            now = self.ctx.world.events.now
            if e is None:
                self.fdb[key] = [dev, now, False]
            elif not e[2]:
                e[0] = dev
                e[1] = now
        self._forward(dev, vid, frame)

    def _forward(self, in_dev: Any, vid: int, frame: bytes) -> None:
        dst = frame[0:6]
        if not dst[0] & 1:
            e = self.fdb.get((vid, dst))
            if e is not None and (e[2] or self.ctx.world.events.now - e[1] <= self._ageing_cycles):
                out = e[0]
                if out is not in_dev:
                    self.forwarded += 1
                    self._egress(out, vid, frame)
                return
        self.flooded += 1
        filtering = self.vlan_filtering
        for dev, port in self.ports.items():
            if dev is not in_dev and (not filtering or vid in port.vids):
                self._egress(dev, vid, frame)

    def _egress(self, dev: Any, vid: int, frame: bytes) -> None:
        if self.vlan_filtering and vid not in self.ports[dev].untagged:
            frame = push_vlan(frame, vid)
        if dev is self:
            self._local_in(frame)
        else:
            dev.xmit(frame)

    def _local_in(self, frame: bytes) -> None:
        """Up to the bridge's own interface (br_pass_frame_up)."""
        self.rx_packets += 1
        self.rx_bytes += len(frame)
        for tap in self.taps:
            tap(frame, "rx")
        self._demux(frame)

    def _out(self, frame: bytes) -> None:
        # The stack sends through the bridge: ingress on the local port (br_dev_xmit).
        self.port_rx(self, frame)

    def destroy(self) -> None:
        for dev in [d for d in self.ports if d is not self]:
            self.del_port(dev)
        super().destroy()
