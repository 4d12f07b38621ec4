"""Static reachability: would a ping from one host to an address succeed? Answered from the
configuration alone (links, bridge VLAN membership, addresses, routes, filter rules and NAT
rules), without sending a packet or advancing the clock, in the spirit of header-space and
Batfish-style analysis: the echo request and its reply are walked symbolically through the same
decisions the stack's receive and send paths take (ip_rcv, ip_forward, ip_output, the filter
chains and conntrack/NAT), over an L2 model of every device kind that carries frames.

Assumptions (what makes the answer equal a simulated ping on a fresh network): links do not
lose frames; every device answers ARP for its own addresses only once in a broadcast domain (no
duplicate addresses); no conntrack state from earlier traffic; bridges form trees (switch loops
are refused at build time). TUN/TAP user sides, VXLAN tunnels and broadcast pings are not
modelled: a path through them is reported as not reachable with the reason.
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels_vnet.devices.bridge import Bridge
from virtlevels_vnet.devices.vlan import VlanDev
from virtlevels_vnet.filter import Rule
from virtlevels_vnet.frames.ipv4 import IPPROTO_ICMP, mask, ntoa
from virtlevels_vnet.nat import Conn, Conntrack, reverse
from virtlevels_vnet.route import Route

Tuple5 = tuple[int, int, int, int, int]
_Out = list[tuple[Any, Any]]
_Seen = set[tuple[int, int | None, str]]
_MAX_STEPS = 10_000


@attrs.define
class Packet:
    """The symbolic ICMP echo: what the walk rewrites (addresses by NAT, TTL by forwarding)."""

    src: int
    dst: int
    ident: int
    reply: bool = False
    ttl: int = 64

    def tuple(self) -> Tuple5:
        return (IPPROTO_ICMP, self.src, self.dst, self.ident, self.ident)


@attrs.frozen
class Reach:
    """The answer: ``ok``, the stacks the request and the reply went through, and why not."""

    ok: bool
    hops: tuple[str, ...] = ()
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


class _Fail(Exception):
    pass


@attrs.define(eq=False)
class _Walk:
    """One request/reply walk; conntrack state lives here (a fresh network has none)."""

    origin: Any  # the sending NetStack
    ident: int
    hops: list[str] = attrs.field(factory=list)
    #: A walk-private conntrack per stack (keyed by id): the walk must not touch the real tables.
    ct: dict[int, Conntrack] = attrs.field(factory=dict)
    steps: int = 0
    done: bool = False
    hops_last: Any = None

    # -- L3 -----------------------------------------------------------------------------------------
    def output(self, st: Any, pkt: Packet) -> None:
        """ip_output: route, source selection, OUTPUT chain, conntrack/NAT, then the wire."""
        route = st._local_route(pkt.dst)
        if route is None:
            raise _Fail(f"{st.name}: no route to {ntoa(pkt.dst)}")
        if not pkt.src:
            pkt.src = st.source_for(pkt.dst)
        if st.filter.active("OUTPUT") and not self._filter(st, "OUTPUT", pkt, None, route.dev, "NEW"):
            raise _Fail(f"{st.name}: dropped by OUTPUT")
        if st.ct_on:
            conn, is_reply, _state = self._ct_pre(st, pkt, None)
            self._ct_post(st, pkt, conn, is_reply, route.dev)
        self.send_route(st, route, pkt)

    def send_route(self, st: Any, route: Route, pkt: Packet) -> None:
        dev = st.devices.get(route.dev)
        if dev is None or not dev.up:
            raise _Fail(f"{st.name}: output device {route.dev} is missing or down")
        if dev.kind == "loopback":
            self.ip_rcv(st, dev, pkt)
            return
        if dev.l3:
            raise _Fail(f"{st.name}: {dev.name} is a TUN device (its user side is not modelled)")
        nexthop = route.gw or pkt.dst
        if nexthop == 0xFFFFFFFF or (
            route.plen < 31 and not route.gw and nexthop == route.dst | (~mask(route.plen) & 0xFFFFFFFF)
        ):
            raise _Fail(f"{st.name}: broadcast to {ntoa(nexthop)} is not modelled")
        # ARP (RFC 826): the request floods the broadcast domain; a stack owning the next hop
        # answers from the device it arrived on, and the reply must come back.
        domain = l2_domain(dev)
        owners = [(s, d) for s, d in domain if nexthop in s.local]
        if not owners:
            raise _Fail(f"{st.name}: no answer to ARP for {ntoa(nexthop)} on {dev.name}")
        peer_st, peer_dev = owners[0]
        if (st, dev) not in l2_domain(peer_dev):
            raise _Fail(f"{st.name}: the ARP reply from {peer_st.name} does not come back to {dev.name}")
        self.ip_rcv(peer_st, peer_dev, pkt)

    def ip_rcv(self, st: Any, dev: Any, pkt: Packet) -> None:
        self.steps += 1
        if self.steps > _MAX_STEPS:
            raise _Fail("the walk does not end")
        if st is not self.hops_last:
            self.hops.append(st.name)
            self.hops_last = st
        state = "NEW"
        conn: Conn | None = None
        is_reply = False
        if st.ct_on:
            conn, is_reply, state = self._ct_pre(st, pkt, dev.name)
        if pkt.dst in st.local or st._is_bcast(pkt.dst):
            if st.filter.active("INPUT") and not self._filter(st, "INPUT", pkt, dev.name, None, state):
                raise _Fail(f"{st.name}: dropped by INPUT")
            if conn is not None:
                self._confirm(st, conn)
            self.local_deliver(st, pkt)
        elif st.ip_forward:
            self.forward(st, dev, pkt, conn, is_reply, state)
        else:
            raise _Fail(f"{st.name}: not for {ntoa(pkt.dst)} and does not forward")

    def forward(self, st: Any, dev: Any, pkt: Packet, conn: Conn | None, is_reply: bool, state: str) -> None:
        route = st.routes.lookup(pkt.dst)
        if route is None:
            raise _Fail(f"{st.name}: no route to {ntoa(pkt.dst)} (net unreachable)")
        if pkt.ttl <= 1:
            raise _Fail(f"{st.name}: TTL exceeded")
        if st.filter.active("FORWARD") and not self._filter(st, "FORWARD", pkt, dev.name, route.dev, state):
            raise _Fail(f"{st.name}: dropped by FORWARD")
        if route.dev not in st.devices:
            raise _Fail(f"{st.name}: route device {route.dev} is gone")
        pkt.ttl -= 1
        if conn is not None:
            self._ct_post(st, pkt, conn, is_reply, route.dev)
        self.send_route(st, route, pkt)

    def local_deliver(self, st: Any, pkt: Packet) -> None:
        if not pkt.reply:
            # icmp_echo: the reply goes from the (possibly DNATed) address the request was for.
            self.output(st, Packet(pkt.dst, pkt.src, pkt.ident, reply=True))
            return
        if st is not self.origin:
            raise _Fail(f"the echo reply ends at {st.name}, not at the sender")
        self.done = True

    # -- netfilter ----------------------------------------------------------------------------------
    def _filter(
        self, st: Any, chain: str, pkt: Packet, in_if: str | None, out_if: str | None, state: str
    ) -> bool:
        i = pkt.ident
        v = st.filter.verdict(chain, IPPROTO_ICMP, pkt.src, pkt.dst, i, i, in_if, out_if, state)
        target = v.target if isinstance(v, Rule) else v
        return bool(target == "ACCEPT")

    def _ct_pre(self, st: Any, pkt: Packet, in_if: str | None) -> tuple[Conn, bool, str]:
        """nf_conntrack_in and DNAT (as NetStack._ct_prerouting, for ICMP echo)."""
        t = pkt.tuple()
        found = self._ct(st).lookup(t)
        if found is None:
            conn = Conn(t, reverse(t))
            for r in st.ct.dnat:
                if r.matches(t[0], t[1], t[2], t[3], t[4], in_if, None, "NEW"):
                    to = r.to_addr if r.to_addr is not None else t[2]
                    conn.reply = (t[0], to, conn.reply[2], conn.reply[3], conn.reply[4])
                    pkt.dst = to
                    break
            return conn, False, "NEW"
        conn, is_reply = found
        if is_reply:
            conn.seen_reply = True
        want = reverse(conn.orig if is_reply else conn.reply)
        pkt.dst = want[2]
        return conn, is_reply, "ESTABLISHED" if conn.seen_reply else "NEW"

    def _ct_post(self, st: Any, pkt: Packet, conn: Conn, is_reply: bool, out_if: str) -> None:
        """SNAT/MASQUERADE for new connections, then the source rewrite (nf_nat_ipv4_out)."""
        t = pkt.tuple()
        if not conn.confirmed:
            for r in st.ct.snat:
                if r.matches(t[0], t[1], t[2], t[3], t[4], None, out_if, "NEW"):
                    snat = r.target == "SNAT" and r.to_addr is not None
                    new_src = r.to_addr if snat else st.primary_addr(out_if)
                    if new_src:
                        conn.reply = (t[0], conn.reply[1], new_src, t[3], t[3])
                    break
            self._confirm(st, conn)
        want = reverse(conn.orig if is_reply else conn.reply)
        pkt.src = want[1]

    def _ct(self, st: Any) -> Conntrack:
        ct = self.ct.get(id(st))
        if ct is None:
            ct = self.ct[id(st)] = Conntrack()
        return ct

    def _confirm(self, st: Any, conn: Conn) -> None:
        self._ct(st).confirm(conn)


# -- L2: where does a frame sent out of a device arrive? ------------------------------------------------
def l2_domain(dev: Any) -> list[tuple[Any, Any]]:
    """Every (stack, device) an untagged broadcast sent out of ``dev`` reaches (its broadcast
    domain as seen from ``dev``), following veth links, bridge ports with 802.1Q ingress and
    egress rules, and VLAN subinterfaces. In a loop-free bridged network a unicast frame to
    a learned MAC reaches its owner exactly when a broadcast does, so this answers both."""
    out: _Out = []
    seen: _Seen = set()
    _xmit(dev, None, out, seen)
    return out


def _xmit(dev: Any, tag: int | None, out: _Out, seen: _Seen) -> None:
    key = (id(dev), tag, "x")
    if key in seen or not dev.up:
        return
    seen.add(key)
    if isinstance(dev, VlanDev):
        if dev.parent is not None:
            _xmit(dev.parent, dev.vid, out, seen)
    elif isinstance(dev, Bridge):
        _bridge_in(dev, dev, tag, out, seen)  # br_dev_xmit: ingress on the local port
    elif dev.kind == "loopback":
        _arrive(dev, tag, out, seen)
    elif dev.link is not None and dev.link.loss < 1.0:
        _arrive(dev.link.other(dev), tag, out, seen)


def _arrive(dev: Any, tag: int | None, out: _Out, seen: _Seen) -> None:
    key = (id(dev), tag, "a")
    if key in seen or not dev.up:
        return
    seen.add(key)
    if dev.master is not None:
        _bridge_in(dev.master, dev, tag, out, seen)
    elif dev.vlans and not dev.l3 and tag is not None:
        sub = dev.vlans.get(tag)
        if sub is not None:
            _arrive(sub, None, out, seen)
    elif tag is None and dev.stack is not None:
        out.append((dev.stack, dev))


def _bridge_in(br: Bridge, in_dev: Any, tag: int | None, out: _Out, seen: _Seen) -> None:
    """br_handle_frame with 802.1Q ingress filtering, then flooding to the VLAN's ports."""
    if not br.up:
        return
    filtering = br.vlan_filtering
    vid = 0
    if filtering:
        port = br.ports[in_dev]
        vid = (tag or port.pvid or 0) if tag is not None else (port.pvid or 0)
        if vid == 0 or vid not in port.vids:
            return
    for p_dev, p in br.ports.items():
        if p_dev is in_dev or (filtering and vid not in p.vids):
            continue
        etag = (None if vid in p.untagged else vid) if filtering else tag
        if p_dev is br:
            if br.vlans and etag is not None:
                sub = br.vlans.get(etag)
                if sub is not None:
                    _arrive(sub, None, out, seen)
            elif etag is None and br.stack is not None:
                out.append((br.stack, br))
        else:
            _xmit(p_dev, etag, out, seen)


# -- the question -------------------------------------------------------------------------------------
def ping_reach(stack: Any, dst: int, *, ident: int = 32768, ttl: int = 64) -> Reach:
    """Would an ICMP echo from ``stack`` to ``dst`` be answered (on a fresh network)?"""
    w = _Walk(stack, ident, [stack.name], hops_last=stack)
    if stack.routes.lookup(dst) is None and dst not in stack.local and dst >> 24 != 127:
        return Reach(False, (), f"{stack.name}: network is unreachable (no route to {ntoa(dst)})")
    try:
        w.output(stack, Packet(0, dst, ident, ttl=ttl))
    except _Fail as e:
        return Reach(False, tuple(w.hops), str(e))
    return Reach(w.done, tuple(w.hops), "" if w.done else "no echo reply")
