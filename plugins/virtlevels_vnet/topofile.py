"""Topology files: a network described in TOML (the format is documented in docs/vnet.md).

    [[host]]                      [[switch]]            [[router]]
    name = "h1"                   name = "s1"           name = "r1"
    ip = "10.0.1.10/24"                                 routes = ["10.0.3.0/24 via 10.9.0.2"]
    gateway = "10.0.1.1"                                rules = ["-A FORWARD -p icmp -j DROP"]
    kind = "container"

    [[link]]
    a = "h1"
    b = "s1"
    latency = "1ms"
    bandwidth = "100Mbit"
    loss = 0.0
    vlan = 10                     # access VLAN on the switch end(s); trunk = [10, 20] for tagged

Everything is checked before anything is built: an error names ``FILE:LINE`` and the entry and
field (``topo.toml:14: link 2 (h1-s9) field 'b': no node 's9'``); a file with any error
builds nothing.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

from virtlevels.world import World
from virtlevels_vnet.filter import RuleError, parse_rule
from virtlevels_vnet.frames.ipv4 import FrameError, mask, parse_cidr
from virtlevels_vnet.ipcmd import IpError, configure
from virtlevels_vnet.topo import Network, TopologyError

_SECTIONS = {
    "host": {"name", "ip", "gateway", "kind", "technique", "mac", "routes", "rules", "commands"},
    "switch": {"name", "vlan_filtering"},
    "router": {"name", "routes", "rules", "commands"},
    "link": {"a", "b", "latency", "bandwidth", "loss", "queue", "a_ip", "b_ip", "vlan", "trunk"},
}
_TOP = {"name", "seed", *_SECTIONS}


class TopologyFileError(TopologyError):
    """A topology file that cannot be loaded; the message starts with ``FILE:LINE:``."""


class _Locator:
    """Line numbers of ``[[section]]`` headers and ``key =`` lines (tomllib gives none)."""

    def __init__(self, text: str) -> None:
        self.headers: dict[str, list[int]] = {s: [] for s in _SECTIONS}
        self.lines = text.splitlines()
        for i, line in enumerate(self.lines, 1):
            m = re.match(r"\s*\[\[\s*(\w+)\s*\]\]", line)
            if m and m.group(1) in self.headers:
                self.headers[m.group(1)].append(i)

    def line(self, section: str, index: int, key: str | None = None) -> int:
        hs = self.headers.get(section, [])
        if index >= len(hs):
            return 0
        start = hs[index]
        if key is None:
            return start
        for j in range(start, len(self.lines)):
            text = self.lines[j]
            if re.match(r"\s*\[", text):
                break
            if re.match(rf"\s*{re.escape(key)}\s*=", text):
                return j + 1
        return start


class _Loader:
    def __init__(self, path: str, text: str) -> None:
        self.path, self.loc = path, _Locator(text)

    def err(self, section: str, index: int, key: str | None, msg: str, name: str = "") -> TopologyFileError:
        line = self.loc.line(section, index, key) if section else 0
        where = f"{self.path}:{line}" if line else self.path
        what = f"{section} {index + 1}" + (f" ({name})" if name else "")
        field = f" field {key!r}" if key else ""
        return TopologyFileError(f"{where}: {what}{field}: {msg}")


def _list_of_str(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def load_topology(path: str | Path, *, world: World | None = None) -> Network:
    """Read, check and build the network in ``path``; returns it started and configured."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise TopologyFileError(f"{p}: cannot read: {e.strerror}") from None
    return loads_topology(text, str(p), world=world)


