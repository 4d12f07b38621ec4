"""VM hosts: a guest kernel drives the machine's vlnet NIC, whose back end is a TAP bridged into
the topology; VM-to-container traffic under several virtualization techniques."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from virtlevels_vnet.frames import eth, icmp, ipv4, pcap
from virtlevels_vnet.frames.arp import ARPOP_REPLY, ARPOP_REQUEST
from virtlevels_vnet.frames.arp import parse as arp_parse
from virtlevels_vnet.ipcmd import configure
from virtlevels_vnet.topo import Network, TopologyError
from virtlevels_vnet.vmguest import ECHO_IDENT, nic_guest

VM_IP, C_IP = "10.0.0.5", "10.0.0.2"
VM_MAC = "52:54:00:aa:bb:01"


def vm_net(technique: str, *, count: int = 3, timeout_ticks: int = 10_000_000, peer: str = C_IP) -> Network:
    """s1 with container c1 and VM vm1 whose guest pings ``peer`` ``count`` times."""
    net = Network()
    net.add_switch("s1")
    net.add_host("c1", f"{C_IP}/24", kind="container")

    def guest(mac: bytes, ip: str) -> Any:
        return nic_guest(mac, ip, peer=peer, count=count, timeout_ticks=timeout_ticks)

    net.add_host("vm1", f"{VM_IP}/24", kind="vm", technique=technique, mac=VM_MAC, guest=guest)
    net.add_link("c1", "s1", latency="50us")
    net.add_link("vm1", "s1", latency="50us")
    return net


def run_guest(net: Network, limit_ns: int = 1_000_000_000) -> Any:
    vm = net.host("vm1").vm
    assert net.run_until(lambda: vm.exited, limit_ns), f"guest did not finish: {vm.console()!r}"
    return vm


@pytest.mark.parametrize("technique", ["emulate", "trap", "hw"])
def test_vm_pings_container(technique: str) -> None:
    net = vm_net(technique)
    net.start()
    c1 = net.host("c1").stack
    assert c1 is not None
    # The container's side is configured with ip(8): the guest's MAC is a permanent neighbour.
    configure(c1, f"ip neigh add {VM_IP} lladdr {VM_MAC} dev c1-eth0")
    vm = run_guest(net)
    assert vm.exit_code == 0
    assert vm.console().splitlines() == [
        f"vm: ping {C_IP}", "vm: arp reply",
        "vm: echo reply seq=1", "vm: echo reply seq=2", "vm: echo reply seq=3", "vm: done",
    ]  # fmt: skip
    # Through the NIC: an ARP request and three echo requests out; the ARP reply and three echo
    # replies in (nothing else is on this segment).
    assert (vm.nic.tx_frames, vm.nic.rx_frames, vm.nic.rx_dropped) == (4, 4, 0)
    assert c1.stats.ip_in >= 3
    assert vm.tap.rx_packets == 4 and vm.tap.tx_packets == 4
    exits = vm.vm.vstats.exits
    if technique == "emulate":
        assert vm.vm.vstats.emulated_instructions > 0 and not exits
    else:  # the NIC's registers are emulated by the VMM: every access is an exit
        assert exits["mmio"] > 4 * 3 and vm.vm.vstats.direct_instructions > 0


def test_vm_host_in_resource_graph() -> None:
    net = vm_net("trap", count=1)
    net.start()
    g = net.world.graph.g
    node = net.host("vm1").node_id
    assert g.nodes[node]["kind"] == "vm"
    assert net.node_id in set(g.successors(node))  # the VM is part of the network
    vmh = net.host("vm1").vm
    nic_dev = [n for n in g.predecessors(node) if g.nodes[n].get("kind") == "device"
               and g.nodes[n].get("name") == "nic0"]  # fmt: skip
    assert len(nic_dev) == 1
    assert any(d.get("kind") == "maps_to" for d in g.get_edge_data(vmh.tap.node_id, nic_dev[0]).values())
    # tap and uplink are ports of the VM host's bridge; the uplink is a link to the switch.
    br = vmh.bridge.node_id
    members = {g.nodes[n]["name"] for n in g.predecessors(br) if g.nodes[n].get("kind") == "netdev"}
    assert members == {"vm1-tap0", "vm1-eth0"}
    s1 = net.host("s1").node_id
    assert any(
        d.get("kind") == "link" for d in (g.get_edge_data(s1, node) or g.get_edge_data(node, s1)).values()
    )


def test_vm_guest_times_out_when_container_filters_icmp() -> None:
    net = vm_net("emulate", count=2, timeout_ticks=50_000)  # 5 ms of guest time
    net.start()
    c1 = net.host("c1").stack
    assert c1 is not None
    configure(c1, "iptables -A INPUT -p icmp -j DROP")
    vm = run_guest(net)
    assert vm.exit_code == 2
    assert vm.console().splitlines()[-2:] == ["vm: arp reply", "vm: timeout"]
    assert c1.filter is not None


def test_container_and_process_host_ping_the_vm() -> None:
    net = Network()
    net.add_switch("s1")
    net.add_host("c1", f"{C_IP}/24", kind="container")
    net.add_host("h2", "10.0.0.3/24")
    net.add_host("vm1", f"{VM_IP}/24", kind="vm", technique="hw")  # default guest: answers ARP and ping
    for h in ("c1", "h2", "vm1"):
        net.add_link(h, "s1")
    net.start()
    p = net.spawn("c1", "ping", "-c", "2", "-i", "0.001", VM_IP)
    assert net.wait(p) == 0, p.output
    assert "2 packets transmitted, 2 received" in p.output
    assert f"64 bytes from {VM_IP}: icmp_seq=2" in p.output
    loss, results = net.ping_all()
    assert loss == 0.0
    assert {(r.src, r.dst) for r in results} == {("c1", "h2"), ("c1", "vm1"), ("h2", "c1"), ("h2", "vm1")}
    vm = net.host("vm1").vm
    assert not vm.exited and vm.vm.vstats.exits["mmio"] > 0
    with pytest.raises(TopologyError, match="VM host"):
        net.ping("vm1", "c1")


def test_vm_runs_are_deterministic() -> None:
    def once() -> tuple[int, str, int]:
        net = vm_net("trap", count=2)
        net.start()
        vm = run_guest(net)
        return net.world.events.now, vm.console(), vm.vm.vstats.guest_instructions()

    assert once() == once()


def _capture_vm(tmp_path: Path) -> tuple[Path, Network]:
    net = vm_net("hw", count=1)
    net.start()
    out = tmp_path / "vm.pcap"
    w = pcap.PcapWriter(out.open("wb"))
    tap = net.host("vm1").vm.tap
    tap.taps.append(lambda frame, _d: w.write(net.ctx.now_ns(), frame))
    vm = run_guest(net)
    w.close()
    assert vm.exit_code == 0
    return out, net


def test_capture_of_the_vm_exchange(tmp_path: Path) -> None:
    out, net = _capture_vm(tmp_path)
    link, frames = pcap.read_pcap(out)
    assert link == pcap.LINKTYPE_ETHERNET
    fs = [f for _t, f in frames]
    assert len(fs) == 4
    vm_mac = eth.parse_mac(VM_MAC)
    c_mac = net.host("c1").stack.dev("c1-eth0").mac  # type: ignore[union-attr]
    req, rep = arp_parse(fs[0], 14), arp_parse(fs[1], 14)
    assert (req.op, req.sha, req.tpa) == (ARPOP_REQUEST, vm_mac, ipv4.aton(C_IP))
    assert (rep.op, rep.sha, rep.tpa) == (ARPOP_REPLY, c_mac, ipv4.aton(VM_IP))
    h = eth.parse(fs[2])
    assert (h.dst, h.src) == (c_mac, vm_mac)
    ping, pong = ipv4.parse(fs[2], 14), ipv4.parse(fs[3], 14)
    assert ping.checksum_ok and pong.checksum_ok
    assert (ipv4.ntoa(ping.src), ipv4.ntoa(ping.dst)) == (VM_IP, C_IP)
    m, r = icmp.parse(fs[2], 34), icmp.parse(fs[3], 34)
    assert (m.type, m.ident, m.seq, m.checksum_ok) == (icmp.ICMP_ECHO, ECHO_IDENT, 1, True)
    assert (r.type, r.ident, r.seq, r.checksum_ok) == (icmp.ICMP_ECHOREPLY, ECHO_IDENT, 1, True)


def test_capture_of_the_vm_exchange_decoded_by_tshark(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    out, _net = _capture_vm(tmp_path)
    r = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.protocols", "-e", "eth.src",
                        "-e", "icmp.type", "-e", "ip.checksum.status", "-o", "ip.check_checksum:TRUE"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    lines = [ln.split("\t") for ln in r.stdout.strip().splitlines()]
    assert [ln[0] for ln in lines] == ["eth:ethertype:arp", "eth:ethertype:arp", "eth:ethertype:ip:icmp:data",
                                       "eth:ethertype:ip:icmp:data"]  # fmt: skip
    assert lines[0][1] == VM_MAC and lines[2][1] == VM_MAC
    assert [ln[2] for ln in lines[2:]] == ["8", "0"]
    assert [ln[3] for ln in lines[2:]] == ["1", "1"]  # PROTO_CHECKSUM_E_GOOD (verified good)


def test_bad_vm_hosts_are_refused() -> None:
    net = Network()
    with pytest.raises(TopologyError, match="technique: unknown virtualization technique .vmx."):
        net.add_host("v", kind="vm", technique="vmx")
    with pytest.raises(TopologyError, match="host 'v' mac"):
        net.add_host("v", kind="vm", mac="52:54:00:zz:00:01")
    with pytest.raises(TopologyError, match="for VM hosts"):
        net.add_host("p", mac="52:54:00:00:00:01")
    with pytest.raises(TopologyError, match="not an Image"):
        net.add_host("v", kind="vm", guest=42)
    assert not net.nodes  # nothing half-added
    with pytest.raises(Exception, match="count must be 1-9"):
        nic_guest(b"\x52\x54\x00\x00\x00\x01", VM_IP, peer=C_IP, count=10)
