"""Static reachability (``Network.reachable``) against simulated pings.

The property: on random small topologies (subnets on switches with access VLANs, routers with
partial static routes, filter rules, masquerading), the static answer for every ordered pair of
hosts equals whether a real ping, on a freshly built copy of the network, is answered."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from virtlevels_vnet.frames.ipv4 import aton
from virtlevels_vnet.topo import Network

from virtlevels.world import World

_RULES = [
    "-A FORWARD -p icmp -s {a} -d {b} -j DROP",
    "-A FORWARD -p icmp -d {b} -j REJECT",
    "-A INPUT -p icmp -s {a} -j DROP",
    "-A OUTPUT -p icmp -d {b} -j DROP",
    "-A FORWARD -m state --state ESTABLISHED -j ACCEPT",
    "-A FORWARD -p icmp -m state --state NEW -s {a} -j DROP",
    "-A FORWARD -i {ifc} -p icmp -j DROP",
]


@st.composite
def topologies(draw: Any) -> dict[str, Any]:
    """A plain description (so the same network can be built twice)."""
    nsub = draw(st.integers(1, 3))
    nrouters = draw(st.sampled_from([0, 1, 2, 2]))
    subnets = []
    for _i in range(nsub):
        vlans = draw(st.booleans())
        subnets.append({"vlan_filtering": vlans})
    hosts = []
    for _j in range(draw(st.integers(2, 4))):
        sub = draw(st.integers(0, nsub - 1))
        hosts.append({"sub": sub, "vid": draw(st.sampled_from([1, 1, 1, 10])),
                      "gw": draw(st.sampled_from([1, 1, 2, None]))})  # fmt: skip
    routers = []
    for _r in range(nrouters):
        attached = draw(st.lists(st.integers(0, nsub - 1), min_size=1, max_size=nsub, unique=True))
        routers.append({
            "subs": attached,
            "vid": [draw(st.sampled_from([1, 1, 1, 10])) for _ in attached],
            "routes": draw(st.lists(st.integers(0, nsub - 1), min_size=1, max_size=3, unique=True)),
            "default": draw(st.booleans()),
            "masq": draw(st.booleans()) and draw(st.booleans()),
        })  # fmt: skip
    small = st.integers(0, 9)
    rule = st.tuples(st.integers(0, 10), st.integers(0, len(_RULES) - 1), small, small)
    rules = draw(st.lists(rule, min_size=1, max_size=4))
    return {"subnets": subnets, "hosts": hosts, "routers": routers, "rules": rules}


def _host_ip(j: int, spec: dict[str, Any]) -> str:
    return f"10.0.{spec['hosts'][j]['sub']}.{10 + j}"


def build(spec: dict[str, Any]) -> Network:
    net = Network(World(seed=1, entry_points=False))
    for i, _s in enumerate(spec["subnets"]):
        net.add_switch(f"s{i}")
    for j, h in enumerate(spec["hosts"]):
        gw = f"10.0.{h['sub']}.{h['gw']}" if h["gw"] else None
        net.add_host(f"h{j}", f"{_host_ip(j, spec)}/24", gateway=gw)
    ports: list[tuple[str, int, int]] = []  # (switch, port index, vid)
    count = {f"s{i}": 0 for i in range(len(spec["subnets"]))}
    for j, h in enumerate(spec["hosts"]):
        net.add_link(f"h{j}", f"s{h['sub']}")
        ports.append((f"s{h['sub']}", count[f"s{h['sub']}"], h["vid"]))
        count[f"s{h['sub']}"] += 1
    for r, rt in enumerate(spec["routers"]):
        net.add_router(f"r{r}")
        for sub, vid in zip(rt["subs"], rt["vid"], strict=True):
            net.add_link(f"r{r}", f"s{sub}", a_ip=f"10.0.{sub}.{r + 1}/24")
            ports.append((f"s{sub}", count[f"s{sub}"], vid))
            count[f"s{sub}"] += 1
    if len(spec["routers"]) == 2:
        net.add_link("r0", "r1", a_ip="10.9.0.1/30", b_ip="10.9.0.2/30")
    net.start()
    for i, s in enumerate(spec["subnets"]):
        br = net.host(f"s{i}").bridge
        assert br is not None
        br.vlan_filtering = s["vlan_filtering"]
    for sw, idx, vid in ports:
        node = net.host(sw)
        assert node.bridge is not None and node.stack is not None
        node.bridge.set_access(node.stack.dev(f"{sw}-eth{idx}"), vid)
    for r, rt in enumerate(spec["routers"]):
        stack = net.host(f"r{r}").stack
        assert stack is not None
        if len(spec["routers"]) == 2:
            peer = "10.9.0.2" if r == 0 else "10.9.0.1"
            for sub in rt["routes"]:
                if sub not in rt["subs"]:
                    stack.route_add(f"10.0.{sub}.0/24", via=peer)
            if rt["default"]:
                stack.route_add("default", via=peer)
        if rt["masq"]:
            stack.add_rule(f"-A POSTROUTING -o r{r}-eth0 -j MASQUERADE")
    nodes = [n for n in net.nodes.values() if n.role != "switch"]
    for who, which, x, y in spec["rules"]:
        routers = [n for n in nodes if n.role == "router"]
        # FORWARD rules only matter on routers: put them there when there are any.
        pool = routers if routers and "FORWARD" in _RULES[which] else nodes
        node = pool[who % len(pool)]
        assert node.stack is not None
        hs = spec["hosts"]
        ifaces = [d for d in node.stack.devices if d != "lo"] or ["lo"]
        text = _RULES[which].format(a=_host_ip(x % len(hs), spec), b=_host_ip(y % len(hs), spec),
                                    ifc=ifaces[x % len(ifaces)])  # fmt: skip
        node.stack.add_rule(text)
    return net


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(topologies())
def test_static_reachability_equals_simulated_pings(spec: dict[str, Any]) -> None:
    static = build(spec).reach_all()
    for (a, b), answer in static.items():
        sim = build(spec).ping(a, b, timeout_ns=4_000_000_000)  # fresh: no ARP or conntrack state
        assert answer.ok == sim.ok, (a, b, answer, sim, spec)


def test_reachable_explains_why_not() -> None:
    net = build({"subnets": [{"vlan_filtering": True}], "routers": [], "rules": [],
                 "hosts": [{"sub": 0, "vid": 1, "gw": None}, {"sub": 0, "vid": 10, "gw": None},
                           {"sub": 0, "vid": 10, "gw": None}]})  # fmt: skip
    assert not net.reachable("h0", "h1")
    assert "ARP" in net.reachable("h0", "h1").reason  # VLAN 1 vs 10: nobody answers
    r = net.reachable("h1", "h2")
    assert r.ok and r.hops == ("h1", "h2", "h1")
    assert not net.reachable("h0", aton("192.0.2.1")).ok  # no route at all
    assert net.ping("h1", "h2").ok and not net.ping("h0", "h1", timeout_ns=4 * 10**9).ok
