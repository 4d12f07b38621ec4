"""Devices, routing, NAT, filters, VXLAN, TCP and the Mininet-like API, through real frames."""

from __future__ import annotations

import pytest
from virtlevels_vnet.context import context_for
from virtlevels_vnet.devices import VxlanDev, veth_pair
from virtlevels_vnet.devices.vxlan import VXLAN_PORT
from virtlevels_vnet.filter import RuleError
from virtlevels_vnet.frames import icmp
from virtlevels_vnet.frames.eth import ZERO_MAC
from virtlevels_vnet.frames.ipv4 import aton
from virtlevels_vnet.sockets import SOCK_DGRAM, SOCK_STREAM
from virtlevels_vnet.stack import NetStack
from virtlevels_vnet.topo import Network, TopologyError, linear, single, tree

from virtlevels.kernel.errno import KernelError
from virtlevels.world import World


def test_bridge_learns_and_stops_flooding() -> None:
    net = single(3)
    net.start()
    br = net.host("s1").bridge
    assert br is not None
    assert net.ping("h1", "h2").ok
    flooded = br.flooded
    assert br.lookup(net.host("h1").stack.dev("h1-eth0").mac) is not None  # type: ignore[union-attr]
    assert net.ping("h1", "h2").ok
    assert br.flooded == flooded  # known unicast: forwarded, not flooded
    h3 = net.host("h3").stack.dev("h3-eth0")  # type: ignore[union-attr]
    before = h3.rx_packets
    assert net.ping("h2", "h1").ok
    assert h3.rx_packets == before  # h3 saw none of it


def test_bridge_fdb_ages_out() -> None:
    net = single(2)
    net.start()
    br = net.host("s1").bridge
    assert br is not None and net.ping("h1", "h2").ok
    mac = net.host("h1").stack.dev("h1-eth0").mac  # type: ignore[union-attr]
    assert br.lookup(mac) is not None
    net.world.events.advance(net.world.now + net.ctx.ns_to_cycles(301 * 10**9))
    assert br.lookup(mac) is None


def test_vlan_isolation_on_one_bridge() -> None:
    net = single(4)
    net.start()
    br = net.host("s1").bridge
    assert br is not None
    br.vlan_filtering = True
    for i, vid in ((1, 10), (2, 10), (3, 20), (4, 20)):
        br.set_access(net.host("s1").stack.dev(f"s1-eth{i - 1}"), vid)  # type: ignore[union-attr]
    assert net.ping("h1", "h2").ok and net.ping("h3", "h4").ok
    assert not net.ping("h1", "h3", timeout_ns=5 * 10**9).ok
    assert not net.ping("h2", "h4", timeout_ns=5 * 10**9).ok


def test_vlan_trunk_between_switches_and_subinterface() -> None:
    from virtlevels_vnet.devices import VlanDev

    net = Network()
    net.add_switch("s1")
    net.add_switch("s2")
    net.add_host("a", "10.0.0.1/24")
    net.add_host("b", "10.0.0.2/24")
    net.add_host("c", "10.0.1.2/24")
    net.add_link("a", "s1")
    net.add_link("s1", "s2")
    net.add_link("b", "s2")
    net.add_link("c", "s2")
    net.start()
    s1, s2 = net.host("s1"), net.host("s2")
    for sw in (s1, s2):
        assert sw.bridge is not None and sw.stack is not None
        sw.bridge.vlan_filtering = True
    s1.bridge.set_access(s1.stack.dev("s1-eth0"), 10)  # type: ignore[union-attr]
    for dev, sw in (("s1-eth1", s1), ("s2-eth0", s2)):  # the trunk carries 10 and 20 tagged
        sw.bridge.vlan_add(sw.stack.dev(dev), 10)  # type: ignore[union-attr]
        sw.bridge.vlan_add(sw.stack.dev(dev), 20)  # type: ignore[union-attr]
    s2.bridge.set_access(s2.stack.dev("s2-eth1"), 10)  # type: ignore[union-attr]
    # c uses a VLAN subinterface on a trunk port: tagged 20 on its wire.
    s2.bridge.vlan_add(s2.stack.dev("s2-eth2"), 20)  # type: ignore[union-attr]
    cst = net.host("c").stack
    assert cst is not None
    parent = cst.dev("c-eth0")
    cst.addr_del("c-eth0", "10.0.1.2/24")
    sub = cst.add_device(VlanDev(net.ctx, "c-eth0.20", mac=parent.mac, parent=parent, vid=20))
    parent.vlans[20] = sub
    sub.up = True
    cst.addr_add("c-eth0.20", "10.0.0.3/24")
    assert net.ping("a", "b").ok
    assert not net.ping("a", aton("10.0.0.3"), timeout_ns=5 * 10**9).ok  # VLAN 10 vs 20


