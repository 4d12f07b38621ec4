"""The ip-like configuration language, ping/traceroute/nc as processes, container-to-container
traffic, TUN/TAP, VXLAN between two kernels on two machines, and UDP SO_REUSEADDR."""

from __future__ import annotations

from typing import Any

import pytest
from virtlevels_vnet.context import context_for
from virtlevels_vnet.devices import TapDev, TunDev, veth_pair
from virtlevels_vnet.frames import icmp
from virtlevels_vnet.frames.ipv4 import aton, build
from virtlevels_vnet.ipcmd import IpError, configure, configure_all
from virtlevels_vnet.plugin import install
from virtlevels_vnet.sockets import SOCK_DGRAM
from virtlevels_vnet.topo import Network

from virtlevels.kernel.kernel import Kernel
from virtlevels.kernel.syscalls import net as sn
from virtlevels.machine.board import virt_machine
from virtlevels.world import World


def _routed(kind: str = "container") -> Network:
    net = Network()
    for i in (1, 2, 3):
        net.add_host(f"h{i}", f"10.0.{i}.10/24", kind=kind)
    net.add_router("r1")
    net.add_router("r2")
    net.add_link("h1", "r1", b_ip="10.0.1.1/24")
    net.add_link("h2", "r1", b_ip="10.0.2.1/24")
    net.add_link("r1", "r2", a_ip="10.9.0.1/30", b_ip="10.9.0.2/30", latency="1ms")
    net.add_link("h3", "r2", b_ip="10.0.3.1/24")
    net.start()
    for h in ("h1", "h2", "h3"):
        configure(net.host(h).stack, f"ip route add default via 10.0.{h[1]}.1")
    configure_all(net.host("r1").stack, "ip route add 10.0.3.0/24 via 10.9.0.2  # to r2\n")
    configure(net.host("r2").stack, "ip route add 10.0.0.0/16 via 10.9.0.1 metric 5")
    return net


def test_ip_commands_configure_and_show() -> None:
    net = _routed("process")
    r1 = net.host("r1").stack
    assert "10.0.3.0/24 via 10.9.0.2 dev r1-eth2" in configure(r1, "ip route")
    assert configure(r1, "ip route get 10.0.3.7") == "10.0.3.7 via 10.9.0.2 dev r1-eth2 src 10.9.0.1\n"
    assert "inet 10.0.1.1/24" in configure(r1, "ip addr show")
    configure(r1, "iptables -A FORWARD -p icmp -s 10.0.2.0/24 -j DROP")
    assert "-A FORWARD -p icmp -s 10.0.2.0/24 -j DROP" in configure(r1, "iptables -L")
    assert not net.ping("h2", "h3", timeout_ns=3 * 10**9).ok and net.ping("h1", "h3").ok
    configure(r1, "iptables -F FORWARD")
    assert net.ping("h2", "h3").ok
    configure(r1, "ip link set r1-eth1 down")
    assert not net.ping("h2", "h3", timeout_ns=3 * 10**9).ok
    configure(r1, "ip link set r1-eth1 up")
    assert net.ping("h2", "h3").ok
    configure(r1, "ip link add br0 type bridge")
    configure(r1, "ip link add v0 type veth peer name v1")
    configure(r1, "ip link set v0 master br0")
    configure(r1, "ip link add link v1 name v1.10 type vlan id 10")
    configure(r1, "ip tuntap add tap7 mode tap")
    configure(r1, "bridge vlan add dev v0 vid 20 pvid untagged")
    shown = configure(r1, "ip link")
    assert "v0: <DOWN>" in shown and "master br0" in shown and "type vlan" in shown and "type tap" in shown
    configure(r1, "ip neigh add 10.0.1.99 lladdr 02:aa:bb:cc:dd:ee dev r1-eth0")
    assert "10.0.1.99 dev r1-eth0 lladdr 02:aa:bb:cc:dd:ee" in configure(r1, "ip neigh")
    configure(r1, "sysctl -w net.ipv4.ip_forward=0")
    assert not net.ping("h1", "h3", timeout_ns=3 * 10**9).ok


@pytest.mark.parametrize(
    ("cmd", "msg"),
    [
        ("ip addr add 10.0.0.300/24 dev r1-eth0", "10.0.0.300"),
        ("ip addr add 10.0.0.1/24", "missing 'dev DEVICE'"),
        ("ip addr add 10.0.0.1/24 dev eth9", "ENODEV"),
        ("ip route add 10.5.0.0/16 via 192.0.2.1", "not on a connected network"),
        ("ip route add 10.0.1.0/24 dev r1-eth0", "EEXIST"),
        ("ip rule add", "unexpected 'rule'"),
        ("ip link add x0 type wormhole", "unknown link type 'wormhole'"),
        ("ip link add link r1-eth0 name e.5000 type vlan id 5000", "VLAN id 5000 is not in 1-4094"),
        ("iptables -A POSTROUTING -j MASQUERADE", "add -t nat"),
        ("iptables -A INPUT -p tcp --dportt 22 -j DROP", "--dportt"),
        ("ifconfig eth0 up", "unknown program 'ifconfig'"),
        ("sysctl -w net.ipv4.tcp_sack=1", "only net.ipv4.ip_forward"),
    ],
)
def test_ip_errors_name_the_token_and_change_nothing(cmd: str, msg: str) -> None:
    net = _routed("process")
    r1 = net.host("r1").stack
    assert r1 is not None
    before = (configure(r1, "ip route"), configure(r1, "ip addr"), configure(r1, "iptables -L"))
    with pytest.raises(IpError, match=None) as ei:
        configure(r1, cmd)
    assert msg in str(ei.value) and cmd in str(ei.value)
    assert before == (configure(r1, "ip route"), configure(r1, "ip addr"), configure(r1, "iptables -L"))


