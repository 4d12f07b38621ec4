"""TCP segments (RFC 793 3.1; RFC 9293): header with sequence/acknowledgement numbers, flags,
window, the MSS option on SYN, and the pseudo-header checksum."""

from __future__ import annotations

import struct

import attrs

from virtlevels_vnet.frames.eth import FrameError
from virtlevels_vnet.frames.ipv4 import IPPROTO_TCP, checksum, pseudo_header

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_HDR = struct.Struct("!HHIIBBHHH")
HLEN = 20
TCPOPT_MSS = 2


@attrs.frozen
class Tcp:
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    data: bytes
    mss: int | None
    checksum_ok: bool


def build(
    src: int,
    dst: int,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    data: bytes = b"",
    mss: int | None = None,
) -> bytes:
    opts = struct.pack("!BBH", TCPOPT_MSS, 4, mss) if mss is not None else b""
    off = (HLEN + len(opts)) // 4
    seg = (
        _HDR.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off << 4, flags, window, 0, 0)
        + opts
        + data
    )
    c = checksum(pseudo_header(src, dst, IPPROTO_TCP, len(seg)) + seg)
    return seg[:16] + c.to_bytes(2, "big") + seg[18:]


def parse(seg: bytes, src: int, dst: int) -> Tcp:
    if len(seg) < HLEN:
        raise FrameError("TCP segment shorter than its header")
    sport, dport, seq, ack, off, flags, window, _c, _u = _HDR.unpack_from(seg)
    doff = (off >> 4) * 4
    if doff < HLEN or doff > len(seg):
        raise FrameError(f"TCP data offset {doff} inconsistent with {len(seg)} bytes")
    mss = None
    i = HLEN
    while i < doff:  # options (RFC 793 3.1): EOL, NOP, then kind-length-value
        kind = seg[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= doff or seg[i + 1] < 2:
            break
        if kind == TCPOPT_MSS and seg[i + 1] == 4:
            mss = (seg[i + 2] << 8) | seg[i + 3]
        i += seg[i + 1]
    ok = checksum(pseudo_header(src, dst, IPPROTO_TCP, len(seg)) + bytes(seg)) == 0
    return Tcp(sport, dport, seq, ack, flags & 0x3F, window, bytes(seg[doff:]), mss, ok)


def flag_names(flags: int) -> str:
    return "".join(n for bit, n in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"))
                   if flags & bit)  # fmt: skip
