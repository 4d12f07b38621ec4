"""``virtlevels net``: topology files, pingall, reach, capture and draw, and their errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from virtlevels_vnet.frames.pcap import read_pcap
from virtlevels_vnet.topofile import TopologyFileError, loads_topology

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vnet_two_subnets.toml"

SMALL = """\
[[host]]
name = "a"
ip = "10.0.0.1/24"

[[host]]
name = "b"
ip = "10.0.0.2/24"

[[switch]]
name = "s1"

[[link]]
a = "a"
b = "s1"
latency = "1ms"

[[link]]
a = "b"
b = "s1"
"""


def test_example_up_and_pingall_agree_with_static(run_cli: Any) -> None:
    r = run_cli("net", "up", str(EXAMPLE))
    assert r.exit_code == 0, r.stderr
    assert "5 hosts, 1 switches, 2 routers, 7 links" in r.stdout
    assert "r1-eth2: 10.9.0.1/30" in r.stdout and "route 10.0.3.0/24 via 10.9.0.2 dev r1-eth2" in r.stdout
    r = run_cli("net", "pingall", str(EXAMPLE), "--static")
    assert r.exit_code == 0, r.stderr
    assert "h4 -> X X X X" in r.stdout  # VLAN 20 is cut off from the router's VLAN 10
    assert "h1 -> h2 h3 X inet" in r.stdout  # masqueraded out to inet
    assert "Static analysis agrees on 20/20 pairs" in r.stdout


def test_reach_explains(run_cli: Any) -> None:
    r = run_cli("net", "reach", str(EXAMPLE), "h2", "h3")
    assert r.exit_code == 1 and "not reachable" in r.stdout and "r1: dropped by FORWARD" in r.stdout
    r = run_cli("net", "reach", str(EXAMPLE), "h1", "h3")
    assert r.exit_code == 0 and "h1 > r1 > r2 > h3 > r2 > r1 > h1" in r.stdout
    r = run_cli("net", "reach", str(EXAMPLE), "h1", "nope")
    assert r.exit_code == 1 and "no host 'nope'" in r.stderr


def test_capture_writes_a_pcap(run_cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "c.pcap"
    r = run_cli("net", "capture", str(EXAMPLE), "r1-eth2", "-o", str(out), "--ping", "h2", "inet")
    assert r.exit_code == 0, r.stderr
    link, frames = read_pcap(out)
    assert link == 1 and len(frames) == 4  # ARP who-has, is-at, echo request, echo reply
    assert frames[2][1][12:14] == b"\x08\x00" and frames[2][1][14 + 9] == 1  # IPv4, ICMP
    assert 2000 <= frames[3][0] - frames[2][0] < 2100  # the 1 ms link both ways, plus 100 Mbit/s
    if shutil.which("tshark"):
        txt = subprocess.run(["tshark", "-r", str(out)], capture_output=True, text=True, check=True).stdout
        assert "Echo (ping) reply" in txt and "203.0.113.5" in txt
    r = run_cli("net", "capture", str(EXAMPLE), "eth9", "-o", str(out), "--ping", "h2", "inet")
    assert r.exit_code == 1 and "no interface 'eth9'" in r.stderr


def test_draw_dot_and_png(run_cli: Any, tmp_path: Path) -> None:
    dot = tmp_path / "t.dot"
    r = run_cli("net", "draw", str(EXAMPLE), "-o", str(dot))
    assert r.exit_code == 0, r.stderr
    text = dot.read_text()
    assert '"h1" -> "s1" [label="link"]' in text and '"r1" -> "r2" [label="link"]' in text
    assert 'kind="router"' in text and "h1-eth0" not in text  # the topology, not every netdev
    png = tmp_path / "t.png"
    r = run_cli("net", "draw", str(EXAMPLE), "-o", str(png))
    assert r.exit_code == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('b = "s1"\nlatency', 'b = "s9"\nlatency'), "t.toml:14: link 1 (a-s9) field 'b': no node 's9'"),
        (('latency = "1ms"', 'latency = "fast"'), "t.toml:15: link 1 (a-s1) field 'latency': cannot parse"),
        (('ip = "10.0.0.2/24"', 'ip = "10.0.0.300/24"'), "t.toml:7: host 2 (b) field 'ip': bad IPv4 address"),
        (
            ('name = "s1"', 'name = "s1"\ncolour = "red"'),
            "t.toml:11: switch 1 (s1) field 'colour': unknown field",
        ),
        (
            ('ip = "10.0.0.1/24"', 'ip = "10.0.0.1/24"\nroutes = ["default via 192.0.2.1"]'),
            "field 'routes': route 'default via 192.0.2.1': gateway 192.0.2.1 is not on a network of a",
        ),
        (
            ('ip = "10.0.0.1/24"', 'ip = "10.0.0.1/24"\nrules = ["-A INPUT -p tcp --dportt 22 -j DROP"]'),
            "t.toml:4: host 1 (a) field 'rules': rule '-A INPUT -p tcp --dportt 22 -j DROP': unknown option",
        ),
        (
            ('ip = "10.0.0.1/24"', 'ip = "10.0.0.1/24"\nrules = ["-A POSTROUTING -j MASQUERADE"]'),
            "needs -t nat",
        ),
        (('[[link]]\na = "b"', '[[link]]\na = "b"\nvlan = 5000'), "field 'vlan': VLAN id 5000"),
        (('name = "s1"', 'name = "s1'), "t.toml:10: not valid TOML"),
        (('name = "b"', 'name = "a"'), "host 2 (a)"),
    ],
)
def test_bad_topology_names_file_line_and_field(tmp_path: Path, run_cli: Any, change: tuple[str, str],
                                                message: str) -> None:  # fmt: skip
    text = SMALL.replace(*change, 1)
    assert text != SMALL
    path = tmp_path / "t.toml"
    path.write_text(text)
    r = run_cli("net", "up", str(path))
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert message in r.stderr, r.stderr


def test_loader_builds_nothing_on_error_and_sets_vlans() -> None:
    with pytest.raises(TopologyFileError, match="no node 'zz'"):
        loads_topology(SMALL + '\n[[link]]\na = "a"\nb = "zz"\n', "x.toml")
    net = loads_topology(SMALL.replace('b = "s1"\nlatency', 'b = "s1"\nvlan = 7\nlatency'), "x.toml")
    br = net.host("s1").bridge
    assert br is not None and br.vlan_filtering
    assert not net.ping("a", "b", timeout_ns=4 * 10**9).ok and not net.reachable("a", "b")
    net = loads_topology(SMALL, "x.toml")
    assert net.ping("a", "b").ok and net.reachable("a", "b")
