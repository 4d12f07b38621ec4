"""Sockets of one namespace's stack: UDP, ICMP echo ("ping" sockets, SOCK_DGRAM/IPPROTO_ICMP
as Linux's net/ipv4/ping.c) and TCP (:mod:`virtlevels_vnet.tcp`), and their demultiplexing.

Socket methods raise ``KernelError(errno)`` with Linux's errno values and ``WouldBlock(queue)``
when the call would sleep; the syscall layer (virtlevels/kernel/syscalls/net.py) turns the
latter into EAGAIN for non-blocking sockets and applies SO_RCVTIMEO. Python code (the
Mininet-like API, the programs) can use the same objects directly with ``on_event`` callbacks.

ICMP errors are queued on the socket (``errq``: the IP_RECVERR error queue, read with
MSG_ERRQUEUE) and, for connected UDP and ping sockets, also set the pending error (SO_ERROR)
that the next call returns: ECONNREFUSED for port unreachable, EHOSTUNREACH/ENETUNREACH,
and EHOSTUNREACH for time exceeded, as ``icmp_err_convert`` maps them.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from virtlevels.kernel.errno import (
    EADDRINUSE,
    EADDRNOTAVAIL,
    EAGAIN,
    ECONNREFUSED,
    EDESTADDRREQ,
    EHOSTUNREACH,
    EINVAL,
    EMSGSIZE,
    ENETUNREACH,
    ENOTCONN,
    EOPNOTSUPP,
    EPIPE,
    KernelError,
)
from virtlevels.kernel.wait import WaitQueue, WouldBlock
from virtlevels_vnet.frames import icmp as icmpf
from virtlevels_vnet.frames.ipv4 import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP

SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3  # include/linux/net.h
EPHEMERAL = (32768, 60999)
RCVBUF_DGRAMS = 256  # a bound on queued datagrams (stands in for SO_RCVBUF)
MSG_PEEK, MSG_DONTWAIT, MSG_ERRQUEUE = 0x2, 0x40, 0x2000
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
Addr = tuple[int, int]

_ICMP_ERRNO = {  # icmp_err_convert[] (net/ipv4/icmp.c)
    icmpf.ICMP_NET_UNREACH: ENETUNREACH, icmpf.ICMP_HOST_UNREACH: EHOSTUNREACH,
    icmpf.ICMP_PROT_UNREACH: 92, icmpf.ICMP_PORT_UNREACH: ECONNREFUSED,
    icmpf.ICMP_FRAG_NEEDED: EMSGSIZE, icmpf.ICMP_PKT_FILTERED: EHOSTUNREACH,
}  # fmt: skip


@attrs.frozen
class IcmpErr:
    """One entry of the error queue (struct sock_extended_err, the parts modelled)."""

    errno: int
    type: int
    code: int
    offender: int  # who sent the ICMP error (a router for "time exceeded")
    info: int = 0


@attrs.define(eq=False)
class Socket:
    table: Any  # SocketTable
    type: int
    proto: int
    wq: WaitQueue = attrs.field(factory=WaitQueue)
    laddr: int = 0
    lport: int = 0
    raddr: int = 0
    rport: int = 0
    bound: bool = False
    connected: bool = False
    rxq: deque[tuple[bytes, Addr]] = attrs.field(factory=deque)
    errq: deque[IcmpErr] = attrs.field(factory=deque)
    so_error: int = 0
    reuseaddr: bool = False
    rcvtimeo_ns: int = 0
    sndtimeo_ns: int = 0
    ttl: int = 64
    shut_rd: bool = False
    shut_wr: bool = False
    closed: bool = False
    #: Called (with the socket) whenever something arrives, for Python-level users.
    on_event: Callable[[Any], None] | None = None
    last_ttl: int = 0  # TTL of the last echo reply (what ping prints)
    #: SO_RCVTIMEO deadlines (ns) of tasks sleeping in a call, by thread id (the syscall layer keeps them).
    timeouts: dict[int, int] = attrs.field(factory=dict)

    @property
    def stack(self) -> Any:
        return self.table.stack

    def _wake(self) -> None:
        self.wq.wake_all()
        if self.on_event is not None:
            self.on_event(self)

    def _take_error(self) -> None:
        if self.so_error:
            e, self.so_error = self.so_error, 0
            raise KernelError(e, "pending socket error")

    def getsockname(self) -> Addr:
        return (self.laddr, self.lport)

    def getpeername(self) -> Addr:
        if not self.connected:
            raise KernelError(ENOTCONN, "not connected")
        return (self.raddr, self.rport)

    def _check_local(self, addr: int) -> None:
        if addr and addr not in self.stack.local and addr != 0xFFFFFFFF and addr >> 24 != 127:
            raise KernelError(EADDRNOTAVAIL, "address not local")

    def listen(self, backlog: int) -> None:
        raise KernelError(EOPNOTSUPP, "listen on a datagram socket")

    def accept(self) -> Socket:
        raise KernelError(EOPNOTSUPP, "accept on a datagram socket")

    def shutdown(self, how: int) -> None:
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise KernelError(EINVAL, f"shutdown how={how}")
        if not self.connected:
            raise KernelError(ENOTCONN, "shutdown of an unconnected socket")
        if how in (SHUT_RD, SHUT_RDWR):
            self.shut_rd = True
        if how in (SHUT_WR, SHUT_RDWR):
            self.shut_wr = True
        self._wake()

    def readable(self) -> bool:
        return bool(self.rxq) or self.shut_rd or bool(self.so_error)

    def close(self) -> None:
        self.closed = True

    def recv_err(self) -> IcmpErr:
        """MSG_ERRQUEUE: the oldest queued ICMP error (EAGAIN when none: it never blocks)."""
        if not self.errq:
            raise KernelError(EAGAIN, "error queue empty")
        return self.errq.popleft()

    def icmp_error(self, err: IcmpErr) -> None:
        if len(self.errq) < RCVBUF_DGRAMS:
            self.errq.append(err)
        if self.connected:
            self.so_error = err.errno
        self._wake()


@attrs.define(eq=False)
class DgramSocket(Socket):
    """UDP and ICMP echo sockets (both datagram: a message per call)."""

    def bind(self, addr: int, port: int) -> None:
        if self.bound:
            raise KernelError(EINVAL, "socket already bound")
        self._check_local(addr)
        self.table.bind(self, addr, port)

    def connect(self, addr: int, port: int) -> None:
        if addr == 0 and port == 0:  # AF_UNSPEC-like disconnect is not modelled; treat as error
            raise KernelError(EINVAL, "connect to 0.0.0.0:0")
        if not self.bound:
            self.table.bind(self, 0, 0)
        if self.laddr == 0:
            src = self.stack.source_for(addr)
            if not src and self.stack.routes.lookup(addr) is None and addr not in self.stack.local:
                raise KernelError(ENETUNREACH, "no route to the peer")
        self.raddr, self.rport = addr, port
        self.connected = True

    def sendto(self, data: bytes, dest: Addr | None) -> int:
        self._take_error()
        if self.shut_wr:
            raise KernelError(EPIPE, "socket shut down for writing")
        if dest is None:
            if not self.connected:
                raise KernelError(EDESTADDRREQ, "no destination and not connected")
            dest = (self.raddr, self.rport)
        if len(data) > 65507:
            raise KernelError(EMSGSIZE, f"{len(data)} bytes is too big for a datagram")
        if not self.bound:
            self.table.bind(self, 0, 0)
        return self._send(bytes(data), dest)

    def _send(self, data: bytes, dest: Addr) -> int:
        stack = self.stack
        src = self.laddr or stack.source_for(dest[0])
        if stack.routes.lookup(dest[0]) is None and dest[0] not in stack.local and dest[0] >> 24 != 127:
            raise KernelError(ENETUNREACH, "network is unreachable")
        from virtlevels_vnet.frames import udp as udpf

        seg = udpf.build(src, dest[0], self.lport, dest[1], data)
        r = stack.ip_output(src, dest[0], IPPROTO_UDP, seg, ttl=self.ttl)
        if r < 0:
            raise KernelError(-r, "output failed")
        return len(data)

    def recvfrom(self, size: int, flags: int = 0) -> tuple[bytes, Addr]:
        self._take_error()
        if self.rxq:
            data, addr = self.rxq[0] if flags & MSG_PEEK else self.rxq.popleft()
            return data[:size], addr
        if self.shut_rd:
            return b"", (0, 0)
        raise WouldBlock(self.wq)

    def deliver(self, data: bytes, addr: Addr) -> None:
        if self.shut_rd or len(self.rxq) >= RCVBUF_DGRAMS:
            return
        self.rxq.append((data, addr))
        self._wake()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.table.unbind(self)
            self._wake()


@attrs.define(eq=False)
class PingSocket(DgramSocket):
    """An ICMP echo socket: what is sent is an ICMP message whose identifier the kernel sets to
    the socket's "port" (ping_v4_sendmsg); replies are matched back by identifier."""

    def _send(self, data: bytes, dest: Addr) -> int:
        if len(data) < 8 or data[0] != icmpf.ICMP_ECHO or data[1] != 0:
            raise KernelError(EINVAL, "a ping socket sends ICMP echo requests only")
        stack = self.stack
        seq = (data[6] << 8) | data[7]
        msg = icmpf.echo(self.lport, seq, bytes(data[8:]))
        if stack.routes.lookup(dest[0]) is None and dest[0] not in stack.local and dest[0] >> 24 != 127:
            raise KernelError(ENETUNREACH, "network is unreachable")
        r = stack.ip_output(self.laddr, dest[0], IPPROTO_ICMP, msg, ttl=self.ttl)
        if r < 0:
            raise KernelError(-r, "output failed")
        return len(data)