def test_ping_traceroute_nc_run_as_processes_between_containers() -> None:
    net = _routed()
    p = net.spawn("h1", "ping", "-c", "2", "10.0.3.10")
    assert net.wait(p) == 0
    assert "2 packets transmitted, 2 received, 0% packet loss" in p.output
    assert "64 bytes from 10.0.3.10: icmp_seq=2 time=2.000 ms" in p.output  # two crossings of 1 ms
    p = net.spawn("h1", "ping", "-c", "1", "10.0.7.1")
    assert net.wait(p) == 1 and "From 10.0.1.1 icmp_seq=1 Destination Net Unreachable" in p.output
    p = net.spawn("h1", "traceroute", "10.0.3.10")
    assert net.wait(p) == 0
    hops = [ln.split()[1] for ln in p.output.splitlines()[1:]]
    assert hops == ["10.0.1.1", "10.9.0.2", "10.0.3.10"]
    srv = net.spawn("h3", "nc", "-l", "-p", "7000", stdin=b"hello from h3\n")
    cli = net.spawn("h1", "nc", "10.0.3.10", "7000", stdin=b"x" * 5000)
    assert net.wait(cli) == 0 and net.wait(srv) == 0
    assert cli.output == "hello from h3\n" and srv.output == "x" * 5000  # TCP, both ways
    srv = net.spawn("h2", "nc", "-u", "-l", "-p", "53", stdin=b"pong")
    cli = net.spawn("h1", "nc", "-u", "10.0.2.10", "53", stdin=b"ping")
    assert net.wait(cli) == 0 and net.wait(srv) == 0 and (cli.output, srv.output) == ("pong", "ping")
    bad = net.spawn("h1", "ping", "-q", "10.0.3.10")
    assert net.wait(bad) == 2 and "invalid option" in bad.output
    # The containers are network namespaces of one kernel: each sees only its own interfaces.
    k = net.kernel
    assert k is not None and net.host("h1").netns is not net.host("h3").netns
    assert [i.name for i in net.host("h1").netns.stack.interfaces()] == ["lo", "h1-eth0"]


def test_udp_reuseaddr_shares_a_port() -> None:
    net = _routed("process")
    st = net.host("h3").stack
    a, b, c = (st.socks.socket(SOCK_DGRAM, 0) for _ in range(3))
    a.reuseaddr = b.reuseaddr = True
    a.bind(0, 5000)
    b.bind(0, 5000)  # both set SO_REUSEADDR: shared
    with pytest.raises(Exception, match="EADDRINUSE"):
        c.bind(0, 5000)  # c did not
    s = net.host("h1").stack.socks.socket(SOCK_DGRAM, 0)
    s.sendto(b"hi", (aton("10.0.3.10"), 5000))
    net.run_until(lambda: bool(a.rxq or b.rxq), 10**9)
    assert b.rxq and not a.rxq  # unicast goes to the socket bound last


def test_tap_and_tun_user_sides() -> None:
    net = _routed("process")
    st = net.host("h1").stack
    tap = st.add_device(TapDev(net.ctx, "tap0"))
    configure_all(st, ["ip link set tap0 up", "ip addr add 192.168.7.1/24 dev tap0"])
    # The user side writes an ICMP echo in an Ethernet frame; the kernel answers through the TAP.
    peer_mac = bytes.fromhex("020000aabbcc")
    configure(st, "ip neigh add 192.168.7.2 lladdr 02:00:00:aa:bb:cc dev tap0")
    pkt = build(aton("192.168.7.2"), aton("192.168.7.1"), 1, icmp.echo(7, 1, b"tap!"))
    tap.write(tap.mac + peer_mac + b"\x08\x00" + pkt)
    net.run_until(lambda: bool(tap.queue), 10**9)
    frame = tap.read()
    assert frame is not None and frame[:6] == peer_mac and frame[14 + 20] == 0 and frame[-4:] == b"tap!"
    tun = st.add_device(TunDev(net.ctx, "tun0"))
    configure_all(st, ["ip link set tun0 up", "ip addr add 172.16.0.1/30 dev tun0"])
    tun.write(build(aton("172.16.0.2"), aton("172.16.0.1"), 1, icmp.echo(9, 2, b"tun!")))
    net.run_until(lambda: bool(tun.queue), 10**9)
    reply = tun.read()
    assert reply is not None and reply[0] >> 4 == 4 and reply[20] == 0 and reply[-4:] == b"tun!"  # bare IP
    # And routed: h3 reaches the TUN's far side through h1 (the user side answers).
    configure(st, "sysctl -w net.ipv4.ip_forward=1")
    configure(net.host("r1").stack, "ip route add 172.16.0.0/30 via 10.0.1.10")
    configure(net.host("h3").stack, "ip route add 172.16.0.0/30 via 10.0.3.1")
    configure(net.host("r2").stack, "ip route add 172.16.0.0/30 via 10.9.0.1")
    tun.on_frame = lambda p: tun.write(build(aton("172.16.0.2"), int.from_bytes(p[12:16], "big"), 1,
                                             icmp.echo(*_ident_seq(p), p[28:], reply=True)))  # fmt: skip
    assert net.ping("h3", aton("172.16.0.2")).ok