def loads_topology(text: str, path: str = "<topology>", *, world: World | None = None) -> Network:
    """:func:`load_topology` from a string (``path`` names it in errors)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        where = f"{path}:{m.group(1)}" if m else path
        raise TopologyFileError(f"{where}: not valid TOML: {re.sub(r' [(]at line.*', '', str(e))}") from None
    ld = _Loader(path, text)
    for key in doc:
        if key not in _TOP:
            raise TopologyFileError(
                f"{path}: unknown top-level key {key!r} (known: {', '.join(sorted(_TOP))})"
            )
    seed = doc.get("seed", 0)
    if not isinstance(seed, int):
        raise TopologyFileError(f"{path}: 'seed' must be an integer")
    entries: dict[str, list[dict[str, Any]]] = {}
    for sec, allowed in _SECTIONS.items():
        items = doc.get(sec, [])
        if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
            raise TopologyFileError(f"{path}: {sec!r} must be an array of tables ([[{sec}]])")
        for i, item in enumerate(items):
            for k in item:
                if k not in allowed:
                    raise ld.err(sec, i, k, f"unknown field (known: {', '.join(sorted(allowed))})",
                                 str(item.get("name", "")))  # fmt: skip
        entries[sec] = items
    net = Network(world if world is not None else World(seed=seed))
    _declare(ld, net, entries)
    plans = _check_config(ld, net, entries)
    net.start()
    _apply(ld, net, entries, plans)
    return net


def _declare(ld: _Loader, net: Network, e: dict[str, list[dict[str, Any]]]) -> None:
    """Nodes and links (Network validates each and builds nothing until start)."""
    for sec in ("host", "switch", "router"):
        for i, item in enumerate(e[sec]):
            name = item.get("name")
            if not isinstance(name, str):
                raise ld.err(sec, i, "name", "missing or not a string")
            for k in ("ip", "gateway", "kind", "technique", "mac"):
                if k in item and not isinstance(item[k], str):
                    raise ld.err(sec, i, k, "must be a string", name)
            for k in ("routes", "rules", "commands"):
                if k in item and not _list_of_str(item[k]):
                    raise ld.err(sec, i, k, "must be a list of strings", name)
            try:
                if sec == "host":
                    vm = {k: item[k] for k in ("technique", "mac") if k in item}  # VM hosts only
                    net.add_host(name, item.get("ip"), gateway=item.get("gateway"),
                                 kind=item.get("kind", "process"), **vm)  # fmt: skip
                elif sec == "switch":
                    if not isinstance(item.get("vlan_filtering", False), bool):
                        raise TopologyError("vlan_filtering must be true or false")
                    net.add_switch(name)
                else:
                    net.add_router(name)
            except TopologyError as exc:
                text = str(exc)
                probes = (("kind", "kind"), ("ip", " ip:"), ("mac", " mac:"), ("technique", " technique:"))
                key = next((k for k, probe in probes if probe in text), None)
                msg = str(exc).replace(f"host {name!r} ", "").removeprefix(f"{key}: ")
                raise ld.err(sec, i, key, msg, name) from None
    for i, ln in enumerate(e["link"]):
        label = f"{ln.get('a')}-{ln.get('b')}"
        for k in ("a", "b"):
            if not isinstance(ln.get(k), str):
                raise ld.err("link", i, k, "missing or not a string", label)
            if ln[k] not in net.nodes:
                raise ld.err("link", i, k, f"no node {ln[k]!r}", label)
        a, b = str(ln["a"]), str(ln["b"])
        for k in ("loss",):
            if k in ln and not isinstance(ln[k], (int, float)):
                raise ld.err("link", i, k, "must be a number", label)
        if "queue" in ln and not isinstance(ln["queue"], int):
            raise ld.err("link", i, "queue", "must be an integer", label)
        vlan = ln.get("vlan")
        trunk = ln.get("trunk", [])
        if vlan is not None and (not isinstance(vlan, int) or not 1 <= vlan <= 4094):
            raise ld.err("link", i, "vlan", f"VLAN id {vlan!r} is not in 1-4094", label)
        if not isinstance(trunk, list) or not all(isinstance(v, int) and 1 <= v <= 4094 for v in trunk):
            raise ld.err("link", i, "trunk", "must be a list of VLAN ids in 1-4094", label)
        if (vlan is not None or trunk) and "switch" not in (net.nodes[a].role, net.nodes[b].role):
            raise ld.err("link", i, "vlan" if vlan is not None else "trunk", "VLANs need a switch end", label)
        try:
            net.add_link(a, b, latency=ln.get("latency"), bandwidth=ln.get("bandwidth"),
                         loss=float(ln.get("loss", 0.0)), queue=ln.get("queue", 1000),
                         a_ip=ln.get("a_ip"), b_ip=ln.get("b_ip"))  # fmt: skip
        except TopologyError as exc:
            msg = str(exc).replace(f"link {label}: ", "")
            key = next(
                (k for k in ("latency", "bandwidth", "loss", "queue", "a_ip", "b_ip") if k in msg), None
            )
            if key is None and "address of" in msg:
                key = "a_ip" if f"address of {a}" in msg else "b_ip"
            raise ld.err("link", i, key, msg, label) from None


def _ifaces(net: Network) -> dict[str, list[tuple[str, str | None]]]:
    """Per node, its interfaces in creation order and the address each will get (as start does)."""
    out: dict[str, list[tuple[str, str | None]]] = {n: [] for n in net.nodes}
    has_addr: set[str] = set()
    for ln in net.links:
        for end, ip in ((ln.a, ln.a_ip), (ln.b, ln.b_ip)):
            node = net.nodes[end]
            dev = f"{end}-eth{len(out[end])}"
            addr = None
            if node.role == "host" and end not in has_addr:
                addr = ip or node.ip
                has_addr.add(end)
            elif node.role == "router":
                addr = ip
            out[end].append((dev, addr))
    return out


def _check_config(ld: _Loader, net: Network, e: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Routes, rules and commands checked against what the nodes will have; returns, per node,
    the ip/iptables commands to run after start."""
    ifaces = _ifaces(net)
    plans: dict[str, list[str]] = {}
    for sec in ("host", "router"):
        for i, item in enumerate(e[sec]):
            name = item["name"]
            nets = [parse_cidr(a) for _d, a in ifaces[name] if a]
            devs = {d for d, _a in ifaces[name]} | {"lo"}
            cmds: list[str] = []
            for r in item.get("routes", []):
                words = r.split()
                if not words:
                    raise ld.err(sec, i, "routes", "empty route", name)
                try:
                    dst = words[0]
                    if dst != "default":
                        parse_cidr(dst)
                    opts = dict(zip(words[1::2], words[2::2], strict=False))
                    if len(words) % 2 == 0 or any(k not in ("via", "dev", "metric") for k in opts):
                        raise IpError(f"cannot parse route {r!r} (use 'DST [via GW] [dev DEV] [metric N]')")
                    if "dev" in opts and opts["dev"] not in devs:
                        raise IpError(f"route {r!r}: {name} has no interface {opts['dev']!r} "
                                      f"(it has {', '.join(sorted(devs))})")  # fmt: skip
                    if "via" in opts:
                        gw = parse_cidr(opts["via"])[0]
                        if "dev" not in opts and not any(gw & mask(p) == a & mask(p) for a, p in nets):
                            raise IpError(f"route {r!r}: gateway {opts['via']} is not on a network of {name}")
                    elif "dev" not in opts:
                        raise IpError(f"route {r!r} needs 'via GW' or 'dev DEV'")
                except (FrameError, IpError) as exc:
                    raise ld.err(sec, i, "routes", str(exc), name) from None
                cmds.append(f"ip route add {r}")
            for r in item.get("rules", []):
                try:
                    words = shlex.split(r)
                    table = "filter"
                    if words[:2] in (["-t", "nat"], ["-t", "filter"]):
                        table, words = words[1], words[2:]
                    rule = parse_rule(shlex.join(words))
                    if (rule.target in ("DNAT", "SNAT", "MASQUERADE")) != (table == "nat"):
                        raise RuleError(
                            f"rule {r!r}: {rule.target} needs -t {'filter' if table == 'nat' else 'nat'}"
                        )
                except (RuleError, ValueError) as exc:
                    raise ld.err(sec, i, "rules", str(exc), name) from None
                cmds.append(f"iptables -t {table} {shlex.join(words)}")
            for c in item.get("commands", []):
                if c.split()[:1] not in (["ip"], ["iptables"], ["bridge"], ["sysctl"]):
                    raise ld.err(
                        sec, i, "commands", f"{c!r}: not an ip, iptables, bridge or sysctl command", name
                    )
                cmds.append(c)
            plans[name] = cmds
    return plans