@attrs.define(eq=False)
class SocketTable:
    """The stack's socket lookup tables (udp_table, ping_table, the TCP hash tables)."""

    stack: Any
    udp: dict[int, list[Socket]] = attrs.field(factory=dict)  # port -> sockets
    ping: dict[int, Socket] = attrs.field(factory=dict)  # identifier -> socket
    tcp_listen: dict[int, list[Any]] = attrs.field(factory=dict)
    tcp_conns: dict[tuple[int, int, int, int], Any] = attrs.field(factory=dict)
    _next_port: int = EPHEMERAL[0]
    isn_counter: int = 0

    def socket(self, type_: int, proto: int) -> Socket:
        if type_ == SOCK_DGRAM and proto in (0, IPPROTO_UDP):
            return DgramSocket(self, SOCK_DGRAM, IPPROTO_UDP)
        if type_ == SOCK_DGRAM and proto == IPPROTO_ICMP:
            return PingSocket(self, SOCK_DGRAM, IPPROTO_ICMP)
        if type_ == SOCK_STREAM and proto in (0, IPPROTO_TCP):
            from virtlevels_vnet.tcp import TcpSocket

            return TcpSocket(self, SOCK_STREAM, IPPROTO_TCP)
        raise KernelError(93, f"socket type {type_} protocol {proto} is not supported")  # EPROTONOSUPPORT

    def _table_for(self, s: Socket) -> dict[int, Any]:
        if s.proto == IPPROTO_ICMP:
            return self.ping
        if s.proto == IPPROTO_TCP:
            return self.tcp_listen
        return self.udp

    def _in_use(self, s: Socket, addr: int, port: int) -> bool:
        if s.proto == IPPROTO_ICMP:
            return port in self.ping
        others = self.udp.get(port, []) if s.proto == IPPROTO_UDP else self.tcp_listen.get(port, [])
        if s.proto == IPPROTO_TCP:
            others = others + [c for k, c in self.tcp_conns.items() if k[1] == port and c.bound_here]
        for o in others:
            if o is s:
                continue
            if s.reuseaddr and o.reuseaddr and s.proto == IPPROTO_UDP:
                continue  # socket(7): UDP sockets that all set SO_REUSEADDR share the address
            if s.reuseaddr and o.reuseaddr and s.proto == IPPROTO_TCP:
                # SO_REUSEADDR (socket(7)): reuse unless a listener holds the same address.
                if not getattr(o, "listening", False):
                    continue
            if o.laddr == 0 or addr == 0 or o.laddr == addr:
                return True
        return False

    def bind(self, s: Socket, addr: int, port: int) -> None:
        if port == 0:
            lo, hi = EPHEMERAL
            for _ in range(hi - lo + 1):
                cand = self._next_port
                self._next_port = lo if cand >= hi else cand + 1
                if not self._in_use(s, addr, cand):
                    port = cand
                    break
            else:
                raise KernelError(EADDRINUSE, "no free ephemeral port")
        elif self._in_use(s, addr, port):
            raise KernelError(EADDRINUSE, f"port {port} in use")
        s.laddr, s.lport, s.bound = addr, port, True
        if s.proto == IPPROTO_ICMP:
            self.ping[port] = s
        elif s.proto == IPPROTO_UDP:
            self.udp.setdefault(port, []).append(s)
        else:
            s.bound_here = True  # type: ignore[attr-defined]  # TcpSocket

    def unbind(self, s: Socket) -> None:
        if not s.bound:
            return
        if s.proto == IPPROTO_ICMP:
            if self.ping.get(s.lport) is s:
                del self.ping[s.lport]
        else:
            lst = self._table_for(s).get(s.lport, [])
            if s in lst:
                lst.remove(s)
                if not lst:
                    del self._table_for(s)[s.lport]

    def close_all(self) -> None:
        for lst in list(self.udp.values()) + list(self.tcp_listen.values()):
            for s in list(lst):
                s.close()
        for s in list(self.ping.values()):
            s.close()
        for c in list(self.tcp_conns.values()):
            c.abort()

    # -- demultiplexing -----------------------------------------------------------------------------
    def udp_rcv(self, src: int, sport: int, dst: int, dport: int, data: bytes) -> bool:
        """__udp4_lib_rcv: the best-matching socket (connected beats bound beats wildcard)."""
        best, score = None, -1
        for s in self.udp.get(dport, ()):
            if s.laddr and s.laddr != dst:
                continue
            if s.connected and (s.raddr != src or s.rport != sport):
                continue
            sc = (2 if s.connected else 0) + (1 if s.laddr else 0)
            if sc >= score:  # ties (SO_REUSEADDR sharers): the socket bound last gets unicast
                best, score = s, sc
        if best is None:
            return False
        best.deliver(data, (src, sport))  # type: ignore[attr-defined]
        return True

    def icmp_echo_rcv(self, src: int, ident: int, seq: int, data: bytes, ttl: int) -> None:
        s = self.ping.get(ident)
        if s is not None and (not s.connected or s.raddr == src):
            hdr = struct.pack("!BBHHH", icmpf.ICMP_ECHOREPLY, 0, 0, ident, seq)
            s.deliver(hdr + data, (src, 0))  # type: ignore[attr-defined]
            s.last_ttl = ttl

    def icmp_error_rcv(self, offender: int, type_: int, code: int, quoted: bytes) -> None:
        """An ICMP error about one of our packets: find its socket from the quoted header."""
        if len(quoted) < 28 or quoted[0] >> 4 != 4:
            return
        ihl = (quoted[0] & 15) * 4
        if len(quoted) < ihl + 8:
            return
        proto = quoted[9]
        qsrc, qdst = struct.unpack_from("!II", quoted, 12)
        errno = EHOSTUNREACH if type_ == icmpf.ICMP_TIME_EXCEEDED else _ICMP_ERRNO.get(code, EHOSTUNREACH)
        err = IcmpErr(errno, type_, code, offender)
        if proto == IPPROTO_UDP:
            sport, dport = struct.unpack_from("!HH", quoted, ihl)
            for s in self.udp.get(sport, ()):
                if (not s.laddr or s.laddr == qsrc) and (
                    not s.connected or (s.raddr, s.rport) == (qdst, dport)
                ):
                    s.icmp_error(err)
                    return
        elif proto == IPPROTO_ICMP:
            ident = (quoted[ihl + 4] << 8) | quoted[ihl + 5]
            ps = self.ping.get(ident)
            if ps is not None:
                ps.icmp_error(err)
        elif proto == IPPROTO_TCP:
            sport, dport = struct.unpack_from("!HH", quoted, ihl)
            c = self.tcp_conns.get((qsrc, sport, qdst, dport))
            if c is not None:
                c.icmp_error(err)

    def tcp_rcv(self, src: int, dst: int, seg: Any) -> None:
        from virtlevels_vnet.tcp import tcp_v4_rcv

        tcp_v4_rcv(self, src, dst, seg)

    def new_isn(self) -> int:
        """Initial sequence numbers from a deterministic counter (RFC 6528 wants a keyed hash
        of the 4-tuple plus a clock; determinism matters more here)."""
        self.isn_counter += 1
        return (self.isn_counter * 0x9E3779B1 + (self.stack.ctx.now_ns() >> 2)) & 0xFFFFFFFF
