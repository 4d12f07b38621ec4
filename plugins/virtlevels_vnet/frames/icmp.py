"""ICMP for IPv4 (RFC 792): echo request/reply and the errors a stack and routers send
(destination unreachable, time exceeded), which quote the offending IP header and 8 bytes."""

from __future__ import annotations

import struct

import attrs

from virtlevels_vnet.frames.eth import FrameError
from virtlevels_vnet.frames.ipv4 import checksum

ICMP_ECHOREPLY = 0  # include/uapi/linux/icmp.h
ICMP_DEST_UNREACH = 3
ICMP_ECHO = 8
ICMP_TIME_EXCEEDED = 11
# Destination unreachable codes (RFC 792, RFC 1122 3.2.2.1)
ICMP_NET_UNREACH = 0
ICMP_HOST_UNREACH = 1
ICMP_PROT_UNREACH = 2
ICMP_PORT_UNREACH = 3
ICMP_FRAG_NEEDED = 4
ICMP_PKT_FILTERED = 13  # RFC 1812 5.2.7.1: administratively prohibited (iptables REJECT default for ICMP)
ICMP_EXC_TTL = 0
_HDR = struct.Struct("!BBHHH")


@attrs.frozen
class Icmp:
    type: int
    code: int
    ident: int  # echo: identifier; errors: the unused word's high half
    seq: int  # echo: sequence number; frag-needed: next-hop MTU
    data: bytes
    checksum_ok: bool


def build(type_: int, code: int, ident: int, seq: int, data: bytes) -> bytes:
    msg = _HDR.pack(type_, code, 0, ident & 0xFFFF, seq & 0xFFFF) + data
    return msg[:2] + checksum(msg).to_bytes(2, "big") + msg[4:]


def echo(ident: int, seq: int, data: bytes = b"", reply: bool = False) -> bytes:
    return build(ICMP_ECHOREPLY if reply else ICMP_ECHO, 0, ident, seq, data)


def error(type_: int, code: int, offending: bytes, mtu: int = 0) -> bytes:
    """An ICMP error quoting the offending datagram's header and first 8 data bytes (RFC 792)."""
    ihl = (offending[0] & 15) * 4
    return build(type_, code, 0, mtu, bytes(offending[: ihl + 8]))


def parse(data: bytes, offset: int = 0) -> Icmp:
    if len(data) - offset < 8:
        raise FrameError("ICMP message shorter than 8 bytes")
    t, c, _s, ident, seq = _HDR.unpack_from(data, offset)
    return Icmp(t, c, ident, seq, bytes(data[offset + 8 :]), checksum(memoryview(data)[offset:]) == 0)
