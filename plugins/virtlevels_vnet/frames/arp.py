"""ARP for IPv4 over Ethernet (RFC 826): a 28-byte payload of EtherType 0x0806."""

from __future__ import annotations

import struct

import attrs

from virtlevels_vnet.frames.eth import FrameError

ARPOP_REQUEST = 1  # include/uapi/linux/if_arp.h
ARPOP_REPLY = 2
ARPHRD_ETHER = 1
_ARP = struct.Struct("!HHBBH6sI6sI")


@attrs.frozen
class Arp:
    op: int
    sha: bytes
    spa: int  # IPv4 addresses as 32-bit ints (network order value)
    tha: bytes
    tpa: int


def build(op: int, sha: bytes, spa: int, tha: bytes, tpa: int) -> bytes:
    return _ARP.pack(ARPHRD_ETHER, 0x0800, 6, 4, op, sha, spa, tha, tpa)


def parse(data: bytes, offset: int = 0) -> Arp:
    if len(data) - offset < _ARP.size:
        raise FrameError("ARP packet truncated")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(data, offset)
    if htype != ARPHRD_ETHER or ptype != 0x0800 or hlen != 6 or plen != 4:
        raise FrameError(f"ARP for hardware {htype}/protocol {ptype:#06x} is not Ethernet/IPv4")
    return Arp(op, sha, spa, tha, tpa)