def _three_subnets() -> Network:
    net = Network()
    for i in (1, 2, 3):
        net.add_host(f"h{i}", f"10.0.{i}.10/24", gateway=f"10.0.{i}.1")
    net.add_router("r1")
    net.add_router("r2")
    net.add_link("h1", "r1", b_ip="10.0.1.1/24")
    net.add_link("h2", "r1", b_ip="10.0.2.1/24")
    net.add_link("r1", "r2", a_ip="10.9.0.1/30", b_ip="10.9.0.2/30", latency="1ms")
    net.add_link("h3", "r2", b_ip="10.0.3.1/24")
    net.start()
    net.host("r1").stack.route_add("10.0.3.0/24", via="10.9.0.2")  # type: ignore[union-attr]
    net.host("r2").stack.route_add("10.0.0.0/16", via="10.9.0.1")  # type: ignore[union-attr]
    return net


def test_routing_across_three_subnets_lpm_and_ttl() -> None:
    net = _three_subnets()
    loss, _res = net.ping_all()
    assert loss == 0.0
    r = net.ping("h1", "h3")
    assert r.ok and r.rtt_ns is not None and r.rtt_ns >= 2_000_000  # two crossings of the 1 ms link
    # TTL 1 dies at the first router: "time exceeded" from 10.0.1.1 (what traceroute reads).
    hop = net.ping("h1", "h3", ttl=1)
    assert not hop.ok and "type 11" in hop.error and "10.0.1.1" in hop.error
    hop2 = net.ping("h1", "h3", ttl=2)
    assert "10.9.0.2" in hop2.error
    # No route: the router answers "net unreachable".
    bad = net.ping("h1", aton("172.16.0.1"))
    assert not bad.ok and "type 3 code 0" in bad.error
    lookup = net.host("r2").stack.routes.lookup(aton("10.0.3.77"))  # type: ignore[union-attr]
    assert lookup is not None and lookup.plen == 24  # the /24 beats the /16


def test_filter_rules_drop_reject_and_state() -> None:
    net = _three_subnets()
    r1 = net.host("r1").stack
    assert r1 is not None
    r1.add_rule("-A FORWARD -p icmp -s 10.0.2.0/24 -d 10.0.3.0/24 -j DROP")
    assert net.ping("h1", "h3").ok
    assert not net.ping("h2", "h3", timeout_ns=3 * 10**9).ok
    r1.add_rule("-A FORWARD -p icmp -s 10.0.1.10 -d 10.0.2.10 -j REJECT --reject-with icmp-admin-prohibited")
    res = net.ping("h1", "h2")
    assert not res.ok and "type 3 code 13" in res.error
    # Stateful: h3's stack lets in only replies to what it started.
    h3 = net.host("h3").stack
    assert h3 is not None
    h3.add_rule("-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT")
    h3.add_rule("-A INPUT -p icmp -j DROP")
    assert net.ping("h3", "h1").ok
    assert not net.ping("h1", "h3", timeout_ns=3 * 10**9).ok
    with pytest.raises(RuleError, match="--dportt"):
        r1.add_rule("-A INPUT -p tcp --dportt 22 -j DROP")
    with pytest.raises(RuleError, match="ports need"):
        r1.add_rule("-A INPUT --dport 22 -j DROP")
    assert len(r1.filter.chains["INPUT"]) == 0  # nothing half-applied


def test_nat_masquerade_out_and_port_forward_in() -> None:
    net = Network()
    net.add_host("inside", "192.168.1.10/24", gateway="192.168.1.1")
    net.add_host("outside", "203.0.113.5/24")
    net.add_router("gw")
    net.add_link("inside", "gw", b_ip="192.168.1.1/24")
    net.add_link("outside", "gw", b_ip="203.0.113.1/24")
    net.start()
    gw = net.host("gw").stack
    assert gw is not None
    gw.add_rule("-A POSTROUTING -o gw-eth1 -j MASQUERADE")
    gw.add_rule("-A PREROUTING -p udp -i gw-eth1 --dport 8080 -j DNAT --to-destination 192.168.1.10:80")
    # outside has no route to 192.168.1.0/24: only NAT makes this work.
    assert net.ping("inside", "outside").ok
    out_st, in_st = net.host("outside").stack, net.host("inside").stack
    assert out_st is not None and in_st is not None
    seen: list[tuple[bytes, tuple[int, int]]] = []
    srv = out_st.socks.socket(SOCK_DGRAM, 0)
    srv.bind(0, 9999)
    cli = in_st.socks.socket(SOCK_DGRAM, 0)
    cli.sendto(b"hello", (aton("203.0.113.5"), 9999))
    net.run_until(lambda: bool(srv.rxq), 10**9)
    data, src = srv.rxq.popleft()
    assert data == b"hello" and src[0] == aton("203.0.113.1")  # masqueraded to the router's address
    srv.sendto(b"reply", src)
    net.run_until(lambda: bool(cli.rxq), 10**9)
    assert cli.rxq.popleft() == (b"reply", (aton("203.0.113.5"), 9999))  # un-NATed on the way back
    # Port forwarding in: outside -> 203.0.113.1:8080 reaches inside:80.
    web = in_st.socks.socket(SOCK_DGRAM, 0)
    web.bind(0, 80)
    c2 = out_st.socks.socket(SOCK_DGRAM, 0)
    c2.sendto(b"GET", (aton("203.0.113.1"), 8080))
    net.run_until(lambda: bool(web.rxq), 10**9)
    seen.append(web.rxq.popleft())
    assert seen[0] == (b"GET", (aton("203.0.113.5"), c2.lport))
    web.sendto(b"200", seen[0][1])
    net.run_until(lambda: bool(c2.rxq), 10**9)
    assert c2.rxq.popleft() == (b"200", (aton("203.0.113.1"), 8080))


