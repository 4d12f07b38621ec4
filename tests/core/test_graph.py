from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import networkx as nx
import pytest

from virtlevels.graph import GraphError, ResourceGraph


@pytest.fixture
def two_containers() -> ResourceGraph:
    """machine <- kernel <- {container a, container b}; a and b share a net namespace only."""
    g = ResourceGraph()
    g.add("machine:0", "machine")
    g.add("machine:0/memory:0", "memory", resource="memory", capacity=1024)
    g.link("machine:0/memory:0", "machine:0", "part_of")
    g.add("kernel:0", "kernel")
    g.link("kernel:0", "machine:0", "runs_on")
    for name in ("a", "b"):
        g.add(f"container:{name}", "container")
        g.link(f"container:{name}", "kernel:0", "runs_on")
        g.add(f"ns:pid:{name}", "namespace", type="pid")
        g.link(f"container:{name}", f"ns:pid:{name}", "member_of")
        g.link(f"container:{name}", "machine:0/memory:0", "allocated_from", amount=768)
    g.add("ns:net:shared", "namespace", type="net")
    g.link("container:a", "ns:net:shared", "member_of")
    g.link("container:b", "ns:net:shared", "member_of")
    return g


def test_add_link_remove_and_errors() -> None:
    g = ResourceGraph()
    g.add("m", "machine")
    with pytest.raises(GraphError, match="already exists"):
        g.add("m", "machine")
    with pytest.raises(GraphError, match="unknown node kind 'widget'"):
        g.add("w", "widget")
    with pytest.raises(GraphError, match="no node 'ghost'"):
        g.link("m", "ghost", "runs_on")
    with pytest.raises(GraphError, match="unknown edge kind"):
        g.link("m", "m", "likes")
    g.add("k", "kernel")
    g.link("k", "m", "runs_on")
    assert g.edges() == [("k", "m", "runs_on")]
    g.remove("k")
    assert "k" not in g and g.edges() == []
    g.register_node_kind("widget", layer=3)
    g.add("w", "widget")
    assert g.kind("w") == "widget"


def test_shared_answers_kernel_machine_and_common_namespaces(two_containers: ResourceGraph) -> None:
    shared = two_containers.shared_kinds("container:a", "container:b")
    assert shared == {
        "kernel": ["kernel:0"],
        "machine": ["machine:0"],
        "memory": ["machine:0/memory:0"],
        "namespace": ["ns:net:shared"],
    }
    # separate pid namespaces are not shared
    assert "ns:pid:a" not in two_containers.shared("container:a", "container:b")


def test_shared_includes_one_side_when_the_other_rests_on_it(two_containers: ResourceGraph) -> None:
    assert "kernel:0" in two_containers.shared("container:a", "kernel:0")


def test_blast_radius(two_containers: ResourceGraph) -> None:
    assert two_containers.dependents("kernel:0") == {"container:a", "container:b"}
    assert two_containers.dependents("ns:pid:a") == {"container:a"}
    assert "kernel:0" in two_containers.dependents("machine:0")


def test_reachable_over_chosen_edge_kinds() -> None:
    g = ResourceGraph()
    for n in ("h1", "h2", "h3"):
        g.add(n, "netdev")
    g.add("br0", "bridge")
    g.link("h1", "br0", "attached_to")
    g.link("h2", "br0", "attached_to")
    g.add("l", "link")
    assert g.reachable("h1", "h2")
    assert not g.reachable("h1", "h3")
    assert not g.reachable("h1", "h2", via=("link",))
    g.link("h3", "h2", "link")
    assert g.reachable("h1", "h3")


def test_overcommit(two_containers: ResourceGraph) -> None:
    assert two_containers.overcommit("memory") == {"machine:0/memory:0": 1.5}
    assert two_containers.overcommit("cpu") == {}


def test_exports_round_trip(two_containers: ResourceGraph, tmp_path) -> None:
    data = two_containers.to_json()
    json.dumps(data)
    back = nx.node_link_graph(data, edges="links", multigraph=True, directed=True)
    assert set(back.nodes) == set(two_containers.nodes())
    assert back.number_of_edges() == len(two_containers.edges())

    two_containers.update("kernel:0", meta={"not": "scalar"})
    graphml = two_containers.to_graphml()
    ET.fromstring(graphml)
    assert "not" not in graphml  # the dict attribute was dropped, the rest kept
    assert "pid" in graphml

    dot = two_containers.to_dot()
    assert dot.startswith("digraph virtlevels {")
    assert '"container:a" -> "kernel:0" [label="runs_on"];' in dot

    png = two_containers.draw(tmp_path / "graph.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
