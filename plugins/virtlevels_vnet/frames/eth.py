"""Ethernet II frames and IEEE 802.1Q tags.

A frame is ``dst(6) src(6) ethertype(2) payload``; an 802.1Q tag inserts ``0x8100 TCI(2)``
after the source address (IEEE 802.1Q-2018 9.6: PCP 3 bits, DEI 1, VID 12). No FCS is kept,
as Linux and pcap (LINKTYPE_ETHERNET) do not show it.
"""

from __future__ import annotations

import struct

import attrs

ETH_P_IP = 0x0800  # include/uapi/linux/if_ether.h
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_HLEN = 14
VLAN_HLEN = 4
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6

_HDR = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")


class FrameError(ValueError):
    """A frame or address that cannot be decoded; the message says which field."""


def parse_mac(text: str) -> bytes:
    """``"02:00:00:00:00:01"`` -> 6 bytes; FrameError naming the text if it is not a MAC."""
    parts = text.split(":")
    if len(parts) != 6:
        raise FrameError(f"bad MAC address {text!r}: expected six ':'-separated octets")
    try:
        out = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise FrameError(f"bad MAC address {text!r}: octets must be hex") from None
    if any(len(p) not in (1, 2) for p in parts):
        raise FrameError(f"bad MAC address {text!r}")
    return out


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def is_multicast(mac: bytes) -> bool:
    """The I/G bit (IEEE 802-2014 8.2): group addresses, broadcast included."""
    return bool(mac[0] & 1)


@attrs.frozen
class EthHeader:
    dst: bytes
    src: bytes
    ethertype: int
    vid: int | None  # 802.1Q VLAN id, None if untagged
    pcp: int
    payload_offset: int


def build(
    dst: bytes, src: bytes, ethertype: int, payload: bytes, vid: int | None = None, pcp: int = 0
) -> bytes:
    if vid is None:
        return _HDR.pack(dst, src, ethertype) + payload
    return _HDR.pack(dst, src, ETH_P_8021Q) + _TAG.pack((pcp << 13) | (vid & 0xFFF), ethertype) + payload


def parse(frame: bytes) -> EthHeader:
    if len(frame) < ETH_HLEN:
        raise FrameError(f"frame of {len(frame)} bytes is shorter than an Ethernet header")
    dst, src, etype = _HDR.unpack_from(frame)
    if etype == ETH_P_8021Q:
        if len(frame) < ETH_HLEN + VLAN_HLEN:
            raise FrameError("802.1Q frame truncated in its tag")
        tci, inner = _TAG.unpack_from(frame, ETH_HLEN)
        return EthHeader(dst, src, inner, tci & 0xFFF, tci >> 13, ETH_HLEN + VLAN_HLEN)
    return EthHeader(dst, src, etype, None, 0, ETH_HLEN)


def ethertype(frame: bytes) -> int:
    return (frame[12] << 8) | frame[13]


def vlan_id(frame: bytes) -> int | None:
    """The VID of a tagged frame, None if untagged (the hot path: no object is made)."""
    if frame[12] == 0x81 and frame[13] == 0x00:
        return ((frame[14] << 8) | frame[15]) & 0xFFF
    return None


def push_vlan(frame: bytes, vid: int, pcp: int = 0) -> bytes:
    """Insert an 802.1Q tag (what a trunk port or a VLAN subinterface does on egress)."""
    return frame[:12] + _TAG.pack(ETH_P_8021Q, (pcp << 13) | (vid & 0xFFF)) + frame[12:]


def pop_vlan(frame: bytes) -> bytes:
    """Remove the outer 802.1Q tag."""
    return frame[:12] + frame[16:]