def _apply(
    ld: _Loader, net: Network, e: dict[str, list[dict[str, Any]]], plans: dict[str, list[str]]
) -> None:
    switches = {item["name"]: bool(item.get("vlan_filtering", False)) for item in e["switch"]}
    for i, ln in enumerate(e["link"]):
        spec = net.links[i]
        for end in (spec.a, spec.b):
            node = net.nodes[end]
            if node.role != "switch" or (ln.get("vlan") is None and not ln.get("trunk")):
                continue
            switches[end] = True
    for name, filtering in switches.items():
        br = net.nodes[name].bridge
        assert br is not None
        br.vlan_filtering = filtering
    for i, ln in enumerate(e["link"]):
        spec = net.links[i]
        for end, dev in ((spec.a, spec.link.a), (spec.b, spec.link.b)):
            br = net.nodes[end].bridge
            if br is None:
                continue
            if ln.get("vlan") is not None:
                br.set_access(dev, ln["vlan"])
            for vid in ln.get("trunk", []):
                br.vlan_add(dev, vid)
    for sec in ("host", "router"):
        for i, item in enumerate(e[sec]):
            name = item["name"]
            stack = net.nodes[name].stack
            for c in plans[name]:
                try:
                    configure(stack, c)
                except IpError as exc:
                    key = (
                        "routes"
                        if c.startswith("ip route")
                        else "rules"
                        if c.startswith("iptables")
                        else "commands"
                    )
                    raise ld.err(sec, i, key, str(exc), name) from None
