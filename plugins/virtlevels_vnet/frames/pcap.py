"""libpcap capture files (the classic format tcpdump writes; https://wiki.wireshark.org/Development/LibpcapFileFormat,
draft-ietf-opsawg-pcap): a 24-byte global header, then a 16-byte record header per frame.
Timestamps are the World's simulated time, so a capture is deterministic."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import attrs

PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4 (a TUN device)
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


@attrs.define(eq=False)
class PcapWriter:
    """Writes frames to ``out``; ``linktype`` 1 for Ethernet, 101 for raw IP."""

    out: BinaryIO
    linktype: int = LINKTYPE_ETHERNET
    snaplen: int = 65535
    count: int = 0

    def __attrs_post_init__(self) -> None:
        self.out.write(_GLOBAL.pack(PCAP_MAGIC, 2, 4, 0, 0, self.snaplen, self.linktype))

    def write(self, time_ns: int, frame: bytes) -> None:
        sec, ns = divmod(time_ns, 1_000_000_000)
        cap = frame[: self.snaplen]
        self.out.write(_RECORD.pack(sec, ns // 1000, len(cap), len(frame)) + bytes(cap))
        self.count += 1

    def close(self) -> None:
        self.out.close()


def read_pcap(path: str | Path) -> tuple[int, list[tuple[int, bytes]]]:
    """(linktype, [(time_us, frame)]) of a classic pcap file (for tests and ``net capture``)."""
    data = Path(path).read_bytes()
    magic, _maj, _min, _tz, _sig, _snap, link = _GLOBAL.unpack_from(data)
    if magic != PCAP_MAGIC:
        raise ValueError(f"{path}: not a little-endian microsecond pcap file (magic {magic:#x})")
    off, out = _GLOBAL.size, []
    while off < len(data):
        sec, usec, incl, _orig = _RECORD.unpack_from(data, off)
        off += _RECORD.size
        out.append((sec * 1_000_000 + usec, data[off : off + incl]))
        off += incl
    return link, out
