"""IPv4 (RFC 791): header build/parse, the Internet checksum (RFC 1071) and TTL decrement with
an incremental checksum update (RFC 1624), as a router does per hop.

Addresses are 32-bit ints inside the simulator (fast longest-prefix match); :func:`aton` and
:func:`ntoa` convert from and to dotted quads.
"""

from __future__ import annotations

import struct
import sys
from array import array

import attrs

from virtlevels_vnet.frames.eth import FrameError

IPPROTO_ICMP = 1  # include/uapi/linux/in.h
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IP_DF = 0x4000
IP_MF = 0x2000
IP_OFFMASK = 0x1FFF
_HDR = struct.Struct("!BBHHHBBHII")
HLEN = 20
_SWAP = sys.byteorder == "little"


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum (RFC 1071): one's-complement sum of 16-bit words, complemented."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    words = array("H", bytes(data))
    s = sum(words)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    s = ~s & 0xFFFF
    # The sum of native-order words is the byte-swapped sum (RFC 1071 2(B)), so swap it back.
    return ((s >> 8) | ((s & 0xFF) << 8)) if _SWAP else s


def aton(text: str) -> int:
    """Dotted quad -> int; FrameError naming the text when it is not an IPv4 address."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        raise FrameError(f"bad IPv4 address {text!r}")
    vals = [int(p) for p in parts]
    if any(v > 255 for v in vals):
        raise FrameError(f"bad IPv4 address {text!r}: octet above 255")
    return (vals[0] << 24) | (vals[1] << 16) | (vals[2] << 8) | vals[3]


def ntoa(addr: int) -> str:
    return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"


def parse_cidr(text: str) -> tuple[int, int]:
    """``"10.0.0.1/24"`` -> (address, prefix length); a bare address is /32."""
    addr, _, plen = text.partition("/")
    n = 32
    if plen:
        if not plen.isdigit() or int(plen) > 32:
            raise FrameError(f"bad prefix length in {text!r}")
        n = int(plen)
    return aton(addr), n


def mask(plen: int) -> int:
    return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF


@attrs.frozen
class IPv4:
    tos: int
    total_len: int
    ident: int
    flags_frag: int
    ttl: int
    proto: int
    checksum_ok: bool
    src: int
    dst: int
    ihl: int

    @property
    def frag_offset(self) -> int:
        return (self.flags_frag & IP_OFFMASK) * 8

    @property
    def more_fragments(self) -> bool:
        return bool(self.flags_frag & IP_MF)


def build(
    src: int,
    dst: int,
    proto: int,
    payload: bytes,
    *,
    ttl: int = 64,
    ident: int = 0,
    tos: int = 0,
    df: bool = True,
) -> bytes:
    total = HLEN + len(payload)
    hdr = _HDR.pack(0x45, tos, total, ident & 0xFFFF, IP_DF if df else 0, ttl, proto, 0, src, dst)
    csum = checksum(hdr)
    return hdr[:10] + csum.to_bytes(2, "big") + hdr[12:] + payload


def parse(pkt: bytes, offset: int = 0) -> IPv4:
    if len(pkt) - offset < HLEN:
        raise FrameError("IPv4 packet shorter than its header")
    vihl, tos, total, ident, ff, ttl, proto, _c, src, dst = _HDR.unpack_from(pkt, offset)
    if vihl >> 4 != 4:
        raise FrameError(f"IP version {vihl >> 4} is not 4")
    ihl = (vihl & 15) * 4
    if ihl < HLEN or total < ihl or len(pkt) - offset < total:
        raise FrameError(f"IPv4 header length {ihl}/total length {total} inconsistent with {len(pkt)} bytes")
    ok = checksum(memoryview(pkt)[offset : offset + ihl]) == 0
    return IPv4(tos, total, ident, ff, ttl, proto, ok, src, dst, ihl)


def header_ok(pkt: bytes) -> bool:
    """Version 4, a sane length and a valid checksum (ip_rcv_core's checks)."""
    if len(pkt) < HLEN or pkt[0] >> 4 != 4:
        return False
    ihl = (pkt[0] & 15) * 4
    total = (pkt[2] << 8) | pkt[3]
    if ihl < HLEN or total < ihl or total > len(pkt):
        return False
    return checksum(pkt[:ihl]) == 0


def dec_ttl(pkt: bytes) -> bytes:
    """TTL - 1 with the checksum updated incrementally (RFC 1624 eqn. 3, as ip_decrease_ttl)."""
    b = bytearray(pkt)
    b[8] -= 1
    c = ((b[10] << 8) | b[11]) + 0x0100  # the TTL is the high byte of word 4
    c = (c & 0xFFFF) + (c >> 16)
    b[10], b[11] = c >> 8, c & 0xFF
    return bytes(b)


def set_addrs(pkt: bytes, src: int | None = None, dst: int | None = None) -> bytearray:
    """Rewrite source/destination (NAT) and recompute the header checksum."""
    b = bytearray(pkt)
    if src is not None:
        struct.pack_into("!I", b, 12, src)
    if dst is not None:
        struct.pack_into("!I", b, 16, dst)
    ihl = (b[0] & 15) * 4
    b[10:12] = b"\0\0"
    b[10:12] = checksum(b[:ihl]).to_bytes(2, "big")
    return b


def pseudo_header(src: int, dst: int, proto: int, length: int) -> bytes:
    """The TCP/UDP checksum pseudo-header (RFC 793 3.1, RFC 768)."""
    return struct.pack("!IIBBH", src, dst, 0, proto, length)
