"""A network namespace's IPv4 stack: interfaces and addresses, routes, the neighbour (ARP)
table, forwarding, netfilter (filter and nat) and the sockets' demultiplexing.

This fills the kernel's seam (:class:`virtlevels.kernel.ns.net.NetworkStack`): one
:class:`NetStack` per network namespace. Packets are bytes end to end; the receive path
(``receive`` -> ``ip_rcv`` -> ``ip_local_deliver`` / ``ip_forward``) and the send path
(``ip_output`` -> ``_send_route`` -> neighbour output) follow net/ipv4's structure and names.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import attrs

from virtlevels.kernel.errno import EADDRNOTAVAIL, EEXIST, EINVAL, ENODEV, KernelError
from virtlevels.kernel.ns.net import IFF_LOOPBACK, IFF_RUNNING, IFF_UP, InterfaceInfo
from virtlevels_vnet.context import NetContext
from virtlevels_vnet.devices.base import NetDev
from virtlevels_vnet.devices.loopback import Loopback
from virtlevels_vnet.filter import FilterTable, Rule, RuleError, parse_rule
from virtlevels_vnet.frames import arp as arpf
from virtlevels_vnet.frames import icmp as icmpf
from virtlevels_vnet.frames import tcp as tcpf
from virtlevels_vnet.frames import udp as udpf
from virtlevels_vnet.frames.eth import BROADCAST, ZERO_MAC
from virtlevels_vnet.frames.ipv4 import (
    IP_MF,
    IP_OFFMASK,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    FrameError,
    build,
    dec_ttl,
    header_ok,
    mask,
    ntoa,
    parse_cidr,
)
from virtlevels_vnet.nat import Conn, Conntrack, packet_tuple, reverse, rewrite
from virtlevels_vnet.route import Route, RouteTable

_IP_HDR = b"\x08\x00"
_ARP_HDR = b"\x08\x06"
_ADDRS = struct.Struct("!II")
ARP_RETRIES = 3  # neigh/mcast_solicit
ARP_RETRANS_NS = 1_000_000_000  # neigh/retrans_time_ms = 1000
DEFAULT_TTL = 64  # net.ipv4.ip_default_ttl

UdpHandler = Callable[[int, int, int, bytes], bool]  # (src, sport, dst, data) -> consumed


@attrs.define(eq=False)
class StackStats:
    ip_in: int = 0
    ip_forwarded: int = 0
    ip_delivered: int = 0
    ip_out: int = 0
    dropped_header: int = 0
    dropped_noroute: int = 0
    dropped_filter: int = 0
    dropped_ttl: int = 0
    dropped_frag: int = 0
    dropped_neigh: int = 0
    icmp_out_errors: int = 0


@attrs.define(eq=False)
class NetStack:
    """One network namespace's stack."""

    ctx: NetContext
    name: str = "net"
    initial: bool = False
    devices: dict[str, NetDev] = attrs.field(factory=dict)
    addrs: dict[str, list[tuple[int, int]]] = attrs.field(factory=dict)  # dev -> [(addr, plen)]
    local: dict[int, str] = attrs.field(factory=dict)  # local address -> dev
    routes: RouteTable = attrs.field(factory=RouteTable)
    neigh: dict[tuple[str, int], bytes] = attrs.field(factory=dict)  # (dev, ip) -> mac
    pending: dict[tuple[str, int], list[bytes]] = attrs.field(factory=dict)
    ip_forward: bool = False
    filter: FilterTable = attrs.field(factory=FilterTable)
    ct: Conntrack = attrs.field(factory=Conntrack)
    ct_on: bool = False
    udp_handlers: dict[int, UdpHandler] = attrs.field(factory=dict)
    socks: Any = None  # sockets.SocketTable
    stats: StackStats = attrs.field(factory=StackStats)
    node_id: str = ""
    closed: bool = False
    _next_ifindex: int = 1
    _ip_id: int = 0

    def __attrs_post_init__(self) -> None:
        from virtlevels_vnet.sockets import SocketTable

        self.socks = SocketTable(self)
        if not self.node_id:
            self.node_id = self.ctx.new_id("stack")
        self.ctx.graph_add(self.node_id, "network", name=self.name)
        lo = Loopback(self.ctx, "lo", mac=ZERO_MAC)
        self.add_device(lo)
        if self.initial:
            self.set_link_up("lo", True)

    # -- the kernel seam (NetworkStack) --------------------------------------------------------------
    def interfaces(self) -> list[InterfaceInfo]:
        out = []
        for dev in sorted(self.devices.values(), key=lambda d: d.ifindex):
            flags = (IFF_UP | IFF_RUNNING if dev.up else 0) | (IFF_LOOPBACK if dev.kind == "loopback" else 0)
            addrs = tuple(f"{ntoa(a)}/{p}" for a, p in self.addrs.get(dev.name, ()))
            mac = ":".join(f"{b:02x}" for b in dev.mac) if dev.mac else "00:00:00:00:00:00"
            out.append(InterfaceInfo(dev.ifindex, dev.name, flags, dev.mtu, addrs, mac))
        return out

    def set_link_up(self, name: str, up: bool) -> None:
        dev = self.dev(name)
        dev.up = up
        if dev.kind == "loopback":
            # Bringing lo up gives it 127.0.0.1/8 (as the kernel's inetdev does for loopback).
            if up and not self.addrs.get("lo"):
                self.addr_add("lo", "127.0.0.1/8")
        if not up:
            for key in [k for k in self.neigh if k[0] == name]:
                del self.neigh[key]

    def close(self) -> None:
        """The namespace is gone: its devices go; a veth's peer in another namespace goes too."""
        if self.closed:
            return
        self.closed = True
        self.socks.close_all()
        for name in list(self.devices):
            if name in self.devices:
                self.remove_device(name)
        g = self.ctx.world.graph
        if self.node_id in g:
            g.remove(self.node_id)

    # -- devices ------------------------------------------------------------------------------------
    def dev(self, name: str) -> NetDev:
        d = self.devices.get(name)
        if d is None:
            raise KernelError(ENODEV, f"{self.name}: no interface {name!r}")
        return d

    def add_device(self, dev: NetDev) -> NetDev:
        if dev.name in self.devices:
            raise KernelError(EEXIST, f"{self.name}: interface {dev.name!r} already exists")
        if dev.stack is not None and dev.stack is not self:
            dev.stack.detach_device(dev.name)
        dev.stack = self
        dev.ifindex = self._next_ifindex
        self._next_ifindex += 1
        self.devices[dev.name] = dev
        g = self.ctx.world.graph
        if dev.node_id in g and self.node_id in g:
            g.link(dev.node_id, self.node_id, "member_of")
        return dev

    def detach_device(self, name: str) -> NetDev:
        """Take a device out of this namespace without destroying it (``ip link set DEV netns X``)."""
        dev = self.dev(name)
        self._forget(name)
        dev.up = False
        dev.stack = None
        del self.devices[name]
        self.ctx.world.graph.unlink(dev.node_id, self.node_id, "member_of")
        return dev

    def _forget(self, name: str) -> None:
        for a, _p in self.addrs.pop(name, []):
            self.local.pop(a, None)
        self.routes.delete_dev(name)
        for key in [k for k in self.neigh if k[0] == name]:
            del self.neigh[key]
        for key in [k for k in self.pending if k[0] == name]:
            del self.pending[key]

    def remove_device(self, name: str) -> None:
        """``ip link del NAME``."""
        dev = self.detach_device(name)
        if dev.master is not None:
            dev.master.del_port(dev)
        dev.destroy()

    def move_device(self, name: str, other: NetStack, new_name: str | None = None) -> NetDev:
        dev = self.detach_device(name)
        if new_name:
            dev.name = new_name
        try:
            return other.add_device(dev)
        except KernelError:
            dev.name = name
            self.add_device(dev)
            raise

    # -- addresses and routes --------------------------------------------------------------------------
    def addr_add(self, dev: str, cidr: str) -> None:
        """``ip addr add CIDR dev DEV``: the address, and the connected route (proto kernel)."""
        d = self.dev(dev)
        try:
            addr, plen = parse_cidr(cidr)
        except FrameError as e:
            raise KernelError(EINVAL, f"{self.name}: {e}") from None
        if addr in self.local:
            raise KernelError(EEXIST, f"{self.name}: address {ntoa(addr)} already on {self.local[addr]}")
        self.addrs.setdefault(d.name, []).append((addr, plen))
        self.local[addr] = d.name
        if plen < 32 and d.kind != "loopback":
            net = addr & mask(plen)
            if self.routes.lookup(net) is None or self.routes.lookup(net).plen != plen:  # type: ignore[union-attr]
                self.routes.add(Route(net, plen, d.name, src=addr, proto="kernel"))

    def addr_del(self, dev: str, cidr: str) -> None:
        try:
            addr, plen = parse_cidr(cidr)
        except FrameError as e:
            raise KernelError(EINVAL, f"{self.name}: {e}") from None
        lst = self.addrs.get(dev, [])
        if (addr, plen) not in lst:
            raise KernelError(EADDRNOTAVAIL, f"{self.name}: {cidr} is not on {dev}")
        lst.remove((addr, plen))
        self.local.pop(addr, None)
        for r in self.routes.routes():
            if r.proto == "kernel" and r.dev == dev and r.src == addr:
                self.routes.delete(r.dst, r.plen)

    def route_add(
        self, dst: str, *, via: str | None = None, dev: str | None = None, metric: int = 0
    ) -> Route:
        """``ip route add DST [via GW] [dev DEV]``; the device is found from the gateway if not given."""
        try:
            net, plen = (0, 0) if dst == "default" else parse_cidr(dst)
            gw = parse_cidr(via)[0] if via else 0
        except FrameError as e:
            raise KernelError(EINVAL, f"{self.name}: route {dst}: {e}") from None
        if dev is None:
            if not gw:
                raise KernelError(EINVAL, f"{self.name}: route {dst} needs 'via' or 'dev'")
            r = self.routes.lookup(gw)
            if r is None or r.gw:
                raise KernelError(
                    101, f"{self.name}: route {dst}: gateway {via} is not on a connected network"
                )
            dev = r.dev
        self.dev(dev)
        route = Route(net, plen, dev, gw=gw, metric=metric)
        self.routes.add(route)
        return route

    def primary_addr(self, dev: str) -> int:
        lst = self.addrs.get(dev)
        return lst[0][0] if lst else 0

    def source_for(self, dst: int) -> int:
        """The source address a local packet to ``dst`` takes (inet_select_addr)."""
        if dst in self.local:
            return dst
        r = self.routes.lookup(dst)
        if r is None:
            return 0
        return r.src or self.primary_addr(r.dev) or next(iter(self.local), 0)

    def add_rule(self, rule: str | Rule) -> Rule:
        """``iptables [-t nat] -A ...``: filter rules and NAT rules (DNAT, SNAT, MASQUERADE)."""
        r = parse_rule(rule) if isinstance(rule, str) else rule
        if r.target in ("DNAT", "SNAT", "MASQUERADE"):
            (self.ct.dnat if r.target == "DNAT" else self.ct.snat).append(r)
        else:
            if r.chain not in self.filter.chains:
                raise RuleError(f"rule {r.text!r}: {r.chain} is not a filter chain")
            self.filter.append(r)
        self.ct_on = bool(self.ct.dnat or self.ct.snat or self.filter.uses_state())
        return r

    def set_policy(self, chain: str, target: str) -> None:
        self.filter.set_policy(chain, target)

    def next_ip_id(self) -> int:
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        return self._ip_id

    # -- receive ------------------------------------------------------------------------------------
    def receive(self, dev: NetDev, frame: bytes) -> None:
        """A frame for this namespace arrived on ``dev`` (__netif_receive_skb)."""
        if frame[12] == 8 and frame[13] == 0:
            dst = frame[0:6]
            if dst != dev.mac and not dst[0] & 1 and dev.kind != "loopback":
                return  # PACKET_OTHERHOST
            self.ip_rcv(dev, frame[14:])
        elif frame[12] == 8 and frame[13] == 6:
            self.arp_rcv(dev, frame)

    def arp_rcv(self, dev: NetDev, frame: bytes) -> None:
        """RFC 826 receive: learn the sender, answer requests for a local address (arp_ignore=0)."""
        try:
            a = arpf.parse(frame, 14)
        except FrameError:
            return
        key = (dev.name, a.spa)
        if a.spa and (key in self.neigh or a.tpa in self.local):
            self.neigh[key] = a.sha
        elif a.op == arpf.ARPOP_REPLY and key in self.pending:
            self.neigh[key] = a.sha
        if key in self.neigh and key in self.pending:
            mac = self.neigh[key]
            for pkt in self.pending.pop(key):
                dev.xmit(mac + dev.mac + _IP_HDR + pkt)
        if a.op == arpf.ARPOP_REQUEST and a.tpa in self.local:
            reply = arpf.build(arpf.ARPOP_REPLY, dev.mac, a.tpa, a.sha, a.spa)
            dev.xmit(a.sha + dev.mac + _ARP_HDR + reply)

    def ip_rcv(self, dev: NetDev, pkt: bytes) -> None:
        """ip_rcv: header checks, PREROUTING (conntrack, DNAT), then local delivery or forwarding."""
        st = self.stats
        st.ip_in += 1
        if not header_ok(pkt):
            st.dropped_header += 1
            return
        total = (pkt[2] << 8) | pkt[3]
        if total < len(pkt):
            pkt = pkt[:total]
        if ((pkt[6] << 8) | pkt[7]) & (IP_MF | IP_OFFMASK):
            st.dropped_frag += 1  # reassembly is not modelled; fragments are dropped
            return
        conn: Conn | None = None
        is_reply = False
        state = "NEW"
        if self.ct_on:
            conn, is_reply, state, pkt = self._ct_prerouting(pkt, dev.name)
        dst = _ADDRS.unpack_from(pkt, 12)[1]
        if dst in self.local or dst == 0xFFFFFFFF or self._is_bcast(dst):
            if self.filter.active("INPUT") and not self._filter("INPUT", pkt, dev.name, None, state):
                return
            if conn is not None:
                self.ct.confirm(conn)
            self.ip_local_deliver(dev, pkt)
        elif self.ip_forward:
            self.ip_forward_pkt(dev, pkt, conn, is_reply, state)
        else:
            st.dropped_noroute += 1

    def _is_bcast(self, dst: int) -> bool:
        for lst in self.addrs.values():
            for a, p in lst:
                if p < 31 and dst == (a | (~mask(p) & 0xFFFFFFFF)):
                    return True
        return False

    def ip_forward_pkt(self, dev: NetDev, pkt: bytes, conn: Conn | None, is_reply: bool, state: str) -> None:
        """ip_forward (RFC 1812 5.2): TTL, route, FORWARD chain, POSTROUTING, out."""
        st = self.stats
        dst = _ADDRS.unpack_from(pkt, 12)[1]
        route = self.routes.lookup(dst)
        if route is None:
            st.dropped_noroute += 1
            self.icmp_error(pkt, icmpf.ICMP_DEST_UNREACH, icmpf.ICMP_NET_UNREACH)
            return
        if pkt[8] <= 1:
            st.dropped_ttl += 1
            self.icmp_error(pkt, icmpf.ICMP_TIME_EXCEEDED, icmpf.ICMP_EXC_TTL)
            return
        if self.filter.active("FORWARD") and not self._filter("FORWARD", pkt, dev.name, route.dev, state):
            return
        out = self.devices.get(route.dev)
        if out is None:
            return
        if len(pkt) > out.mtu:
            # RFC 1191: DF set (we always refuse to fragment): "fragmentation needed" with the MTU.
            st.dropped_frag += 1
            self.icmp_error(pkt, icmpf.ICMP_DEST_UNREACH, icmpf.ICMP_FRAG_NEEDED, out.mtu)
            return
        pkt = dec_ttl(pkt)
        if conn is not None:
            pkt = self._ct_postrouting(pkt, conn, is_reply, route.dev)
        st.ip_forwarded += 1
        self._send_route(route, pkt, dst)

    def ip_local_deliver(self, dev: NetDev, pkt: bytes) -> None:
        self.stats.ip_delivered += 1
        ihl = (pkt[0] & 15) * 4
        proto = pkt[9]
        src, dst = _ADDRS.unpack_from(pkt, 12)
        if proto == IPPROTO_ICMP:
            self._icmp_rcv(pkt, ihl, src, dst)
        elif proto == IPPROTO_UDP:
            try:
                u = udpf.parse(pkt[ihl:], src, dst)
            except FrameError:
                return
            if not u.checksum_ok:
                return
            h = self.udp_handlers.get(u.dport)
            if h is not None and h(src, u.sport, dst, u.data):
                return
            if not self.socks.udp_rcv(src, u.sport, dst, u.dport, u.data) and dst in self.local:
                self.icmp_error(pkt, icmpf.ICMP_DEST_UNREACH, icmpf.ICMP_PORT_UNREACH)
        elif proto == IPPROTO_TCP:
            try:
                t = tcpf.parse(pkt[ihl:], src, dst)
            except FrameError:
                return
            if t.checksum_ok:
                self.socks.tcp_rcv(src, dst, t)
        elif dst in self.local:
            self.icmp_error(pkt, icmpf.ICMP_DEST_UNREACH, icmpf.ICMP_PROT_UNREACH)

    def _icmp_rcv(self, pkt: bytes, ihl: int, src: int, dst: int) -> None:
        try:
            m = icmpf.parse(pkt, ihl)
        except FrameError:
            return
        if not m.checksum_ok:
            return
        if m.type == icmpf.ICMP_ECHO:
            if dst in self.local:  # no replies to broadcast echo (icmp_echo_ignore_broadcasts=1)
                self.ip_output(dst, src, IPPROTO_ICMP, icmpf.echo(m.ident, m.seq, m.data, reply=True))
        elif m.type == icmpf.ICMP_ECHOREPLY:
            self.socks.icmp_echo_rcv(src, m.ident, m.seq, m.data, pkt[8])
        elif m.type in (icmpf.ICMP_DEST_UNREACH, icmpf.ICMP_TIME_EXCEEDED):
            self.socks.icmp_error_rcv(src, m.type, m.code, m.data)

    # -- send ---------------------------------------------------------------------------------------
    def ip_output(
        self, src: int, dst: int, proto: int, payload: bytes, *, ttl: int = DEFAULT_TTL, tos: int = 0
    ) -> int:
        """Send a locally generated datagram (ip_queue_xmit); returns 0 or a negative errno."""
        route = self._local_route(dst)
        if route is None:
            self.stats.dropped_noroute += 1
            return -101  # ENETUNREACH
        if not src:
            src = self.source_for(dst)
        pkt = build(src, dst, proto, payload, ttl=ttl, ident=self.next_ip_id(), tos=tos)
        if self.filter.active("OUTPUT") and not self._filter(
            "OUTPUT", pkt, None, route.dev, "NEW", local=True
        ):
            return -1  # EPERM, as a DROP in OUTPUT gives the sender
        if self.ct_on:
            conn, is_reply, _state, pkt = self._ct_prerouting(pkt, None)
            if conn is not None:
                pkt = self._ct_postrouting(pkt, conn, is_reply, route.dev)
        self.stats.ip_out += 1
        self._send_route(route, pkt, dst)
        return 0

    def _local_route(self, dst: int) -> Route | None:
        if dst in self.local or (dst >> 24) == 127:
            return Route(dst, 32, "lo", proto="local")
        return self.routes.lookup(dst)

    def udp_output(self, src: int, dst: int, sport: int, dport: int, data: bytes) -> int:
        if not src:
            src = self.source_for(dst)
        return self.ip_output(src, dst, IPPROTO_UDP, udpf.build(src, dst, sport, dport, data))

    def _send_route(self, route: Route, pkt: bytes, dst: int) -> None:
        dev = self.devices.get(route.dev)
        if dev is None or not dev.up:
            self.stats.dropped_noroute += 1
            return
        if dev.l3:
            dev.xmit(pkt)
            return
        if dev.kind == "loopback":
            dev.xmit(ZERO_MAC + ZERO_MAC + _IP_HDR + pkt)
            return
        nexthop = route.gw or dst
        if nexthop == 0xFFFFFFFF or (
            route.plen < 31 and not route.gw and nexthop == route.dst | (~mask(route.plen) & 0xFFFFFFFF)
        ):
            dev.xmit(BROADCAST + dev.mac + _IP_HDR + pkt)
            return
        key = (dev.name, nexthop)
        mac = self.neigh.get(key)
        if mac is not None:
            dev.xmit(mac + dev.mac + _IP_HDR + pkt)
            return
        q = self.pending.get(key)
        if q is not None:
            if len(q) < 101:  # neigh/unres_qlen_bytes, roughly
                q.append(pkt)
            return
        self.pending[key] = [pkt]
        self._arp_solicit(dev, nexthop, 0)

    def _arp_solicit(self, dev: NetDev, ip: int, tries: int) -> None:
        key = (dev.name, ip)
        if key not in self.pending:
            return
        if tries >= ARP_RETRIES:
            # Resolution failed: the queued packets get "host unreachable" (neigh_invalidate).
            self.stats.dropped_neigh += len(self.pending[key])
            for pkt in self.pending.pop(key):
                self.icmp_error(pkt, icmpf.ICMP_DEST_UNREACH, icmpf.ICMP_HOST_UNREACH)
            return
        src = self.primary_addr(dev.name)
        req = arpf.build(arpf.ARPOP_REQUEST, dev.mac, src, ZERO_MAC, ip)
        dev.xmit(BROADCAST + dev.mac + _ARP_HDR + req)
        self.ctx.schedule_ns(ARP_RETRANS_NS, lambda: self._arp_solicit(dev, ip, tries + 1))

    def icmp_error(self, pkt: bytes, type_: int, code: int, mtu: int = 0) -> None:
        """icmp_send, with RFC 1122 3.2.2's exceptions: never about an ICMP error, a broadcast,
        or a packet from an address that is not a unicast host."""
        src, dst = _ADDRS.unpack_from(pkt, 12)
        if dst == 0xFFFFFFFF or src == 0 or src >> 28 >= 14:
            return
        ihl = (pkt[0] & 15) * 4
        if (
            pkt[9] == IPPROTO_ICMP
            and len(pkt) > ihl
            and pkt[ihl] not in (icmpf.ICMP_ECHO, icmpf.ICMP_ECHOREPLY)
        ):
            return
        self.stats.icmp_out_errors += 1
        if src in self.local:
            # Our own packet: report to the local socket directly (the error would loop back).
            self.socks.icmp_error_rcv(src, type_, code, bytes(pkt[: ihl + 8]))
            return
        me = self.source_for(src)
        self.ip_output(me, src, IPPROTO_ICMP, icmpf.error(type_, code, pkt, mtu))

    # -- netfilter ----------------------------------------------------------------------------------
    def _ports(self, pkt: bytes) -> tuple[int, int]:
        ihl = (pkt[0] & 15) * 4
        if pkt[9] in (IPPROTO_TCP, IPPROTO_UDP) and len(pkt) >= ihl + 4:
            return struct.unpack_from("!HH", pkt, ihl)  # type: ignore[return-value]
        return 0, 0

    def _filter(
        self, chain: str, pkt: bytes, in_if: str | None, out_if: str | None, state: str, local: bool = False
    ) -> bool:
        src, dst = _ADDRS.unpack_from(pkt, 12)
        sport, dport = self._ports(pkt)
        v = self.filter.verdict(chain, pkt[9], src, dst, sport, dport, in_if, out_if, state)
        target = v if isinstance(v, str) else v.target
        if target == "ACCEPT":
            return True
        self.stats.dropped_filter += 1
        if target == "REJECT" and isinstance(v, Rule) and not local:
            if v.reject_with == -1 and pkt[9] == IPPROTO_TCP:
                self._send_reset(pkt)
            else:
                self.icmp_error(pkt, icmpf.ICMP_DEST_UNREACH, max(v.reject_with, 0))
        elif target == "REJECT" and local:
            self.socks.icmp_error_rcv(
                src, icmpf.ICMP_DEST_UNREACH, icmpf.ICMP_PORT_UNREACH, bytes(pkt[: (pkt[0] & 15) * 4 + 8])
            )
        return False

    def _send_reset(self, pkt: bytes) -> None:
        ihl = (pkt[0] & 15) * 4
        src, dst = _ADDRS.unpack_from(pkt, 12)
        t = tcpf.parse(pkt[ihl:], src, dst)
        if t.flags & tcpf.RST:
            return
        seq = t.ack if t.flags & tcpf.ACK else 0
        ack = t.seq + len(t.data) + (1 if t.flags & tcpf.SYN else 0) + (1 if t.flags & tcpf.FIN else 0)
        seg = tcpf.build(dst, src, t.dport, t.sport, seq, ack, tcpf.RST | tcpf.ACK, 0)
        self.ip_output(dst, src, IPPROTO_TCP, seg)

    def _ct_prerouting(self, pkt: bytes, in_if: str | None) -> tuple[Conn | None, bool, str, bytes]:
        """Conntrack and destination NAT (nf_conntrack_in, nf_nat_ipv4_pre_routing)."""
        t = packet_tuple(pkt)
        if t is None:
            if pkt[9] == IPPROTO_ICMP:
                return None, False, self._icmp_related(pkt), pkt
            return None, False, "INVALID", pkt
        found = self.ct.lookup(t)
        if found is None:
            conn = self.ct.new(t)
            for r in self.ct.dnat:
                if r.matches(t[0], t[1], t[2], t[3], t[4], in_if, None, "NEW"):
                    to = r.to_addr if r.to_addr is not None else t[2]
                    top = r.to_port if r.to_port is not None else t[4]
                    conn.reply = (t[0], to, conn.reply[2], top, conn.reply[4])
                    pkt = rewrite(pkt, t[1], to, t[3], top)
                    break
            return conn, False, "NEW", pkt
        conn, is_reply = found
        if is_reply:
            conn.seen_reply = True
        state = "ESTABLISHED" if conn.seen_reply else "NEW"
        # Destination rewrite: towards what the other direction's tuple says.
        want = reverse(conn.orig if is_reply else conn.reply)
        if want[2] != t[2] or want[4] != t[4]:
            pkt = rewrite(pkt, t[1], want[2], t[3], want[4])
        return conn, is_reply, state, pkt

    def _ct_postrouting(self, pkt: bytes, conn: Conn, is_reply: bool, out_if: str) -> bytes:
        """Source NAT (nf_nat_ipv4_out): new connections consult SNAT/MASQUERADE, then confirm."""
        # The packet's tuple comes from the connection, not a re-parse (as nf_nat_packet uses
        # ct->tuplehash): its own direction's source, and the destination prerouting gave it.
        cur, other = (conn.reply, conn.orig) if is_reply else (conn.orig, conn.reply)
        t = (cur[0], cur[1], other[1], cur[3], other[3])
        if not conn.confirmed:
            for r in self.ct.snat:
                if r.matches(t[0], t[1], t[2], t[3], t[4], None, out_if, "NEW"):
                    new_src = (
                        r.to_addr
                        if r.target == "SNAT" and r.to_addr is not None
                        else self.primary_addr(out_if)
                    )
                    if not new_src:
                        break
                    port = t[3]  # ICMP keeps its identifier (both "ports" of its tuple)
                    if t[0] != IPPROTO_ICMP:
                        port = self.ct.free_port(t[0], new_src, t[3], conn.reply[1], conn.reply[3])
                    conn.reply = (t[0], conn.reply[1], new_src, conn.reply[3], port)
                    break
            self.ct.confirm(conn)
        want = reverse(conn.orig if is_reply else conn.reply)
        if want[1] != t[1] or want[3] != t[3]:
            pkt = rewrite(pkt, want[1], t[2], want[3], t[4])
        return pkt

    def _icmp_related(self, pkt: bytes) -> str:
        """An ICMP error quoting a tracked connection's packet is RELATED (and is un-NATed)."""
        ihl = (pkt[0] & 15) * 4
        inner = pkt[ihl + 8 :]
        if len(inner) < 28:
            return "INVALID"
        t = packet_tuple(inner)
        if t is None:
            return "INVALID"
        return "RELATED" if self.ct.lookup(t) is not None else "INVALID"
