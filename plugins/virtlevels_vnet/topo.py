"""A Mininet-like API (mininet.net.Mininet, mininet.topo): ``Network()``, ``add_host``,
``add_switch``, ``add_router``, ``add_link``, ``start``, ``ping_all``, ``iperf``, and the
built-in topologies single, linear, tree and fat-tree.

A host is its own network namespace (a :class:`NetStack`): either a bare stack driven from
Python (``kind="process"``, the default, the fastest) or a network namespace of a simulated
kernel (``kind="container"``: processes run in it and use the socket system calls), or a
virtual machine (``kind="vm"``, :mod:`virtlevels_vnet.vmhost`): a guest kernel drives a
``vlnet`` NIC whose back end is a TAP bridged to the host's links. Switches
are bridges; routers are stacks with IP forwarding. Each link is a veth pair whose Link carries
latency, bandwidth, loss and queue. Addresses are assigned 10.0.0.1, 10.0.0.2, ... (/8) unless
given; hosts behind routers get their subnet's router as default gateway.

Everything is validated before anything is built: a bad address, an unknown node or a switch
loop (there is no STP) raises :class:`TopologyError` naming it, and nothing is half-applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels.world import World
from virtlevels_vnet.context import NetContext, context_for
from virtlevels_vnet.devices.bridge import Bridge
from virtlevels_vnet.devices.veth import veth_pair
from virtlevels_vnet.frames import icmp as icmpf
from virtlevels_vnet.frames.ipv4 import IPPROTO_ICMP, FrameError, aton, mask, ntoa, parse_cidr
from virtlevels_vnet.reach import Reach, ping_reach
from virtlevels_vnet.sockets import SOCK_DGRAM, SOCK_STREAM
from virtlevels_vnet.stack import NetStack


class TopologyError(ConfigError):
    """A topology that cannot be built; the message names the node, link or field."""


@attrs.define(eq=False)
class Node:
    name: str
    role: str  # "host", "switch", "router"
    kind: str = "process"
    ip: str | None = None  # host: "10.0.0.1/24"
    gateway: str | None = None
    stack: NetStack | None = None
    bridge: Bridge | None = None
    ports: int = 0
    node_id: str = ""
    netns: Any = None  # the kernel NetNamespace of a container host
    technique: str | None = None  # a VM host's virtualization technique
    mac: bytes | None = None  # a VM host's NIC address
    guest: Any = None  # a VM host's guest: an Image, or a callable (mac, ip) -> Image
    vm: Any = None  # the VmHost of a VM host (after start)

    def intf(self) -> str:
        self.ports += 1
        return f"{self.name}-eth{self.ports - 1}"


@attrs.define(eq=False)
class LinkSpec:
    a: str
    b: str
    latency_ns: int = 0
    bandwidth_bps: int | None = None
    loss: float = 0.0
    queue: int = 1000
    a_ip: str | None = None  # for routers: the interface address on each side
    b_ip: str | None = None
    link: Any = None


@attrs.define(eq=False)
class Proc:
    """A process started by :meth:`Network.spawn`."""

    net: Any
    process: Any
    out_path: str

    @property
    def exit_code(self) -> int | None:
        p = self.process
        return (p.exit_code >> 8) & 0xFF if p.zombie else None

    @property
    def output(self) -> str:
        return bytes(self.net.kernel.read_file(self.out_path)).decode(errors="replace")


@attrs.define
class PingResult:
    src: str
    dst: str
    ok: bool
    rtt_ns: int | None = None
    error: str = ""


def _seconds(v: float | str | None, what: str) -> int:
    """Latency as seconds (float) or a string with a unit ("2ms", "10us", "1s") -> ns."""
    if v is None:
        return 0
    if isinstance(v, (int, float)):
        if v < 0:
            raise TopologyError(f"{what}: negative latency {v}")
        return int(round(v * 1e9))
    units = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
    for u in ("ns", "us", "ms", "s"):
        if v.endswith(u):
            try:
                return int(float(v[: -len(u)]) * units[u])
            except ValueError:
                break
    raise TopologyError(f"{what}: cannot parse latency {v!r} (use e.g. '2ms')")


def _bandwidth(v: float | str | None, what: str) -> int | None:
    """Bandwidth in Mbit/s (a number, as Mininet's bw=) or a string ("100Mbit", "1Gbit")."""
    if v is None:
        return None
    if isinstance(v, (int, float)):
        if v <= 0:
            raise TopologyError(f"{what}: bandwidth must be positive, not {v}")
        return int(v * 1_000_000)
    units = {"kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000, "bit": 1}
    low = v.lower()
    for u in ("kbit", "mbit", "gbit", "bit"):
        if low.endswith(u):
            try:
                return int(float(low[: -len(u)]) * units[u])
            except ValueError:
                break
    raise TopologyError(f"{what}: cannot parse bandwidth {v!r} (use e.g. '100Mbit')")


@attrs.define(eq=False)
class Network:
    """A virtual network in a World (a fresh World if none is given)."""

    world: World = attrs.field(factory=lambda: World(entry_points=False))
    kernel: Any = None  # the kernel container hosts live in (made on first use)
    nodes: dict[str, Node] = attrs.field(factory=dict)
    links: list[LinkSpec] = attrs.field(factory=list)
    started: bool = False
    ctx: NetContext = attrs.field(init=False)
    node_id: str = ""
    hypervisor: Any = None  # the Hypervisor VM hosts run under (made on first use)
    _next_host: int = 1
    _nprocs: int = 0

    def __attrs_post_init__(self) -> None:
        self.ctx = context_for(self.world)
        self.node_id = self.ctx.new_id("network")

    # -- building -----------------------------------------------------------------------------------
    def _new(self, name: str, role: str) -> None:
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise TopologyError(f"bad node name {name!r}")
        if name in self.nodes:
            raise TopologyError(f"node {name!r} already exists")
        if self.started:
            raise TopologyError(f"cannot add {role} {name!r}: the network is started")

    def add_host(
        self,
        name: str,
        ip: str | None = None,
        *,
        gateway: str | None = None,
        kind: str = "process",
        technique: str = "trap",
        mac: bytes | str | None = None,
        guest: Any = None,
    ) -> Node:
        """A host: ``kind`` "process", "container" or "vm". A VM host runs under ``technique``
        (emulate, trap, bt, pv, hw), its NIC has ``mac`` (default 52:54:00:00:00:NN) and it boots
        ``guest`` (an Image, or a callable ``(mac, ip) -> Image``; default: the NIC guest of
        :mod:`virtlevels_vnet.vmguest`, which answers ARP and ping)."""
        self._new(name, "host")
        if kind not in ("process", "container", "vm"):
            raise TopologyError(f"host {name!r}: kind {kind!r} is not 'process', 'container' or 'vm'")
        mac_bytes: bytes | None = None
        if kind == "vm":
            from virtlevels_vnet.frames.eth import parse_mac
            from virtlevels_vnet.vmhost import check_technique, guest_mac

            try:
                check_technique(name, technique)
            except ConfigError as e:
                raise TopologyError(str(e)) from None
            if isinstance(mac, str):
                try:
                    mac_bytes = parse_mac(mac)
                except FrameError as e:
                    raise TopologyError(f"host {name!r} mac: {e}") from None
            elif mac is not None:
                if len(mac) != 6:
                    raise TopologyError(f"host {name!r} mac: {len(mac)} bytes, not 6")
                mac_bytes = bytes(mac)
            else:
                mac_bytes = guest_mac(sum(1 for n in self.nodes.values() if n.kind == "vm"))
            if guest is not None and not callable(guest) and not hasattr(guest, "segments"):
                raise TopologyError(f"host {name!r} guest: {guest!r} is not an Image or a callable")
        elif guest is not None or mac is not None:
            raise TopologyError(f"host {name!r}: mac and guest are for VM hosts (kind='vm')")
        if ip is None:
            ip = f"{ntoa(aton('10.0.0.0') + self._next_host)}/8"
            self._next_host += 1
        for field, val in (("ip", ip), ("gateway", gateway)):
            if val is not None:
                try:
                    parse_cidr(val)
                except FrameError as e:
                    raise TopologyError(f"host {name!r} {field}: {e}") from None
        if "/" not in ip:
            ip += "/8"
        n = Node(name, "host", kind, ip, gateway)
        if kind == "vm":
            n.technique, n.mac, n.guest = technique, mac_bytes, guest
        self.nodes[name] = n
        return n

    def add_switch(self, name: str) -> Node:
        self._new(name, "switch")
        n = Node(name, "switch")
        self.nodes[name] = n
        return n

    def add_router(self, name: str) -> Node:
        self._new(name, "router")
        n = Node(name, "router")
        self.nodes[name] = n
        return n

    def add_link(
        self,
        a: str,
        b: str,
        *,
        latency: float | str | None = None,
        bandwidth: float | str | None = None,
        loss: float = 0.0,
        queue: int = 1000,
        a_ip: str | None = None,
        b_ip: str | None = None,
    ) -> LinkSpec:
        what = f"link {a}-{b}"
        for end in (a, b):
            if end not in self.nodes:
                raise TopologyError(f"{what}: no node {end!r}")
        if a == b:
            raise TopologyError(f"{what}: a link needs two different nodes")
        if self.started:
            raise TopologyError(f"{what}: the network is started")
        if not 0.0 <= loss <= 1.0:
            raise TopologyError(f"{what}: loss {loss} is not in [0, 1]")
        if queue < 1:
            raise TopologyError(f"{what}: queue must be at least 1")
        for end, ip in ((a, a_ip), (b, b_ip)):
            if ip is not None:
                try:
                    parse_cidr(ip)
                except FrameError as e:
                    raise TopologyError(f"{what}: address of {end}: {e}") from None
            elif self.nodes[end].role == "router":
                raise TopologyError(
                    f"{what}: router {end!r} needs an address on this link ({'a_ip' if end == a else 'b_ip'})"
                )
        spec = LinkSpec(a, b, _seconds(latency, what), _bandwidth(bandwidth, what), loss, queue, a_ip, b_ip)
        self._check_loop(spec)
        self.links.append(spec)
        return spec

    def _check_loop(self, spec: LinkSpec) -> None:
        """Without STP a switch loop floods forever: refuse it (Mininet needs --switch with stp)."""
        sw = {n for n, v in self.nodes.items() if v.role == "switch"}
        if spec.a not in sw or spec.b not in sw:
            return
        parent = {s: s for s in sw}

        def find(x: str) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for ln in self.links:
            if ln.a in sw and ln.b in sw:
                parent[find(ln.a)] = find(ln.b)
        if find(spec.a) == find(spec.b):
            raise TopologyError(f"link {spec.a}-{spec.b}: makes a loop between switches (no STP is modelled)")

    # -- starting -----------------------------------------------------------------------------------
    def _host_stack(self, n: Node) -> NetStack:
        if n.kind == "container":
            from virtlevels.kernel.kernel import Kernel
            from virtlevels.kernel.ns.net import create_net_ns
            from virtlevels_vnet.plugin import install

            if self.kernel is None:
                self.kernel = Kernel(self.world)
                install(self.kernel)
                self.kernel.spawn(_init, name="init")  # pid 1 outlives the programs
            init = self.kernel.init_nsproxy.net
            ns = create_net_ns(init.owner_ns, init)
            n.netns = ns
            st: NetStack = ns.stack
            st.name = n.name
            return st
        return NetStack(self.ctx, n.name)

    def start(self) -> None:
        """Build every stack, bridge and link; assign addresses and routes (Mininet.start)."""
        if self.started:
            raise TopologyError("the network is already started")
        g = self.world.graph
        self.ctx.graph_add(self.node_id, "network", name="network")
        for n in self.nodes.values():
            if n.kind == "vm":
                self._start_vm(n)
                continue
            n.node_id = self.ctx.new_id(n.role)
            kind = {"host": "process", "switch": "bridge", "router": "router"}[n.role]
            self.ctx.graph_add(n.node_id, kind, name=n.name, role=n.role)
            g.link(n.node_id, self.node_id, "part_of")
            if n.role == "switch":
                n.stack = NetStack(self.ctx, n.name)
                n.bridge = Bridge(self.ctx, n.name)
                n.stack.add_device(n.bridge)
                n.bridge.up = True
            else:
                n.stack = self._host_stack(n) if n.role == "host" else NetStack(self.ctx, n.name)
                n.stack.set_link_up("lo", True)
                if n.role == "router":
                    n.stack.ip_forward = True
            g.link(n.stack.node_id, n.node_id, "part_of")
        for ln in self.links:
            self._build_link(ln)
        for n in self.nodes.values():
            if n.role == "host" and n.gateway and n.kind != "vm":  # a guest routes for itself
                assert n.stack is not None
                n.stack.route_add("default", via=n.gateway)
        self.started = True
        for n in self.nodes.values():  # power on: the guests boot once the wiring is done
            if n.vm is not None:
                n.vm.start()

    def _start_vm(self, n: Node) -> None:
        """Make VM host ``n``: a VM under the network's hypervisor, its NIC, TAP and bridge."""
        from virtlevels_hypervisor.hypervisor import Hypervisor

        from virtlevels_vnet.vmguest import nic_guest
        from virtlevels_vnet.vmhost import VmHost, host_machine

        g = self.world.graph
        if self.hypervisor is None:
            nvms = sum(1 for m in self.nodes.values() if m.kind == "vm")
            self.hypervisor = Hypervisor(host_machine(self.world, nvms), world=self.world)
        assert n.mac is not None and n.technique is not None and n.ip is not None
        vmh = VmHost.create(self.ctx, self.hypervisor, n.name, n.technique, n.mac)
        n.vm, n.stack = vmh, vmh.stack
        guest = n.guest
        if guest is None:
            image = nic_guest(n.mac, n.ip)
        elif callable(guest):
            image = guest(n.mac, n.ip)
        else:
            image = guest
        vmh.load(image)
        vm_node = getattr(vmh.vm, "node_id", None)
        if vm_node is None or vm_node not in g.g:  # (VmHost links its stack to a VM's own node)
            vm_node = self.ctx.new_id("host")
            self.ctx.graph_add(vm_node, "vm", name=n.name, role="host")
            g.link(vmh.stack.node_id, vm_node, "part_of")
        n.node_id = vm_node
        g.link(n.node_id, self.node_id, "part_of")

    def _build_link(self, ln: LinkSpec) -> None:
        na, nb = self.nodes[ln.a], self.nodes[ln.b]
        da, db, link = veth_pair(self.ctx, na.intf(), nb.intf(), latency_ns=ln.latency_ns,
                                 bandwidth_bps=ln.bandwidth_bps, loss=ln.loss, queue=ln.queue)  # fmt: skip
        ln.link = link
        for node, dev, ip in ((na, da, ln.a_ip), (nb, db, ln.b_ip)):
            assert node.stack is not None
            if node.vm is not None:  # the guest's address is its own; the host bridges the link
                node.vm.add_uplink(dev)
                continue
            node.stack.add_device(dev)
            dev.up = True
            if node.role == "switch":
                assert node.bridge is not None
                node.bridge.add_port(dev)
            elif node.role == "host":
                if not node.stack.addrs.get(dev.name) and not any(
                    d != "lo" and a for d, a in node.stack.addrs.items()
                ):
                    node.stack.addr_add(dev.name, ip or node.ip or "")
            elif ip is not None:
                node.stack.addr_add(dev.name, ip)
        self.world.graph.link(self.nodes[ln.a].node_id, self.nodes[ln.b].node_id, "link", link=link.node_id)

    # -- running ------------------------------------------------------------------------------------
    def host(self, name: str) -> Node:
        n = self.nodes.get(name)
        if n is None:
            raise TopologyError(f"no node {name!r}")
        return n

    def hosts(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.role == "host"]

    def addr(self, name: str) -> int:
        n = self.host(name)
        if n.ip is None:
            raise TopologyError(f"{name!r} has no address")
        return parse_cidr(n.ip)[0]

    def run_until(self, done: Callable[[], bool], timeout_ns: int) -> bool:
        """Run the World's events until ``done()`` or ``timeout_ns`` of simulated time passes."""
        ev = self.world.events
        deadline = ev.now + self.ctx.ns_to_cycles(timeout_ns)
        while not done():
            nxt = ev.peek()
            if nxt is None or nxt > deadline:
                ev.advance(deadline)
                return done()
            ev.step()
        return True

    def ping(self, src: str, dst: str | int, *, timeout_ns: int = 2_000_000_000, ttl: int = 64) -> PingResult:
        """One ICMP echo from host ``src`` to ``dst`` (a host name or an address)."""
        self._need_started()
        if self.host(src).vm is not None:
            raise TopologyError(
                f"{src!r} is a VM host: its pings come from its guest (see vmguest.nic_guest)"
            )
        st = self.host(src).stack
        assert st is not None
        to = dst if isinstance(dst, int) else self.addr(dst)
        s = st.socks.socket(SOCK_DGRAM, IPPROTO_ICMP)
        s.ttl = ttl
        t0 = self.ctx.now_ns()
        try:
            s.sendto(icmpf.echo(0, 1, b"virtlevels-ping"), (to, 0))
        except Exception as e:  # noqa: BLE001 - a KernelError: report it as the ping's error
            s.close()
            return PingResult(src, str(dst), False, error=str(e))
        ok = self.run_until(lambda: bool(s.rxq) or bool(s.errq), timeout_ns)
        error = ""
        if not s.rxq:
            first = s.errq[0] if s.errq else None
            error = (f"ICMP type {first.type} code {first.code} from {ntoa(first.offender)}"
                     if first is not None and ok else "timeout")  # fmt: skip
        res = PingResult(src, str(dst), bool(s.rxq), self.ctx.now_ns() - t0 if s.rxq else None, error)
        s.close()
        return res

    def ping_all(self, timeout_ns: int = 2_000_000_000) -> tuple[float, list[PingResult]]:
        """Every host pings every other once (Mininet pingAll); returns (loss %, results). VM hosts
        are pinged (their guest answers) but do not ping: their guest decides what they send."""
        self._need_started()
        hs = self.hosts()
        results = [self.ping(a.name, b.name, timeout_ns=timeout_ns) for a in hs for b in hs
                   if a is not b and a.vm is None]  # fmt: skip
        lost = sum(1 for r in results if not r.ok)
        return (100.0 * lost / len(results) if results else 0.0), results

    def iperf(
        self, a: str, b: str, *, nbytes: int = 1_000_000, port: int = 5001, timeout_ns: int = 600_000_000_000
    ) -> float:
        """TCP throughput from ``a`` to ``b`` in bit/s of simulated time (as ``iperf -c``)."""
        self._need_started()
        sa, sb = self.host(a).stack, self.host(b).stack
        assert sa is not None and sb is not None
        ls = sb.socks.socket(SOCK_STREAM, 0)
        ls.bind(0, port)
        ls.listen(1)
        c = sa.socks.socket(SOCK_STREAM, 0)
        got = bytearray()
        conn: list[Any] = []
        try:
            c.connect(self.addr(b), port)
        except Exception:  # noqa: BLE001,S110 - WouldBlock: the handshake is under way
            pass
        self.run_until(lambda: c.state == "ESTABLISHED" or c.so_error != 0, timeout_ns)
        if c.state != "ESTABLISHED":
            ls.close()
            raise TopologyError(f"iperf {a} -> {b}: connection failed (errno {c.so_error})")
        t0 = self.ctx.now_ns()
        payload = bytes(range(256)) * (nbytes // 256 + 1)
        sent = 0

        def pump(_s: Any = None) -> None:
            nonlocal sent
            while sent < nbytes and len(c.sndbuf) < 128 * 1024:
                sent += c.sendto(payload[sent : min(nbytes, sent + 65536)])

        def drain(_s: Any = None) -> bool:
            if not conn and ls.accept_q:
                conn.append(ls.accept())
                conn[0].on_event = drain
            if conn and conn[0].rcvbuf:
                got.extend(conn[0].rcvbuf)
                conn[0].rcvbuf.clear()
            return len(got) >= nbytes

        c.on_event = pump
        ls.on_event = drain
        pump()
        self.run_until(lambda: drain() or len(got) >= nbytes, timeout_ns)
        elapsed = self.ctx.now_ns() - t0
        c.close()
        ls.close()
        if conn:
            conn[0].close()
        if len(got) < nbytes:
            raise TopologyError(f"iperf {a} -> {b}: only {len(got)} of {nbytes} bytes arrived")
        return nbytes * 8 * 1e9 / max(elapsed, 1)

    # -- processes in container hosts --------------------------------------------------------------
    def spawn(self, host: str, program: Callable[..., Any] | str, *argv: str, stdin: bytes = b"") -> Proc:
        """Start a process in container host ``host``'s network namespace: ``program`` is a
        scripted program or the name of one of :data:`virtlevels_vnet.programs.PROGRAMS`
        (ping, traceroute, nc). Its standard input is ``stdin``; standard output and error go to
        a file read back by :attr:`Proc.output`. Run the network (:meth:`wait`) to make it go."""
        from virtlevels.kernel import scripted as sc
        from virtlevels.kernel.ns.proxy import setns
        from virtlevels.kernel.vfs.constants import AT_FDCWD, O_CREAT, O_RDONLY, O_WRONLY
        from virtlevels_vnet.programs import PROGRAMS

        self._need_started()
        node = self.host(host)
        if node.netns is None:
            raise TopologyError(f"{host!r} is a {node.kind} {node.role}: processes run in container hosts")
        if isinstance(program, str):
            if program not in PROGRAMS:
                raise TopologyError(f"no program {program!r} (known: {', '.join(PROGRAMS)})")
            name, program = program, PROGRAMS[program]
        else:
            name = getattr(program, "__name__", "prog")
        k = self.kernel
        self._nprocs += 1
        base = f"/tmp/vnet/{self._nprocs}"
        k.write_file(base + ".in", stdin)
        k.write_file(base + ".out", b"")
        body = program

        def wrapper() -> Any:
            for fd in (0, 1, 2):  # what init left open is not the program's stdio
                yield sc.close(fd)
            yield sc.openat(AT_FDCWD, base + ".in", O_RDONLY)  # fd 0
            yield sc.openat(AT_FDCWD, base + ".out", O_WRONLY | O_CREAT)  # fd 1
            yield sc.dup(1)  # fd 2
            return (yield from body(*argv))

        t = k.spawn(wrapper, name=name[:15])
        creds, nsp = setns(node.netns, t.creds, t.nsproxy)
        old = t.nsproxy
        t.creds, t.nsproxy = creds, nsp
        k._put_nsproxy(old)
        k._graph_relink(t.process, t)
        return Proc(self, t.process, base + ".out")

    def wait(self, proc: Proc, timeout_ns: int = 60_000_000_000) -> int | None:
        """Run the network until ``proc`` exits; its exit code, or None if still running."""
        self.run_until(lambda: bool(proc.process.zombie), timeout_ns)
        return proc.exit_code

    # -- static analysis ----------------------------------------------------------------------------
    def reachable(self, a: str, b: str | int) -> Reach:
        """Would ``a``'s ping to ``b`` (a host name or an address) be answered? Decided from the
        configuration (links, VLANs, addresses, routes, filter and NAT rules), sending nothing
        (:mod:`virtlevels_vnet.reach`). The result is truthy when reachable and says why not."""
        self._need_started()
        st = self.host(a).stack
        assert st is not None
        return ping_reach(st, b if isinstance(b, int) else self.addr(b))

    def reach_all(self) -> dict[tuple[str, str], Reach]:
        """:meth:`reachable` for every ordered pair of hosts (the static twin of :meth:`ping_all`)."""
        hs = self.hosts()
        return {(x.name, y.name): self.reachable(x.name, y.name) for x in hs for y in hs if x is not y}

    def _need_started(self) -> None:
        if not self.started:
            raise TopologyError("the network is not started (call start())")


def _init() -> Any:
    """pid 1 of the container hosts' kernel: sleeps forever on a pipe nobody writes."""
    from virtlevels.kernel import scripted as sc

    fds = yield sc.pipe2()
    while True:  # a signal (SIGCHLD) may end one read early
        yield sc.read(fds[0], 1)


# -- built-in topologies (mininet/topo.py) ------------------------------------------------------------
def single(k: int, **link: Any) -> Network:
    """One switch, ``k`` hosts."""
    net = Network()
    net.add_switch("s1")
    for i in range(1, k + 1):
        net.add_host(f"h{i}")
        net.add_link(f"h{i}", "s1", **link)
    return net


def linear(k: int, n: int = 1, **link: Any) -> Network:
    """``k`` switches in a line, ``n`` hosts on each."""
    net = Network()
    for i in range(1, k + 1):
        net.add_switch(f"s{i}")
        for j in range(1, n + 1):
            h = f"h{i}" if n == 1 else f"h{i}s{j}"
            net.add_host(h)
            net.add_link(h, f"s{i}", **link)
        if i > 1:
            net.add_link(f"s{i - 1}", f"s{i}", **link)
    return net


def tree(depth: int = 2, fanout: int = 2, **link: Any) -> Network:
    """A tree of switches ``depth`` levels deep; ``fanout`` children each; hosts at the leaves."""
    net = Network()
    counters = {"s": 0, "h": 0}

    def build(d: int) -> str:
        if d == 0:
            counters["h"] += 1
            return net.add_host(f"h{counters['h']}").name
        counters["s"] += 1
        sw = net.add_switch(f"s{counters['s']}").name
        for _ in range(fanout):
            net.add_link(sw, build(d - 1), **link)
        return sw

    build(depth)
    return net


def fat_tree(k: int = 4, **link: Any) -> Network:
    """A k-ary fat tree (Al-Fares et al., SIGCOMM 2008) as a bridged L2 fabric. Its core has
    loops, so without STP only one core switch per aggregation group is wired (a spanning
    tree of the fabric, as STP would leave it); k^3/4 hosts."""
    if k < 2 or k % 2:
        raise TopologyError(f"fat-tree k={k}: k must be even and >= 2")
    net = Network()
    half = k // 2
    cores = [net.add_switch(f"c{i}").name for i in range(half * half)]
    for p in range(k):
        aggs = [net.add_switch(f"a{p}x{i}").name for i in range(half)]
        edges = [net.add_switch(f"e{p}x{i}").name for i in range(half)]
        for ei, e in enumerate(edges):
            net.add_link(e, aggs[0], **link)  # spanning tree: each edge switch up one aggregation switch
            for hi in range(half):
                h = net.add_host(f"h{p}x{ei}x{hi}").name
                net.add_link(h, e, **link)
        for ai, a in enumerate(aggs):
            if ai == 0:
                net.add_link(a, cores[0], **link)
            elif p == 0:
                net.add_link(a, cores[ai * half], **link)
    for ci, c in enumerate(cores[1:], 1):
        if ci % half == 0 and ci // half < half:
            continue
        net.add_link(c, cores[0], **link)
    return net


TOPOLOGIES: dict[str, Callable[..., Network]] = {"single": single, "linear": linear, "tree": tree,
                                                   "fat-tree": fat_tree}  # fmt: skip

__all__ = [
    "TOPOLOGIES",
    "Network",
    "Node",
    "PingResult",
    "Proc",
    "TopologyError",
    "fat_tree",
    "linear",
    "mask",
    "single",
    "tree",
]
