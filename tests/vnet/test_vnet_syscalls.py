"""The socket system calls, from scripted processes, dispatched to the namespace's vnet stack."""

from __future__ import annotations

from typing import Any

from virtlevels_vnet.plugin import install

from virtlevels.kernel.kernel import Kernel
from virtlevels.kernel.syscalls import net as sn


def _kernel() -> tuple[Kernel, dict[str, Any]]:
    k = Kernel()
    install(k)
    out: dict[str, Any] = {}

    def init() -> Any:  # pid 1 must outlive the others (its exit kills the pid namespace)
        fd = yield sn.socket(2, 2, 0)
        yield sn.rcvtimeo(fd, 3)
        out["init"] = yield sn.recvfrom(fd, 10)

    k.spawn(init)
    return k, out


def test_udp_echo_and_rcvtimeo() -> None:
    k, out = _kernel()

    def server() -> Any:
        fd = yield sn.socket(2, 2, 0)
        yield sn.bind(fd, "127.0.0.1", 9000)
        out["again"] = yield sn.bind(fd, "127.0.0.1", 9001)
        data, src = yield sn.recvfrom(fd, 100)
        yield sn.sendto(fd, b"pong:" + data, *src)

    def client() -> Any:
        fd = yield sn.socket(2, 2, 0)
        other = yield sn.socket(2, 2, 0)
        out["inuse"] = yield sn.bind(other, "0.0.0.0", 9000)  # the server holds 127.0.0.1:9000
        yield sn.sendto(fd, b"ping", "127.0.0.1", 9000)
        out["cli"] = yield sn.recvfrom(fd, 100)
        out["name"] = yield sn.getsockname(fd)
        yield sn.rcvtimeo(other, 0.5)
        out["timeout"] = yield sn.recvfrom(other, 10)

    k.spawn(server)
    k.spawn(client)
    k.run(until=4_000_000_000)
    assert out["cli"] == (b"pong:ping", ("127.0.0.1", 9000))
    assert out["name"][1] >= 32768
    assert out["again"] == -22  # EINVAL: already bound
    assert out["inuse"] == -98  # EADDRINUSE
    assert out["timeout"] == -11  # EAGAIN after SO_RCVTIMEO


def test_tcp_stream_shutdown_and_refused() -> None:
    k, out = _kernel()

    def server() -> Any:
        fd = yield sn.socket(2, 1, 0)
        yield sn.setsockopt(fd, sn.SOL_SOCKET, sn.SO_REUSEADDR, 1)
        yield sn.bind(fd, "0.0.0.0", 80)
        yield sn.listen(fd, 4)
        c, peer = yield sn.accept4(fd)
        out["peer"] = peer
        buf = b""
        while True:
            d, _ = yield sn.recvfrom(c, 1000)
            if not d:
                break
            buf += d
        out["got"] = buf
        yield sn.sendto(c, b"bye")
        yield sn.shutdown(c, 2)

    def client() -> Any:
        fd = yield sn.socket(2, 1, 0)
        out["conn"] = yield sn.connect(fd, "127.0.0.1", 80)
        yield sn.sendto(fd, b"hello " * 1000)
        yield sn.shutdown(fd, 1)
        out["reply"] = yield sn.recvfrom(fd, 100)
        fd2 = yield sn.socket(2, 1, 0)
        out["refused"] = yield sn.connect(fd2, "127.0.0.1", 81)
        fd3 = yield sn.socket(2, 1 | sn.SOCK_NONBLOCK, 0)
        out["nb"] = yield sn.connect(fd3, "127.0.0.1", 80)

    k.spawn(server)
    k.spawn(client)
    k.run(until=4_000_000_000)
    assert out["conn"] == 0
    assert out["got"] == b"hello " * 1000
    assert out["reply"][0] == b"bye"
    assert out["peer"][0] == "127.0.0.1"
    assert out["refused"] == -111
    assert out["nb"] == -115  # EINPROGRESS


def test_sockets_need_a_stack() -> None:
    k = Kernel()  # no vnet: the loopback-only stack has no sockets
    out: dict[str, int] = {}

    def prog() -> Any:
        out["r"] = yield sn.socket(2, 2, 0)

    k.spawn(prog)
    k.run(until=10_000_000)
    assert out["r"] == -97  # EAFNOSUPPORT