def test_vxlan_between_two_machines() -> None:
    """Two hosts' stacks ("machines") joined by an underlay; a VXLAN VNI 42 bridges an overlay."""
    world = World(entry_points=False)
    ctx = context_for(world)
    m1, m2 = NetStack(ctx, "m1", initial=True), NetStack(ctx, "m2", initial=True)
    a, b, _l = veth_pair(ctx, "eth0", "eth0x", latency_ns=100_000)
    m1.add_device(a)
    b.name = "eth0"
    m2.add_device(b)
    for st, dev, ip in ((m1, a, "192.0.2.1/24"), (m2, b, "192.0.2.2/24")):
        dev.up = True
        st.addr_add("eth0", ip)
    overlay = []
    for st, remote in ((m1, "192.0.2.2"), (m2, "192.0.2.1")):
        vx = VxlanDev(ctx, "vxlan42", vni=42)
        st.add_device(vx)
        vx.up = True
        vx.fdb_append(ZERO_MAC, aton(remote))
        st.udp_handlers[VXLAN_PORT] = lambda s, _sp, _d, data, vx=vx: vx.encap_rx(s, data)
        st.addr_add("vxlan42", "10.42.0.1/24" if remote.endswith("2") else "10.42.0.2/24")
        overlay.append(vx)
    ping = m1.socks.socket(SOCK_DGRAM, 1)
    ping.sendto(icmp.echo(0, 1, b"over"), (aton("10.42.0.2"), 0))
    net = Network(world)
    net.run_until(lambda: bool(ping.rxq), 10**9)
    assert ping.rxq and ping.rxq[0][0][8:] == b"over"
    assert overlay[0].encapsulated >= 2 and overlay[1].decapsulated >= 2
    assert overlay[0].fdb.get(overlay[1].mac) == aton("192.0.2.2")  # learned from the reply


def test_tcp_transfer_survives_loss_and_is_deterministic() -> None:
    def run() -> tuple[float, int]:
        net = Network(World(seed=7, entry_points=False))
        net.add_host("a")
        net.add_host("b")
        net.add_link("a", "b", latency="1ms", bandwidth=10, loss=0.05)
        net.start()
        bps = net.iperf("a", "b", nbytes=100_000)
        return bps, net.world.now

    first = run()
    # Losses cost 1 s RTOs (no fast retransmit is modelled), so well below the 10 Mbit/s link.
    assert 1e5 < first[0] < 10e6
    assert run() == first


def test_tcp_refused_and_udp_port_unreachable() -> None:
    net = single(2)
    net.start()
    a, b = net.host("h1").stack, net.host("h2").stack
    assert a is not None and b is not None
    c = a.socks.socket(SOCK_STREAM, 0)
    with pytest.raises(Exception):  # noqa: B017 - WouldBlock: the SYN is out
        c.connect(net.addr("h2"), 81)
    net.run_until(lambda: c.so_error != 0, 10**9)
    assert c.so_error == 111  # ECONNREFUSED: the RST came back
    u = a.socks.socket(SOCK_DGRAM, 0)
    u.connect(net.addr("h2"), 9)
    u.sendto(b"x", None)
    net.run_until(lambda: u.so_error != 0, 10**9)
    with pytest.raises(KernelError) as ei:
        u.recvfrom(10)
    assert ei.value.errno == 111


def test_topology_errors_name_the_thing_and_apply_nothing() -> None:
    net = Network()
    net.add_switch("s1")
    net.add_switch("s2")
    net.add_switch("s3")
    net.add_link("s1", "s2")
    net.add_link("s2", "s3")
    with pytest.raises(TopologyError, match="s3-s1: makes a loop"):
        net.add_link("s3", "s1")
    with pytest.raises(TopologyError, match="no node 'h9'"):
        net.add_link("s1", "h9")
    with pytest.raises(TopologyError, match="10.0.0.256"):
        net.add_host("h1", "10.0.0.256/24")
    with pytest.raises(TopologyError, match="latency"):
        net.add_link("s1", "s3", latency="fast")
    assert len(net.links) == 2 and "h1" not in net.nodes


@pytest.mark.parametrize("build", [lambda: linear(4), lambda: tree(2, 3)])
def test_builtin_topologies_ping_all(build: object) -> None:
    net = build()  # type: ignore[operator]
    net.start()
    loss, res = net.ping_all()
    assert loss == 0.0 and len(res) == len(net.hosts()) * (len(net.hosts()) - 1)
    assert any(d == "bridge" for _n, d in [(n, net.world.graph.kind(n)) for n in net.world.graph.nodes()])
