"""``virtlevels net ...``: build a topology file's network and look at it.

    virtlevels net up TOPOLOGY.toml                 build it; print nodes, interfaces and routes
    virtlevels net pingall TOPOLOGY.toml [--static] every host pings every other (Mininet pingall)
    virtlevels net reach TOPOLOGY.toml A B          the static answer: would A's ping reach B, and why
    virtlevels net capture TOPOLOGY.toml IFACE -o out.pcap [--ping A B | --pingall]
    virtlevels net draw TOPOLOGY.toml -o topo.png|topo.dot

Each invocation builds the network afresh in a new World (seeded by ``--seed``): the network
exists for the length of the command, as a Mininet session does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from virtlevels.errors import ConfigError
from virtlevels.graph import ResourceGraph
from virtlevels.registry import Command
from virtlevels.world import World
from virtlevels_vnet.frames.pcap import PcapWriter
from virtlevels_vnet.topo import Network
from virtlevels_vnet.topofile import load_topology


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    up = sub.add_parser("up", help="build the network and print it")
    up.add_argument("topology")
    pa = sub.add_parser("pingall", help="every host pings every other host")
    pa.add_argument("topology")
    pa.add_argument("--static", action="store_true", help="also give the static answer and compare")
    rc = sub.add_parser("reach", help="static reachability from A to B (no packets sent)")
    rc.add_argument("topology")
    rc.add_argument("a")
    rc.add_argument("b")
    cp = sub.add_parser("capture", help="capture an interface to a pcap file while pinging")
    cp.add_argument("topology")
    cp.add_argument("iface", help="interface name (e.g. h1-eth0), or NODE:IFACE")
    cp.add_argument("-o", "--output", required=True, help="pcap file to write")
    cp.add_argument("--ping", nargs=2, metavar=("A", "B"), help="ping from host A to host B")
    cp.add_argument("--pingall", action="store_true", help="run pingall during the capture")
    dr = sub.add_parser("draw", help="a picture of the topology (.png needs matplotlib, or .dot)")
    dr.add_argument("topology")
    dr.add_argument("-o", "--output", required=True)


def _world(args: argparse.Namespace) -> World:
    return World(seed=args.world.seed, entry_points=False)


def _up(net: Network) -> int:
    hosts = net.hosts()
    roles = [n.role for n in net.nodes.values()]
    print(f"*** network up: {len(hosts)} hosts, {roles.count('switch')} switches, "
          f"{roles.count('router')} routers, {len(net.links)} links")  # fmt: skip
    for n in net.nodes.values():
        assert n.stack is not None
        extra = f" ({n.kind})" if n.role == "host" else ""
        print(f"{n.role} {n.name}{extra}")
        for info in n.stack.interfaces():
            if info.name == "lo":
                continue
            dev = n.stack.devices[info.name]
            master = f" master {dev.master.name}" if dev.master is not None and dev.master is not dev else ""
            print(f"  {info.name}: {' '.join(info.addresses) or '-'} {info.mac}{master}")
        for r in n.stack.routes.routes():
            if r.proto != "kernel":
                print(f"  route {r}")
    return 0


def _pingall(net: Network, static: bool, path: str) -> int:
    print("*** Ping: testing ping reachability")
    loss, results = net.ping_all()
    by_src: dict[str, list[str]] = {}
    for r in results:
        by_src.setdefault(r.src, []).append(r.dst if r.ok else "X")
    for src, row in by_src.items():
        print(f"{src} -> {' '.join(row)}")
    got = sum(1 for r in results if r.ok)
    print(f"*** Results: {loss:.0f}% dropped ({got}/{len(results)} received)")
    if static:
        fresh = load_topology(path, world=World(seed=net.world.seed, entry_points=False))
        differ = 0
        for r in results:
            s = fresh.reachable(r.src, r.dst)
            if s.ok != r.ok:
                differ += 1
                print(f"static answer differs: {r.src} -> {r.dst}: static {s.ok} ({s.reason}), ping {r.ok}")
        print(f"*** Static analysis agrees on {len(results) - differ}/{len(results)} pairs")
    return 0


def _find_dev(net: Network, spec: str) -> object:
    node_name, _, ifname = spec.rpartition(":")
    nodes = [net.host(node_name)] if node_name else list(net.nodes.values())
    found = [n.stack.devices[ifname] for n in nodes if n.stack is not None and ifname in n.stack.devices]
    if not found:
        raise ConfigError(f"no interface {spec!r} (interfaces are named NODE-ethN, e.g. h1-eth0)")
    if len(found) > 1:
        raise ConfigError(f"interface {ifname!r} is on several nodes: say NODE:{ifname}")
    return found[0]


def _capture(net: Network, args: argparse.Namespace) -> int:
    dev = _find_dev(net, args.iface)
    if not args.ping and not args.pingall:
        raise ConfigError("nothing to capture: give --ping A B or --pingall")
    out = Path(args.output)
    try:
        fh = out.open("wb")
    except OSError as e:
        raise ConfigError(f"{out}: cannot write: {e.strerror}") from None
    writer = PcapWriter(fh, linktype=101 if getattr(dev, "l3", False) else 1)

    def tap(frame: bytes, _direction: str) -> None:
        writer.write(net.ctx.now_ns(), frame)

    dev.taps.append(tap)  # type: ignore[attr-defined]
    try:
        if args.ping:
            r = net.ping(args.ping[0], args.ping[1])
            print(f"ping {args.ping[0]} -> {args.ping[1]}: {'ok' if r.ok else 'failed ' + r.error}")
        if args.pingall:
            loss, _res = net.ping_all()
            print(f"pingall: {loss:.0f}% dropped")
    finally:
        writer.close()
    print(f"captured {writer.count} frames on {args.iface} to {out}")
    return 0


def _draw(net: Network, output: str) -> int:
    """The topology's part of the resource graph (hosts, switches, routers and their links),
    drawn by the graph's own exporters."""
    g = net.world.graph
    topo = ResourceGraph()
    names = {n.node_id: n for n in net.nodes.values()}
    for n in net.nodes.values():
        topo.add(n.name, g.kind(n.node_id), role=n.role, ip=n.ip or "")
    for a, b, kind in g.edges("link"):
        if a in names and b in names:
            topo.link(names[a].name, names[b].name, kind)
    out = Path(output)
    if out.suffix == ".dot":
        out.write_text(topo.to_dot())
    elif out.suffix == ".png":
        topo.draw(out)
    else:
        raise ConfigError(f"{output}: the picture must be .png or .dot")
    print(f"wrote {out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    net = load_topology(args.topology, world=_world(args))
    if args.verb == "up":
        return _up(net)
    if args.verb == "pingall":
        return _pingall(net, args.static, args.topology)
    if args.verb == "reach":
        for h in (args.a, args.b):
            if h not in net.nodes or net.nodes[h].role != "host":
                raise ConfigError(f"{args.topology}: no host {h!r}")
        r = net.reachable(args.a, args.b)
        print(f"{args.a} -> {args.b}: {'reachable' if r.ok else 'not reachable'}")
        print(f"  path: {' > '.join(r.hops)}")
        if not r.ok:
            print(f"  why: {r.reason}")
        return 0 if r.ok else 1
    if args.verb == "capture":
        return _capture(net, args)
    if args.verb == "draw":
        return _draw(net, args.output)
    return 2


COMMANDS = [Command("net", "virtual networks: up, pingall, reach, capture, draw (TOML topologies)",
                    _configure, _run)]  # fmt: skip
