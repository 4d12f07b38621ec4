"""An ``ip``-like configuration language for one namespace's stack: the text a user would type
(ip(8), ip-address(8), ip-link(8), ip-route(8), ip-neighbour(8), bridge(8), iptables(8),
sysctl(8)) parsed into :class:`~virtlevels_vnet.stack.NetStack` method calls.

    configure(stack, "ip addr add 10.0.0.1/24 dev eth0")
    configure(stack, "ip link set eth0 up")
    configure(stack, "ip route add default via 10.0.0.254")
    configure(stack, "iptables -t nat -A POSTROUTING -o eth1 -j MASQUERADE")
    print(configure(stack, "ip route"))

A command that cannot be parsed, or that the stack refuses, raises :class:`IpError` naming
the command, the token and (for a refusal) the errno; the stack is left as it was.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from virtlevels.errors import ConfigError
from virtlevels.kernel.errno import KernelError
from virtlevels_vnet.devices.bridge import Bridge, BridgeError
from virtlevels_vnet.devices.tuntap import TapDev, TunDev
from virtlevels_vnet.devices.veth import veth_pair
from virtlevels_vnet.devices.vlan import VlanDev
from virtlevels_vnet.devices.vxlan import VXLAN_PORT, VxlanDev
from virtlevels_vnet.filter import RuleError, parse_rule
from virtlevels_vnet.frames.eth import FrameError, mac_str, parse_mac
from virtlevels_vnet.frames.ipv4 import aton, ntoa

#: Resolves a namespace name (``ip link set DEV netns NAME``) to its stack.
NetnsResolver = Callable[[str], Any]


class IpError(ConfigError):
    """A configuration command that cannot be parsed or applied; names the command and token."""


def configure(stack: Any, command: str, *, netns: NetnsResolver | None = None) -> str:
    """Run one command (``ip ...``, ``iptables ...``, ``bridge ...``, ``sysctl ...``) on
    ``stack``; returns what the command prints (empty for changes)."""
    try:
        words = shlex.split(command)
    except ValueError as e:
        raise IpError(f"{command!r}: {e}") from None
    if not words:
        raise IpError("empty command")
    prog, args = words[0], words[1:]
    handlers: dict[str, Callable[[Any, str, list[str], NetnsResolver | None], str]] = {
        "ip": _ip, "iptables": _iptables, "bridge": _bridge, "sysctl": _sysctl,
    }  # fmt: skip
    h = handlers.get(prog)
    if h is None:
        raise IpError(f"{command!r}: unknown program {prog!r} (known: {', '.join(handlers)})")
    try:
        return h(stack, command, args, netns)
    except KernelError as e:
        raise IpError(f"{command!r}: {e}") from None
    except (RuleError, BridgeError, FrameError) as e:
        raise IpError(f"{command!r}: {e}") from None


def configure_all(stack: Any, commands: str | list[str], *, netns: NetnsResolver | None = None) -> str:
    """Several commands (a list, or lines of text; ``#`` starts a comment). Stops at the first
    error, which says which line it was."""
    lines = commands.splitlines() if isinstance(commands, str) else list(commands)
    out = []
    for i, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            out.append(configure(stack, text, netns=netns))
        except IpError as e:
            raise IpError(f"line {i}: {e}") from None
    return "".join(out)


# -- helpers -----------------------------------------------------------------------------------------
class _Args:
    def __init__(self, command: str, words: list[str]) -> None:
        self.command, self.words, self.i = command, words, 0

    def more(self) -> bool:
        return self.i < len(self.words)

    def peek(self) -> str:
        return self.words[self.i] if self.more() else ""

    def next(self, what: str) -> str:
        if not self.more():
            raise IpError(f"{self.command!r}: missing {what}")
        self.i += 1
        return self.words[self.i - 1]

    def bad(self, tok: str, hint: str = "") -> IpError:
        return IpError(f"{self.command!r}: unexpected {tok!r}" + (f" ({hint})" if hint else ""))

    def opts(self, known: dict[str, bool]) -> dict[str, str]:
        """KEY VALUE pairs (``known[key]`` False for a flag without value) until the end."""
        out: dict[str, str] = {}
        while self.more():
            k = self.next("option")
            if k not in known:
                raise self.bad(k, "expected one of: " + ", ".join(known))
            out[k] = self.next(f"value of {k}") if known[k] else ""
        return out


def _int(a: _Args, text: str, what: str, lo: int, hi: int) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise IpError(f"{a.command!r}: {what} {text!r} is not a number") from None
    if not lo <= v <= hi:
        raise IpError(f"{a.command!r}: {what} {v} is not in {lo}-{hi}")
    return v


def _match(word: str, *names: str) -> bool:
    """ip(8) accepts unique prefixes of its keywords (``ip a``, ``ip ro``)."""
    return any(n.startswith(word) for n in names) and bool(word)


# -- ip ----------------------------------------------------------------------------------------------
def _ip(stack: Any, cmd: str, words: list[str], netns: NetnsResolver | None) -> str:
    a = _Args(cmd, words)
    obj = a.next("object (addr, link, route, neigh, tuntap)")
    if _match(obj, "address"):
        return _ip_addr(stack, a)
    if _match(obj, "link"):
        return _ip_link(stack, a, netns)
    if _match(obj, "route"):
        return _ip_route(stack, a)
    if _match(obj, "neighbour", "neighbor"):
        return _ip_neigh(stack, a)
    if obj == "tuntap":
        return _ip_tuntap(stack, a)
    raise a.bad(obj, "expected addr, link, route, neigh or tuntap")


def _show_addr(stack: Any) -> str:
    lines = []
    for info in stack.interfaces():
        state = "UP" if info.up else "DOWN"
        lines.append(f"{info.index}: {info.name}: mtu {info.mtu} state {state}")
        lines.append(f"    link/ether {info.mac}")
        lines.extend(f"    inet {c}" for c in info.addresses)
    return "\n".join(lines) + "\n"


def _ip_addr(stack: Any, a: _Args) -> str:
    verb = a.next("verb") if a.more() else "show"
    if _match(verb, "show", "list"):
        return _show_addr(stack)
    if verb not in ("add", "del", "delete"):
        raise a.bad(verb, "expected add, del or show")
    cidr = a.next("address")
    o = a.opts({"dev": True})
    if "dev" not in o:
        raise IpError(f"{a.command!r}: missing 'dev DEVICE'")
    if verb == "add":
        stack.addr_add(o["dev"], cidr)
    else:
        stack.addr_del(o["dev"], cidr if "/" in cidr else cidr + "/32")
    return ""


def _ip_link(stack: Any, a: _Args, netns: NetnsResolver | None) -> str:
    verb = a.next("verb") if a.more() else "show"
    if _match(verb, "show", "list"):
        out = []
        for info in stack.interfaces():
            dev = stack.devices[info.name]
            master = f" master {dev.master.name}" if dev.master is not None else ""
            out.append(f"{info.index}: {info.name}: <{'UP' if info.up else 'DOWN'}> mtu {info.mtu}"
                       f" type {dev.kind}{master} link/ether {info.mac}")  # fmt: skip
        return "\n".join(out) + "\n"
    if verb == "set":
        name = a.next("device")
        dev = stack.dev(name)
        while a.more():
            w = a.next("setting")
            if w in ("up", "down"):
                stack.set_link_up(name, w == "up")
            elif w == "master":
                br = stack.dev(a.next("bridge"))
                if not isinstance(br, Bridge):
                    raise IpError(f"{a.command!r}: {br.name} is not a bridge")
                br.add_port(dev)
            elif w == "nomaster":
                if dev.master is not None:
                    dev.master.del_port(dev)
            elif w == "mtu":
                dev.mtu = _int(a, a.next("mtu"), "mtu", 68, 65535)
            elif w == "address":
                dev.mac = parse_mac(a.next("MAC address"))
            elif w == "netns":
                target = a.next("namespace")
                if netns is None:
                    raise IpError(f"{a.command!r}: no namespaces are known here")
                other = netns(target)
                if other is None:
                    raise IpError(f"{a.command!r}: no namespace {target!r}")
                stack.move_device(name, other)
            else:
                raise a.bad(w, "expected up, down, master, nomaster, mtu, address or netns")
        return ""
    if verb in ("del", "delete"):
        stack.remove_device(a.next("device"))
        return ""
    if verb != "add":
        raise a.bad(verb, "expected add, set, del or show")
    parent = None
    if a.peek() == "link":
        a.next("link")
        parent = stack.dev(a.next("parent device"))
    if a.peek() == "name":
        a.next("name")
    name = a.next("device name")
    if name in stack.devices:
        raise IpError(f"{a.command!r}: device {name!r} already exists")
    if a.next("'type'") != "type":
        raise IpError(f"{a.command!r}: expected 'type KIND' after the name")
    kind = a.next("link type")
    ctx = stack.ctx
    if kind == "bridge":
        o = a.opts({"vlan_filtering": True})
        br = Bridge(ctx, name, vlan_filtering=o.get("vlan_filtering", "0") == "1")
        stack.add_device(br)
    elif kind == "veth":
        if a.next("'peer'") != "peer":
            raise IpError(f"{a.command!r}: veth needs 'peer name PEER'")
        peer = a.next("peer name")
        if peer == "name":
            peer = a.next("peer name")
        if a.more():
            raise a.bad(a.peek())
        if peer in stack.devices:
            raise IpError(f"{a.command!r}: device {peer!r} already exists")
        x, y, _link = veth_pair(ctx, name, peer)
        stack.add_device(x)
        stack.add_device(y)
    elif kind == "vlan":
        if parent is None:
            raise IpError(f"{a.command!r}: a VLAN needs 'link PARENT'")
        o = a.opts({"id": True})
        if "id" not in o:
            raise IpError(f"{a.command!r}: a VLAN needs 'id VID'")
        vid = _int(a, o["id"], "VLAN id", 1, 4094)
        if vid in parent.vlans:
            raise IpError(f"{a.command!r}: {parent.name} already has VLAN {vid}")
        sub = VlanDev(ctx, name, mac=parent.mac, parent=parent, vid=vid)
        stack.add_device(sub)
        parent.vlans[vid] = sub
    elif kind == "vxlan":
        o = a.opts({"id": True, "remote": True, "local": True, "dstport": True, "nolearning": False})
        if "id" not in o:
            raise IpError(f"{a.command!r}: a VXLAN needs 'id VNI'")
        vni = _int(a, o["id"], "VNI", 0, (1 << 24) - 1)
        port = _int(a, o.get("dstport", str(VXLAN_PORT)), "dstport", 1, 65535)
        try:
            local = aton(o["local"]) if "local" in o else 0
            remote = aton(o["remote"]) if "remote" in o else None
        except FrameError as e:
            raise IpError(f"{a.command!r}: {e}") from None
        vx = VxlanDev(ctx, name, vni=vni, local=local, dstport=port, learning="nolearning" not in o)
        stack.add_device(vx)
        if remote is not None:
            vx.fdb_append(b"\0" * 6, remote)
        attach_vxlan(stack, vx)
    else:
        raise IpError(f"{a.command!r}: unknown link type {kind!r} (known: bridge, veth, vlan, vxlan)")
    return ""


def attach_vxlan(stack: Any, vx: VxlanDev) -> None:
    """Make ``stack`` hand UDP datagrams on ``vx``'s port to it (the VXLAN socket, vxlan_sock)."""
    old = stack.udp_handlers.get(vx.dstport)

    def handler(src: int, sport: int, dst: int, data: bytes) -> bool:
        if vx.stack is stack and vx.encap_rx(src, data):
            return True
        return bool(old(src, sport, dst, data)) if old is not None else False

    stack.udp_handlers[vx.dstport] = handler


def _ip_tuntap(stack: Any, a: _Args) -> str:
    verb = a.next("verb")
    if verb not in ("add", "del"):
        raise a.bad(verb, "expected add or del")
    name = a.next("device name")
    o = a.opts({"mode": True})
    if verb == "del":
        stack.remove_device(name)
        return ""
    mode = o.get("mode")
    if mode not in ("tun", "tap"):
        raise IpError(f"{a.command!r}: mode must be 'tun' or 'tap'")
    stack.add_device(TunDev(stack.ctx, name) if mode == "tun" else TapDev(stack.ctx, name))
    return ""


def _ip_route(stack: Any, a: _Args) -> str:
    verb = a.next("verb") if a.more() else "show"
    if _match(verb, "show", "list"):
        return "".join(f"{r}\n" for r in stack.routes.routes())
    if verb in ("get",):
        dst = a.next("address")
        try:
            r = stack.routes.lookup(aton(dst))
        except FrameError as e:
            raise IpError(f"{a.command!r}: {e}") from None
        if r is None:
            raise IpError(f"{a.command!r}: network is unreachable")
        via = f"via {ntoa(r.gw)} " if r.gw else ""
        return f"{dst} {via}dev {r.dev} src {ntoa(stack.source_for(aton(dst)))}\n"
    if verb not in ("add", "del", "delete", "replace"):
        raise a.bad(verb, "expected add, del, replace, get or show")
    dst = a.next("destination")
    o = a.opts({"via": True, "dev": True, "metric": True, "proto": True})
    if verb in ("del", "delete"):
        from virtlevels_vnet.frames.ipv4 import parse_cidr

        net, plen = (0, 0) if dst == "default" else parse_cidr(dst)
        stack.routes.delete(net, plen)
        return ""
    metric = _int(a, o["metric"], "metric", 0, 2**32 - 1) if "metric" in o else 0
    if verb == "replace":
        from virtlevels_vnet.frames.ipv4 import parse_cidr

        net, plen = (0, 0) if dst == "default" else parse_cidr(dst)
        old = next((r for r in stack.routes.routes() if r.dst == net and r.plen == plen), None)
        if old is not None:
            stack.routes.delete(net, plen)
        try:
            stack.route_add(dst, via=o.get("via"), dev=o.get("dev"), metric=metric)
        except KernelError:
            if old is not None:
                stack.routes.add(old)
            raise
        return ""
    stack.route_add(dst, via=o.get("via"), dev=o.get("dev"), metric=metric)
    return ""


def _ip_neigh(stack: Any, a: _Args) -> str:
    verb = a.next("verb") if a.more() else "show"
    if _match(verb, "show", "list"):
        rows = sorted(stack.neigh.items())
        return "".join(f"{ntoa(ip)} dev {dev} lladdr {mac_str(mac)}\n" for (dev, ip), mac in rows)
    if verb not in ("add", "replace", "del", "delete"):
        raise a.bad(verb, "expected add, replace, del or show")
    ip = aton(a.next("address"))
    o = a.opts({"lladdr": True, "dev": True, "nud": True})
    if "dev" not in o:
        raise IpError(f"{a.command!r}: missing 'dev DEVICE'")
    stack.dev(o["dev"])
    if verb in ("del", "delete"):
        stack.neigh.pop((o["dev"], ip), None)
        return ""
    if "lladdr" not in o:
        raise IpError(f"{a.command!r}: missing 'lladdr MAC'")
    stack.neigh[(o["dev"], ip)] = parse_mac(o["lladdr"])
    return ""


# -- iptables, bridge, sysctl -------------------------------------------------------------------------
_NAT_TARGETS = ("DNAT", "SNAT", "MASQUERADE")


def _iptables(stack: Any, cmd: str, words: list[str], netns: NetnsResolver | None) -> str:
    a = _Args(cmd, words)
    table = "filter"
    rest: list[str] = []
    while a.more():
        w = a.next("option")
        if w in ("-t", "--table"):
            table = a.next("table")
            if table not in ("filter", "nat"):
                raise IpError(f"{cmd!r}: unknown table {table!r} (known: filter, nat)")
        else:
            rest.append(w)
    if not rest or rest[0] in ("-L", "--list"):
        return _iptables_list(stack, table)
    if rest[0] in ("-P", "--policy"):
        if len(rest) != 3:
            raise IpError(f"{cmd!r}: usage: iptables -P CHAIN ACCEPT|DROP")
        stack.set_policy(rest[1], rest[2])
        return ""
    if rest[0] in ("-F", "--flush"):
        chains = rest[1:] or (["PREROUTING", "POSTROUTING"] if table == "nat" else list(stack.filter.chains))
        for c in chains:
            if table == "nat":
                (stack.ct.dnat if c == "PREROUTING" else stack.ct.snat).clear()
            elif c in stack.filter.chains:
                stack.filter.chains[c].clear()
            else:
                raise IpError(f"{cmd!r}: unknown chain {c!r}")
        stack.ct_on = bool(stack.ct.dnat or stack.ct.snat or stack.filter.uses_state())
        return ""
    text = shlex.join(rest)
    rule = parse_rule(text)
    is_nat = rule.target in _NAT_TARGETS
    if is_nat != (table == "nat"):
        raise IpError(f"{cmd!r}: target {rule.target} is in the {'nat' if is_nat else 'filter'} table, "
                      f"not {table!r}" + (" (add -t nat)" if is_nat else ""))  # fmt: skip
    stack.add_rule(rule)
    return ""


def _iptables_list(stack: Any, table: str) -> str:
    out = []
    if table == "nat":
        for chain, rules in (("PREROUTING", stack.ct.dnat), ("POSTROUTING", stack.ct.snat)):
            out.append(f"Chain {chain}")
            out.extend(f"  {r.text}" for r in rules)
    else:
        for chain, rules in stack.filter.chains.items():
            out.append(f"Chain {chain} (policy {stack.filter.policy[chain]})")
            out.extend(f"  {r.text}" for r in rules)
    return "\n".join(out) + "\n"


def _bridge(stack: Any, cmd: str, words: list[str], netns: NetnsResolver | None) -> str:
    a = _Args(cmd, words)
    obj = a.next("object (vlan, fdb)")
    verb = a.next("verb")
    if obj == "vlan" and verb in ("add", "del"):
        if a.next("'dev'") != "dev":
            raise IpError(f"{cmd!r}: expected 'dev DEVICE'")
        dev = stack.dev(a.next("device"))
        br = dev if isinstance(dev, Bridge) and dev.master is None else dev.master
        if br is None:
            raise IpError(f"{cmd!r}: {dev.name} is not a bridge port")
        o = a.opts({"vid": True, "pvid": False, "untagged": False, "self": False, "master": False})
        if "vid" not in o:
            raise IpError(f"{cmd!r}: missing 'vid VID'")
        vid = _int(a, o["vid"], "VLAN id", 1, 4094)
        if verb == "add":
            br.vlan_add(dev, vid, pvid="pvid" in o, untagged="untagged" in o)
        else:
            br.vlan_del(dev, vid)
        return ""
    if obj == "fdb" and verb in ("add", "append"):
        mac = parse_mac(a.next("MAC address"))
        o = a.opts({"dev": True, "dst": True, "master": False, "self": False, "vlan": True})
        if "dev" not in o:
            raise IpError(f"{cmd!r}: missing 'dev DEVICE'")
        dev = stack.dev(o["dev"])
        if isinstance(dev, VxlanDev):
            if "dst" not in o:
                raise IpError(f"{cmd!r}: a VXLAN FDB entry needs 'dst REMOTE'")
            dev.fdb_append(mac, aton(o["dst"]))
        elif dev.master is not None:
            dev.master.add_static(mac, dev, _int(a, o.get("vlan", "0"), "vlan", 0, 4094))
        else:
            raise IpError(f"{cmd!r}: {dev.name} is neither a VXLAN nor a bridge port")
        return ""
    raise IpError(f"{cmd!r}: expected 'bridge vlan add|del' or 'bridge fdb add|append'")


def _sysctl(stack: Any, cmd: str, words: list[str], netns: NetnsResolver | None) -> str:
    a = _Args(cmd, words)
    if a.peek() == "-w":
        a.next("-w")
    setting = a.next("KEY=VALUE")
    key, eq, value = setting.partition("=")
    if key.replace("/", ".") != "net.ipv4.ip_forward" or not eq or value not in ("0", "1"):
        raise IpError(f"{cmd!r}: only net.ipv4.ip_forward=0|1 is modelled")
    stack.ip_forward = value == "1"
    return ""


__all__ = ["IpError", "attach_vxlan", "configure", "configure_all"]
