"""Connection tracking and NAT (nf_conntrack, nf_nat; iptables -t nat).

A connection is an *original* tuple and a *reply* tuple ``(proto, src, dst, sport, dport)``
(ICMP echo uses its identifier as both ports, as conntrack's icmp tuple does). DNAT rules in
PREROUTING decide the reply tuple's source on the first packet; SNAT/MASQUERADE in POSTROUTING
its destination. Later packets in either direction are rewritten from the connection alone:
destinations before routing, sources after, as netfilter's hooks do. State is NEW until a
reply is seen, then ESTABLISHED; ICMP errors quoting a tracked packet are RELATED.
"""

from __future__ import annotations

import struct

import attrs

from virtlevels_vnet.filter import Rule
from virtlevels_vnet.frames import icmp as icmpf
from virtlevels_vnet.frames.ipv4 import (
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    checksum,
    pseudo_header,
    set_addrs,
)

Tuple = tuple[int, int, int, int, int]  # proto, src, dst, sport, dport
EPHEMERAL = (32768, 60999)  # net.ipv4.ip_local_port_range default


@attrs.define(eq=False)
class Conn:
    orig: Tuple
    reply: Tuple
    seen_reply: bool = False
    confirmed: bool = False


def reverse(t: Tuple) -> Tuple:
    return (t[0], t[2], t[1], t[4], t[3])


def packet_tuple(pkt: bytes) -> Tuple | None:
    """The conntrack tuple of an IPv4 packet, None for protocols not tracked (or ICMP errors)."""
    ihl = (pkt[0] & 15) * 4
    proto = pkt[9]
    src, dst = struct.unpack_from("!II", pkt, 12)
    if proto in (IPPROTO_TCP, IPPROTO_UDP):
        if len(pkt) < ihl + 4:
            return None
        sp, dp = struct.unpack_from("!HH", pkt, ihl)
        return (proto, src, dst, sp, dp)
    if proto == IPPROTO_ICMP and len(pkt) >= ihl + 8 and pkt[ihl] in (icmpf.ICMP_ECHO, icmpf.ICMP_ECHOREPLY):
        ident = (pkt[ihl + 4] << 8) | pkt[ihl + 5]
        return (proto, src, dst, ident, ident)
    return None


def rewrite(pkt: bytes, src: int, dst: int, sport: int, dport: int) -> bytes:
    """The packet with new addresses/ports and every checksum recomputed (nf_nat_manip_pkt)."""
    b = set_addrs(pkt, src, dst)
    ihl = (b[0] & 15) * 4
    proto = b[9]
    total = (b[2] << 8) | b[3]
    if proto in (IPPROTO_TCP, IPPROTO_UDP):
        struct.pack_into("!HH", b, ihl, sport, dport)
        off = ihl + (16 if proto == IPPROTO_TCP else 6)
        b[off : off + 2] = b"\0\0"
        c = checksum(pseudo_header(src, dst, proto, total - ihl) + bytes(b[ihl:total]))
        if proto == IPPROTO_UDP and c == 0:
            c = 0xFFFF
        b[off : off + 2] = c.to_bytes(2, "big")
    elif proto == IPPROTO_ICMP:
        struct.pack_into("!H", b, ihl + 4, sport)
        b[ihl + 2 : ihl + 4] = b"\0\0"
        b[ihl + 2 : ihl + 4] = checksum(b[ihl:total]).to_bytes(2, "big")
    return bytes(b)


@attrs.define(eq=False)
class Conntrack:
    table: dict[Tuple, tuple[Conn, bool]] = attrs.field(factory=dict)  # tuple -> (conn, is_reply)
    dnat: list[Rule] = attrs.field(factory=list)
    snat: list[Rule] = attrs.field(factory=list)

    def lookup(self, t: Tuple) -> tuple[Conn, bool] | None:
        return self.table.get(t)

    def new(self, t: Tuple) -> Conn:
        return Conn(t, reverse(t))

    def confirm(self, c: Conn) -> None:
        """Insert a new connection (__nf_conntrack_confirm) once its NAT is decided."""
        if not c.confirmed:
            c.confirmed = True
            self.table[c.orig] = (c, False)
            self.table[c.reply] = (c, True)

    def free_port(self, proto: int, addr: int, port: int, peer: int, peer_port: int) -> int:
        """A source port that makes the reply tuple unique (nf_nat_used_tuple): the original if free."""
        lo, hi = EPHEMERAL
        cand = port
        for _ in range(hi - lo + 2):
            if (proto, peer, addr, peer_port, cand) not in self.table:
                return cand
            cand = lo if cand >= hi or cand < lo else cand + 1
        return port
