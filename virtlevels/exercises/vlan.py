"""VLAN and route reachability (service level): hosts on access ports of two bridges joined by a
802.1Q trunk, and a router with one leg per routed VLAN.

The vnet plugin registers no backend, so its ``reachable()`` is not reachable through the
registry; the solver is a graph walk over a networkx graph of the topology: two hosts reach each
other at layer 2 when they are in the same VLAN and the trunk carries it (IEEE 802.1Q), and at
layer 3 when both VLANs have a router leg and each host's default gateway is its VLAN's leg."""

from __future__ import annotations

from typing import Any

import networkx as nx

from virtlevels.exercises.base import Answer, Problem, rng

NAME = "vlan-reach"


def topology(seed: int) -> dict[str, Any]:
    r = rng(NAME, seed)
    vlans = sorted(r.sample([10, 20, 30, 40], 3))
    hosts = {}
    for i in range(6):
        hosts[f"h{i + 1}"] = {"bridge": "br0" if i < 3 else "br1", "vlan": r.choice(vlans),
                              "gateway": r.random() < 0.8}  # fmt: skip
    trunk = sorted(r.sample(vlans, r.randint(1, 3)))
    routed = sorted(r.sample(vlans, r.randint(1, 3)))
    router_on = r.choice(["br0", "br1"])
    return {"vlans": vlans, "hosts": hosts, "trunk": trunk, "routed": routed, "router_on": router_on}


def generate(seed: int) -> Problem:
    t = topology(seed)
    trunk = ", ".join(map(str, t["trunk"]))
    lines = [f"Two bridges br0 and br1 are joined by a trunk carrying VLANs {trunk}.",
             f"A router hangs off a trunk port of {t['router_on']} with a leg (subinterface) in VLANs "
             + ", ".join(map(str, t["routed"])) + ".", "Hosts (access ports):"]  # fmt: skip
    for h, d in t["hosts"].items():
        gw = "default route via its VLAN's router leg" if d["gateway"] else "no default route"
        lines.append(f"  {h}: {d['bridge']} VLAN {d['vlan']}, {gw}")
    lines.append("Which pairs of hosts can ping each other?")
    return Problem(NAME, seed, "\n".join(lines), t)


def graph(t: dict[str, Any]) -> nx.Graph:
    """One node per (bridge, vlan) segment; edges are L2 paths (trunk) and router legs."""
    g = nx.Graph()
    for br in ("br0", "br1"):
        for v in t["vlans"]:
            g.add_node((br, v))
    for v in t["trunk"]:
        g.add_edge(("br0", v), ("br1", v))
    for v in t["routed"]:
        g.add_edge(("router",), (t["router_on"], v))
    return g


def reaches(t: dict[str, Any], a: str, b: str) -> bool:
    g = graph(t)
    ha, hb = t["hosts"][a], t["hosts"][b]
    sa, sb = (ha["bridge"], ha["vlan"]), (hb["bridge"], hb["vlan"])
    if ha["vlan"] == hb["vlan"]:
        l2 = nx.subgraph(g, [n for n in g if n != ("router",)])
        if nx.has_path(l2, sa, sb):
            return True

    # Routed: each end must reach the router at layer 2 in its VLAN and use it as gateway.
    def to_router(seg: tuple[str, int], host: dict[str, Any]) -> bool:
        if not host["gateway"] or host["vlan"] not in t["routed"]:
            return False
        leg = (t["router_on"], host["vlan"])
        return seg == leg or g.has_edge(seg, leg)

    return to_router(sa, ha) and to_router(sb, hb)


def solve(seed: int) -> Answer:
    t = topology(seed)
    names = sorted(t["hosts"])
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if reaches(t, a, b)]
    text = "  " + (", ".join(f"{a}<->{b}" for a, b in pairs) or "no pair")
    return Answer(
        NAME,
        seed,
        text,
        {"pairs": pairs},
        "graph walk (networkx) over VLAN segments; the vnet plugin offers no registry backend",
    )