def _ident_seq(pkt: bytes) -> tuple[int, int]:
    return (pkt[24] << 8) | pkt[25], (pkt[26] << 8) | pkt[27]


def test_vxlan_between_two_kernels_on_two_machines() -> None:
    """Two machines in one World, each with a kernel; their initial namespaces are joined by an
    underlay link; VXLAN VNI 42 bridges a container on each into one L2 overlay."""
    world = World(entry_points=False)
    kernels = []
    for _ in range(2):
        k = Kernel(world, machine=virt_machine(world=world))
        install(k)
        kernels.append(k)
    ctx = context_for(world)
    m1, m2 = (k.init_nsproxy.net.stack for k in kernels)
    a, b, _link = veth_pair(ctx, "eth0", "eth0-peer", latency_ns=50_000)
    m1.add_device(a)
    b.name = "eth0"
    m2.add_device(b)
    for st, me, other in ((m1, "192.0.2.1", "192.0.2.2"), (m2, "192.0.2.2", "192.0.2.1")):
        configure_all(st, [
            "ip link set eth0 up", f"ip addr add {me}/24 dev eth0",
            f"ip link add vxlan42 type vxlan id 42 remote {other} local {me}",
            "ip link add br0 type bridge", "ip link set vxlan42 master br0",
            "ip link set vxlan42 up", "ip link set br0 up",
        ])  # fmt: skip
    # A container on each machine: a network namespace whose veth's host end is on br0.
    from virtlevels.kernel.ns.net import create_net_ns

    containers = []
    for i, (k, st) in enumerate(zip(kernels, (m1, m2), strict=True)):
        init = k.init_nsproxy.net
        ns = create_net_ns(init.owner_ns, init)
        x, y, _l = veth_pair(ctx, f"veth{i}", "eth0")
        st.add_device(x)
        ns.stack.add_device(y)
        configure_all(st, [f"ip link set veth{i} master br0", f"ip link set veth{i} up"])
        configure_all(
            ns.stack, ["ip link set eth0 up", "ip link set lo up", f"ip addr add 10.42.0.{i + 1}/24 dev eth0"]
        )
        containers.append(ns)
    out: dict[str, Any] = {}

    def server() -> Any:
        fd = yield sn.socket(2, 2, 0)
        yield sn.bind(fd, "0.0.0.0", 9000)
        data, src = yield sn.recvfrom(fd, 100)
        yield sn.sendto(fd, b"echo:" + data, *src)

    def client() -> Any:
        fd = yield sn.socket(2, 2, 0)
        yield sn.rcvtimeo(fd, 2)
        yield sn.sendto(fd, b"over the overlay", "10.42.0.2", 9000)
        out["reply"] = yield sn.recvfrom(fd, 100)

    from virtlevels.kernel.ns.proxy import setns

    for k, ns, prog in ((kernels[1], containers[1], server), (kernels[0], containers[0], client)):
        k.spawn(lambda: (yield from _forever()), name="init")
        t = k.spawn(prog)
        creds, nsp = setns(ns, t.creds, t.nsproxy)
        old, t.creds, t.nsproxy = t.nsproxy, creds, nsp
        k._put_nsproxy(old)
    world.run(until=world.now + 3_000_000_000)
    assert out["reply"] == (b"echo:over the overlay", ("10.42.0.2", 9000))
    vx1, vx2 = m1.dev("vxlan42"), m2.dev("vxlan42")
    assert vx1.encapsulated >= 2 and vx2.decapsulated >= 2  # ARP and the datagram went inside UDP 4789
    assert vx1.fdb.get(containers[1].stack.dev("eth0").mac) == aton("192.0.2.2")  # learned the remote VTEP
    machines = {world.graph.attrs(k.node_id).get("kind") for k in kernels}
    assert machines == {"kernel"} and kernels[0].machine is not kernels[1].machine


def _forever() -> Any:
    from virtlevels.kernel import scripted as sc

    fds = yield sc.pipe2()
    while True:
        yield sc.read(fds[0], 1)
