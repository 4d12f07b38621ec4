"""UDP (RFC 768) with the pseudo-header checksum; a computed 0 is sent as 0xFFFF."""

from __future__ import annotations

import struct

import attrs

from virtlevels_vnet.frames.eth import FrameError
from virtlevels_vnet.frames.ipv4 import IPPROTO_UDP, checksum, pseudo_header

_HDR = struct.Struct("!HHHH")
HLEN = 8


@attrs.frozen
class Udp:
    sport: int
    dport: int
    length: int
    data: bytes
    checksum_ok: bool


def build(src: int, dst: int, sport: int, dport: int, data: bytes) -> bytes:
    length = HLEN + len(data)
    seg = _HDR.pack(sport, dport, length, 0) + data
    c = checksum(pseudo_header(src, dst, IPPROTO_UDP, length) + seg) or 0xFFFF
    return seg[:6] + c.to_bytes(2, "big") + seg[8:]


def parse(seg: bytes, src: int, dst: int) -> Udp:
    if len(seg) < HLEN:
        raise FrameError("UDP datagram shorter than its header")
    sport, dport, length, csum = _HDR.unpack_from(seg)
    if length < HLEN or length > len(seg):
        raise FrameError(f"UDP length {length} inconsistent with {len(seg)} bytes")
    ok = csum == 0 or checksum(pseudo_header(src, dst, IPPROTO_UDP, length) + bytes(seg[:length])) == 0
    return Udp(sport, dport, length, bytes(seg[HLEN:length]), ok)
