"""The resource graph: every object that exists in a World, and how they relate.

A wrapper over one networkx MultiDiGraph. Nodes have a stable id and a ``kind``; edges have a
``kind``. Dependency edges point from the dependent object to what it depends on
(``container --runs_on--> kernel --runs_on--> machine``), so "what does X rest on" is a
descendants query and "what breaks if X fails" (blast radius) is an ancestors query.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import networkx as nx

from virtlevels.errors import VirtlevelsError

#: Node kinds known to the core; plugins add more with :meth:`ResourceGraph.register_node_kind`.
NODE_KINDS: frozenset[str] = frozenset(
    {
        "world", "machine", "hart", "memory", "device", "hypervisor", "vm", "vcpu", "kernel",
        "namespace", "cgroup", "container", "process", "sandbox", "library", "netdev", "bridge",
        "link", "mount", "filesystem", "router", "network",
    }
)  # fmt: skip

#: Edge kinds and whether they are dependencies (dependent -> provider).
EDGE_KINDS: dict[str, bool] = {
    "runs_on": True,
    "allocated_from": True,
    "member_of": True,
    "limited_by": True,
    "attached_to": True,
    "maps_to": True,
    "part_of": True,
    "link": False,
}

#: The layer each kind is drawn in, bottom (0) to top.
LAYERS: dict[str, int] = {
    "world": 0, "machine": 1, "hart": 2, "memory": 2, "device": 2, "hypervisor": 3, "vm": 4,
    "vcpu": 4, "kernel": 5, "namespace": 6, "cgroup": 6, "mount": 6, "filesystem": 6,
    "container": 7, "sandbox": 8, "process": 9, "library": 10, "netdev": 6, "bridge": 6,
    "router": 6, "link": 6, "network": 6,
}  # fmt: skip


class GraphError(VirtlevelsError):
    """An invalid graph operation (unknown kind, duplicate id, missing node)."""


@attrs.define
class ResourceGraph:
    """Typed nodes and edges over a networkx multigraph, with the queries the levels need."""

    g: nx.MultiDiGraph = attrs.field(factory=nx.MultiDiGraph)
    node_kinds: set[str] = attrs.field(factory=lambda: set(NODE_KINDS))
    edge_kinds: dict[str, bool] = attrs.field(factory=lambda: dict(EDGE_KINDS))

    # -- kinds -------------------------------------------------------------------------------
    def register_node_kind(self, kind: str, layer: int | None = None) -> None:
        self.node_kinds.add(kind)
        if layer is not None:
            LAYERS.setdefault(kind, layer)

    def register_edge_kind(self, kind: str, *, dependency: bool) -> None:
        self.edge_kinds[kind] = dependency

    # -- building ----------------------------------------------------------------------------
    def add(self, node_id: str, kind: str, **attrs_: Any) -> str:
        """Add a node; ids are unique for the life of the node."""
        if kind not in self.node_kinds:
            raise GraphError(f"unknown node kind {kind!r} for {node_id!r} (known: {sorted(self.node_kinds)})")
        if node_id in self.g:
            raise GraphError(f"node {node_id!r} already exists")
        self.g.add_node(node_id, kind=kind, **attrs_)
        return node_id

    def link(self, a: str, b: str, kind: str, **attrs_: Any) -> int:
        """Add an edge ``a -kind-> b`` between existing nodes; returns the edge key."""
        if kind not in self.edge_kinds:
            raise GraphError(f"unknown edge kind {kind!r} (known: {sorted(self.edge_kinds)})")
        for node in (a, b):
            if node not in self.g:
                raise GraphError(f"cannot link {a!r} -{kind}-> {b!r}: no node {node!r}")
        return int(self.g.add_edge(a, b, key=None, kind=kind, **attrs_))

    def unlink(self, a: str, b: str, kind: str | None = None) -> None:
        if not self.g.has_edge(a, b):
            return
        keys = [k for k, d in self.g[a][b].items() if kind is None or d["kind"] == kind]
        for k in keys:
            self.g.remove_edge(a, b, key=k)

    def remove(self, node_id: str) -> None:
        """Remove a node and its edges (objects call this when destroyed)."""
        if node_id not in self.g:
            raise GraphError(f"no node {node_id!r}")
        self.g.remove_node(node_id)

    def update(self, node_id: str, **attrs_: Any) -> None:
        """Set attributes of an existing node."""
        self.g.nodes[node_id].update(attrs_)

    # -- reading -----------------------------------------------------------------------------
    def __contains__(self, node_id: object) -> bool:
        return node_id in self.g

    def __len__(self) -> int:
        return int(self.g.number_of_nodes())

    def kind(self, node_id: str) -> str:
        return str(self.g.nodes[node_id]["kind"])

    def attrs(self, node_id: str) -> dict[str, Any]:
        return dict(self.g.nodes[node_id])

    def nodes(self, kind: str | None = None) -> list[str]:
        return sorted(n for n, d in self.g.nodes(data=True) if kind is None or d["kind"] == kind)

    def edges(self, kind: str | None = None) -> list[tuple[str, str, str]]:
        return sorted(
            (a, b, d["kind"]) for a, b, d in self.g.edges(data=True) if kind is None or d["kind"] == kind
        )

    def _dependency_view(self) -> nx.MultiDiGraph:
        deps = self.edge_kinds
        return nx.subgraph_view(self.g, filter_edge=lambda a, b, k: deps.get(self.g[a][b][k]["kind"], False))

    def depends_on(self, node_id: str) -> set[str]:
        """Everything ``node_id`` rests on, transitively."""
        self._need(node_id)
        return set(nx.descendants(self._dependency_view(), node_id))

    def dependents(self, node_id: str) -> set[str]:
        """The blast radius: everything that (transitively) depends on ``node_id``."""
        self._need(node_id)
        return set(nx.ancestors(self._dependency_view(), node_id))

    def shared(self, a: str, b: str) -> set[str]:
        """What two objects both rest on (their common dependencies, each included if the other uses it)."""
        da = self.depends_on(a) | {a}
        db = self.depends_on(b) | {b}
        return (da & db) - {a, b} | ({a} & db) | ({b} & da)

    def shared_kinds(self, a: str, b: str) -> dict[str, list[str]]:
        """:meth:`shared`, grouped by node kind."""
        out: dict[str, list[str]] = {}
        for n in sorted(self.shared(a, b)):
            out.setdefault(self.kind(n), []).append(n)
        return out

    def reachable(self, a: str, b: str, via: Iterable[str] = ("link", "attached_to")) -> bool:
        """Whether ``b`` can be reached from ``a`` over edges of the given kinds, in either direction."""
        self._need(a)
        self._need(b)
        kinds = set(via)
        view = nx.subgraph_view(self.g, filter_edge=lambda x, y, k: self.g[x][y][k]["kind"] in kinds)
        return bool(nx.has_path(view.to_undirected(as_view=True), a, b))

    def overcommit(self, resource: str) -> dict[str, float]:
        """Per provider of ``resource`` (nodes with ``resource`` and ``capacity`` attributes):
        the sum of ``amount`` on ``allocated_from`` edges into it, divided by its capacity."""
        out: dict[str, float] = {}
        for node, data in sorted(self.g.nodes(data=True)):
            if data.get("resource") != resource or not data.get("capacity"):
                continue
            total = sum(
                d.get("amount", 0)
                for _src, _dst, d in self.g.in_edges(node, data=True)
                if d["kind"] == "allocated_from"
            )
            out[node] = total / data["capacity"]
        return out

    def _need(self, node_id: str) -> None:
        if node_id not in self.g:
            raise GraphError(f"no node {node_id!r}")

    # -- export ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Node-link JSON (networkx's format), every value made JSON-safe."""
        data = nx.node_link_data(self.g, edges="links")
        return json.loads(json.dumps(data, default=str, sort_keys=True))

    def to_dot(self) -> str:
        """Graphviz DOT text, nodes ranked by layer."""

        def q(s: object) -> str:
            return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = ["digraph virtlevels {", "  rankdir=BT;"]
        for n, d in sorted(self.g.nodes(data=True)):
            lines.append(f"  {q(n)} [label={q(n)}, kind={q(d['kind'])}];")
        for a, b, d in sorted(self.g.edges(data=True), key=lambda e: (e[0], e[1], e[2]["kind"])):
            lines.append(f"  {q(a)} -> {q(b)} [label={q(d['kind'])}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_graphml(self) -> str:
        """GraphML text; attributes that are not str/int/float/bool are dropped (GraphML holds scalars)."""
        scalar = (str, int, float, bool)
        h = nx.MultiDiGraph()
        for n, d in self.g.nodes(data=True):
            h.add_node(n, **{k: v for k, v in d.items() if isinstance(v, scalar)})
        for a, b, k, d in self.g.edges(keys=True, data=True):
            h.add_edge(a, b, key=k, **{kk: v for kk, v in d.items() if isinstance(v, scalar)})
        buf = io.BytesIO()
        nx.write_graphml(h, buf)
        return buf.getvalue().decode()

    def draw(self, path: str | Path) -> Path:
        """A layered PNG drawing (needs the ``plot`` extra: matplotlib)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise VirtlevelsError(
                "drawing the graph needs matplotlib: pip install 'virtlevels[plot]'"
            ) from exc
        h = nx.DiGraph()
        for n, d in self.g.nodes(data=True):
            h.add_node(n, layer=LAYERS.get(d["kind"], 11))
        h.add_edges_from((a, b) for a, b in self.g.edges())
        pos = nx.multipartite_layout(h, subset_key="layer", align="horizontal") if len(h) else {}
        fig, ax = plt.subplots(figsize=(max(6, len(h) * 0.6), 6))
        nx.draw_networkx(h, pos, ax=ax, node_size=400, font_size=7, arrows=True)
        ax.set_axis_off()
        out = Path(path)
        fig.savefig(out, dpi=100, bbox_inches="tight")
        plt.close(fig)
        return out

    def iter_kind(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for n, d in sorted(self.g.nodes(data=True)):
            if d["kind"] == kind:
                yield n, d
