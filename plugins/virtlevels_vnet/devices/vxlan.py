"""VXLAN (RFC 7348): Ethernet frames in UDP (port 4789) between VTEPs, one L2 segment per
24-bit VNI. The forwarding database maps inner MACs to remote VTEPs; it learns from received
packets (``learning``), and all-zero-MAC entries (``bridge fdb append 00:00:00:00:00:00 dev
vxlan0 dst REMOTE``) are where unknown and group destinations are flooded (head-end replication).
"""

from __future__ import annotations

import struct
import zlib

import attrs

from virtlevels_vnet.devices.base import NetDev
from virtlevels_vnet.frames.eth import ZERO_MAC

VXLAN_PORT = 4789  # IANA, RFC 7348 5
VXLAN_HLEN = 8
VXLAN_OVERHEAD = 14 + VXLAN_HLEN + 8 + 20  # inner Ethernet + VXLAN + UDP + IPv4
_HDR = struct.Struct("!II")
_FLAG_I = 0x08000000  # the I flag: the VNI is valid


@attrs.define(eq=False)
class VxlanDev(NetDev):
    kind: str = "vxlan"
    mtu: int = 1450  # 1500 - VXLAN_OVERHEAD, as Linux picks over a 1500-byte underlay
    vni: int = 0
    local: int = 0  # the local VTEP address (0: chosen by the route)
    dstport: int = VXLAN_PORT
    learning: bool = True
    #: inner MAC -> remote VTEP IPv4 (ints); ZERO_MAC -> flood list
    fdb: dict[bytes, int] = attrs.field(factory=dict)
    flood: list[int] = attrs.field(factory=list)
    encapsulated: int = 0
    decapsulated: int = 0

    def fdb_append(self, mac: bytes, remote: int) -> None:
        if mac == ZERO_MAC:
            if remote not in self.flood:
                self.flood.append(remote)
        else:
            self.fdb[mac] = remote

    def _out(self, frame: bytes) -> None:
        if self.stack is None:
            self.tx_dropped += 1
            return
        dst = frame[0:6]
        remote = None if dst[0] & 1 else self.fdb.get(dst)
        remotes = [remote] if remote is not None else self.flood
        if not remotes:
            self.tx_dropped += 1
            return
        payload = _HDR.pack(_FLAG_I, self.vni << 8) + frame
        # RFC 7348 5: the UDP source port is a hash of the inner headers (entropy for ECMP).
        sport = 49152 + (zlib.crc32(frame[:14]) % 16384)
        for r in remotes:
            self.encapsulated += 1
            self.stack.udp_output(self.local, r, sport, self.dstport, payload)

    def encap_rx(self, src: int, data: bytes) -> bool:
        """A UDP payload arrived on the VXLAN port from VTEP ``src``; True if it was ours."""
        if len(data) < VXLAN_HLEN + 14:
            return False
        flags, vni = _HDR.unpack_from(data)
        if not flags & _FLAG_I or vni >> 8 != self.vni:
            return False
        inner = data[VXLAN_HLEN:]
        if self.learning and not inner[6] & 1:
            self.fdb[inner[6:12]] = src
        self.decapsulated += 1
        self.deliver(inner)
        return True
