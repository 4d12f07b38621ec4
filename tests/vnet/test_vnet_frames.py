"""Wire formats: encode/decode round trips, checksums, pcap read back (and by tshark if present)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from virtlevels_vnet.frames import arp, eth, icmp, ipv4, pcap, tcp, udp


def test_ipv4_checksum_matches_rfc1071_example() -> None:
    # RFC 1071 / the classic example header from Wikipedia's IPv4 checksum page.
    hdr = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert ipv4.checksum(hdr) == 0xB861
    fixed = hdr[:10] + (0xB861).to_bytes(2, "big") + hdr[12:]
    assert ipv4.checksum(fixed) == 0


def test_ipv4_build_parse_and_ttl_decrement() -> None:
    pkt = ipv4.build(
        ipv4.aton("10.0.0.1"), ipv4.aton("10.0.1.2"), ipv4.IPPROTO_UDP, b"x" * 10, ttl=5, ident=7
    )
    h = ipv4.parse(pkt)
    assert (h.src, h.dst, h.ttl, h.ident, h.total_len, h.checksum_ok) == (
        0x0A000001,
        0x0A000102,
        5,
        7,
        30,
        True,
    )
    dec = ipv4.dec_ttl(pkt)
    h2 = ipv4.parse(dec)
    assert h2.ttl == 4 and h2.checksum_ok  # RFC 1624 incremental update is right
    assert not ipv4.header_ok(dec[:10] + b"\0\0" + dec[12:])


def test_bad_addresses_name_the_text() -> None:
    with pytest.raises(eth.FrameError, match="10.0.0.300"):
        ipv4.aton("10.0.0.300")
    with pytest.raises(eth.FrameError, match="zz"):
        eth.parse_mac("zz:00:00:00:00:00")


def test_eth_vlan_arp_roundtrip() -> None:
    a, b = eth.parse_mac("02:00:00:00:00:01"), eth.BROADCAST
    body = arp.build(arp.ARPOP_REQUEST, a, 0x0A000001, eth.ZERO_MAC, 0x0A000002)
    f = eth.build(b, a, eth.ETH_P_ARP, body, vid=10)
    h = eth.parse(f)
    assert (h.vid, h.ethertype, h.src) == (10, eth.ETH_P_ARP, a)
    assert eth.pop_vlan(f) == eth.build(b, a, eth.ETH_P_ARP, body)
    assert eth.push_vlan(eth.pop_vlan(f), 10) == f
    assert arp.parse(f, h.payload_offset).tpa == 0x0A000002


def test_udp_tcp_icmp_checksums() -> None:
    s, d = ipv4.aton("192.168.0.1"), ipv4.aton("192.168.0.2")
    u = udp.parse(udp.build(s, d, 1234, 53, b"query"), s, d)
    assert (u.sport, u.dport, u.data, u.checksum_ok) == (1234, 53, b"query", True)
    seg = tcp.build(s, d, 40000, 80, 1000, 2000, tcp.SYN | tcp.ACK, 65535, b"", mss=1460)
    t = tcp.parse(seg, s, d)
    assert (t.seq, t.ack, t.flags, t.mss, t.checksum_ok) == (1000, 2000, tcp.SYN | tcp.ACK, 1460, True)
    bad = bytearray(seg)
    bad[5] ^= 1
    assert not tcp.parse(bytes(bad), s, d).checksum_ok
    m = icmp.parse(icmp.echo(7, 3, b"hi"))
    assert (m.type, m.ident, m.seq, m.data, m.checksum_ok) == (icmp.ICMP_ECHO, 7, 3, b"hi", True)


def _capture(tmp_path: Path) -> Path:
    from virtlevels_vnet.topo import single

    net = single(2)
    net.start()
    out = tmp_path / "cap.pcap"
    w = pcap.PcapWriter(out.open("wb"))
    dev = net.host("h1").stack.dev("h1-eth0")  # type: ignore[union-attr]
    dev.taps.append(lambda frame, _d: w.write(net.ctx.now_ns(), frame))
    assert net.ping("h1", "h2").ok
    w.close()
    return out


def test_pcap_roundtrip(tmp_path: Path) -> None:
    out = _capture(tmp_path)
    link, frames = pcap.read_pcap(out)
    assert link == pcap.LINKTYPE_ETHERNET
    kinds = [eth.parse(f).ethertype for _t, f in frames]
    assert kinds.count(eth.ETH_P_ARP) == 2 and kinds.count(eth.ETH_P_IP) == 2  # ARP req/reply, echo/reply


def test_pcap_decoded_by_tshark(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    out = _capture(tmp_path)
    r = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.protocols", "-e", "icmp.type",
                        "-e", "ip.checksum.status"], capture_output=True, text=True, check=True)  # fmt: skip
    lines = [ln.split("\t") for ln in r.stdout.strip().splitlines()]
    assert [ln[0] for ln in lines] == ["eth:ethertype:arp", "eth:ethertype:arp", "eth:ethertype:ip:icmp:data",
                                       "eth:ethertype:ip:icmp:data"]  # fmt: skip
    assert [ln[1] for ln in lines[2:]] == ["8", "0"]


def test_pcap_writer_header() -> None:
    buf = io.BytesIO()
    pcap.PcapWriter(buf).write(1_500_000_000, b"\x00" * 20)
    raw = buf.getvalue()
    assert raw[:4] == bytes.fromhex("d4c3b2a1") and len(raw) == 24 + 16 + 20
