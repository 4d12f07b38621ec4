"""A small TCP (RFC 9293): three-way handshake, data with sequence and acknowledgement numbers,
retransmission on loss (go-back-N from the oldest unacknowledged byte on RTO expiry, RTO
doubling, RFC 6298's 1 s initial RTO), FIN teardown through the RFC state diagram, and RST for
segments nobody expects. Not modelled: congestion control beyond a fixed window, SACK,
delayed ACKs, out-of-order queueing (such segments are dropped and re-ACKed), urgent data,
window scaling, simultaneous open.

Sequence numbers are kept unwrapped inside (ISS plus offset) and wrapped to 32 bits on the wire.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

from virtlevels.kernel.errno import (
    EAGAIN,
    EALREADY,
    ECONNREFUSED,
    ECONNRESET,
    EINVAL,
    EISCONN,
    ENOTCONN,
    EPIPE,
    ETIMEDOUT,
    KernelError,
)
from virtlevels.kernel.wait import WouldBlock
from virtlevels_vnet.frames import tcp as tcpf
from virtlevels_vnet.frames.ipv4 import IPPROTO_TCP
from virtlevels_vnet.sockets import SHUT_RD, SHUT_RDWR, SHUT_WR, IcmpErr, Socket

M32 = 0xFFFFFFFF
MSS = 1460
WINDOW = 65535
SNDBUF = 256 * 1024
RTO_INIT_NS = 1_000_000_000  # RFC 6298 2.1
RTO_MIN_NS = 200_000_000  # TCP_RTO_MIN
RTO_MAX_NS = 120_000_000_000  # TCP_RTO_MAX
SYN_RETRIES = 6  # net.ipv4.tcp_syn_retries
RETRIES2 = 15  # net.ipv4.tcp_retries2
TIME_WAIT_NS = 60_000_000_000  # TCP_TIMEWAIT_LEN
CONNECTED = ("ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "LAST_ACK", "TIME_WAIT")


@attrs.define(eq=False)
class TcpSocket(Socket):
    state: str = "CLOSED"
    listening: bool = False
    backlog: int = 0
    accept_q: deque[Any] = attrs.field(factory=deque)
    parent: Any = None
    bound_here: bool = False
    iss: int = 0
    snd_una: int = 0
    snd_nxt: int = 0
    snd_wnd: int = WINDOW
    sndbuf: bytearray = attrs.field(factory=bytearray)
    fin_queued: bool = False  # close/shutdown(SHUT_WR) asked for a FIN
    irs: int = 0
    rcv_nxt: int = 0  # wrapped (what the peer's next byte is numbered)
    rcvbuf: bytearray = attrs.field(factory=bytearray)
    fin_rcvd: bool = False
    rto_ns: int = RTO_INIT_NS
    retries: int = 0
    timer: Any = None
    orphan: bool = False
    retransmits: int = 0
    mss: int = MSS
    _connect_done: bool = False

    # -- user calls ------------------------------------------------------------------------------
    def bind(self, addr: int, port: int) -> None:
        if self.bound:
            raise KernelError(EINVAL, "socket already bound")
        self._check_local(addr)
        self.table.bind(self, addr, port)

    def listen(self, backlog: int) -> None:
        if self.state not in ("CLOSED", "LISTEN"):
            raise KernelError(EINVAL, f"listen in state {self.state}")
        if not self.bound:
            self.table.bind(self, 0, 0)
        self.backlog = max(1, min(backlog, 4096))  # somaxconn
        if not self.listening:
            self.listening = True
            self.state = "LISTEN"
            self.table.tcp_listen.setdefault(self.lport, []).append(self)

    def accept(self) -> TcpSocket:
        if not self.listening:
            raise KernelError(EINVAL, "accept on a socket that is not listening")
        if self.accept_q:
            child: TcpSocket = self.accept_q.popleft()
            child.parent = None
            return child
        raise WouldBlock(self.wq)

    def connect(self, addr: int, port: int) -> None:
        if self.listening:
            raise KernelError(EISCONN, "listening socket")
        if self.state == "SYN_SENT":
            raise WouldBlock(self.wq)  # a restarted blocking connect keeps waiting
        if self.connected:
            if getattr(self, "_connect_done", False):
                self._connect_done = False
                return
            raise KernelError(EISCONN, "already connected")
        if self.so_error:
            self._take_error()
        if self.state != "CLOSED":
            raise KernelError(EALREADY, f"state {self.state}")
        stack = self.stack
        src = self.laddr or stack.source_for(addr)
        if not src:
            raise KernelError(101, "network is unreachable")  # ENETUNREACH
        if not self.bound:
            self.table.bind(self, 0, 0)
        self.laddr, self.raddr, self.rport = src, addr, port
        self.table.tcp_conns[(src, self.lport, addr, port)] = self
        self.iss = self.table.new_isn()
        self.snd_una = self.snd_nxt = self.iss
        self.state = "SYN_SENT"
        self._send_syn()
        raise WouldBlock(self.wq)

    def connect_result(self) -> None:
        """For a restarted connect: 0 once established; the error if it failed."""
        self._take_error()

    def sendto(self, data: bytes, dest: Any = None) -> int:
        if self.so_error:
            self._take_error()
        if self.shut_wr or self.fin_queued:
            raise KernelError(EPIPE, "socket shut down for writing")
        if self.state not in ("ESTABLISHED", "CLOSE_WAIT"):
            if self.state == "SYN_SENT":
                raise WouldBlock(self.wq)
            raise KernelError(
                ENOTCONN if self.state in ("CLOSED", "LISTEN") else EPIPE, f"state {self.state}"
            )
        room = SNDBUF - len(self.sndbuf)
        if room <= 0:
            raise WouldBlock(self.wq)
        chunk = bytes(data[:room])
        self.sndbuf += chunk
        self._output()
        return len(chunk)

    def recvfrom(self, size: int, flags: int = 0) -> tuple[bytes, tuple[int, int]]:
        if self.rcvbuf:
            out = bytes(self.rcvbuf[:size])
            if not flags & 0x2:  # MSG_PEEK
                del self.rcvbuf[:size]
            return out, (self.raddr, self.rport)
        if self.fin_rcvd or self.shut_rd:
            return b"", (self.raddr, self.rport)
        if self.so_error:
            self._take_error()
        if self.state in ("CLOSED", "LISTEN"):
            raise KernelError(ENOTCONN, "not connected")
        raise WouldBlock(self.wq)

    def readable(self) -> bool:
        return bool(self.rcvbuf) or self.fin_rcvd or bool(self.so_error) or bool(self.accept_q)

    def shutdown(self, how: int) -> None:
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise KernelError(EINVAL, f"shutdown how={how}")
        if self.state not in CONNECTED and self.state != "SYN_RCVD":
            raise KernelError(ENOTCONN, "shutdown of an unconnected socket")
        if how in (SHUT_RD, SHUT_RDWR):
            self.shut_rd = True
        if how in (SHUT_WR, SHUT_RDWR) and not self.fin_queued:
            self.shut_wr = True
            self._queue_fin()
        self._wake()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.listening:
            self.listening = False
            self.table.unbind(self)
            for child in self.accept_q:
                child.abort()
            self.accept_q.clear()
            self.state = "CLOSED"
            return
        if self.rcvbuf and self.state in CONNECTED:
            self.abort()  # unread data: RST, not FIN (RFC 2525 2.17; tcp_close)
            return
        if self.state in ("ESTABLISHED", "CLOSE_WAIT", "SYN_RCVD"):
            self.orphan = True
            self._queue_fin()
        elif self.state in ("SYN_SENT", "CLOSED"):
            self._destroy()
        else:
            self.orphan = True

    def abort(self) -> None:
        """Send RST and forget the connection (tcp_disconnect / a listener's pending children)."""
        if self.state not in ("CLOSED", "LISTEN", "SYN_SENT", "TIME_WAIT"):
            self._send(tcpf.RST | tcpf.ACK, self.snd_nxt)
        self._destroy()

    # -- segments out ----------------------------------------------------------------------------
    def _send(self, flags: int, seq: int, data: bytes = b"", mss: int | None = None) -> None:
        seg = tcpf.build(self.laddr, self.raddr, self.lport, self.rport, seq & M32,
                         self.rcv_nxt if flags & tcpf.ACK else 0, flags, WINDOW, data, mss)  # fmt: skip
        self.stack.ip_output(self.laddr, self.raddr, IPPROTO_TCP, seg, ttl=self.ttl)

    def _send_syn(self) -> None:
        self._send(tcpf.SYN, self.iss, mss=MSS)
        self.snd_nxt = self.iss + 1
        self._arm()

    def _send_synack(self) -> None:
        self._send(tcpf.SYN | tcpf.ACK, self.iss, mss=MSS)
        self.snd_nxt = self.iss + 1
        self._arm()

    def _queue_fin(self) -> None:
        self.fin_queued = True
        if self.state in ("ESTABLISHED", "SYN_RCVD"):
            self.state = "FIN_WAIT_1"
        elif self.state == "CLOSE_WAIT":
            self.state = "LAST_ACK"
        self._output()

    def _fin_seq(self) -> int:
        return self.snd_una + len(self.sndbuf)  # the FIN follows the last data byte

    def _output(self) -> None:
        """Send what the window allows from snd_nxt (tcp_write_xmit), then the FIN when due."""
        if self.state in ("SYN_SENT", "SYN_RCVD", "CLOSED", "LISTEN"):
            return
        end = self.snd_una + len(self.sndbuf)
        limit = self.snd_una + max(self.snd_wnd, 1)
        while self.snd_nxt < end and self.snd_nxt < limit:
            off = self.snd_nxt - self.snd_una
            n = min(self.mss, end - self.snd_nxt, limit - self.snd_nxt)
            self._send(tcpf.ACK | tcpf.PSH, self.snd_nxt, bytes(self.sndbuf[off : off + n]))
            self.snd_nxt += n
        if self.fin_queued and self.snd_nxt == end and self.snd_nxt < limit + 1:
            self._send(tcpf.FIN | tcpf.ACK, end)
            self.snd_nxt = end + 1
        if self.snd_nxt > self.snd_una:
            self._arm()

    # -- the retransmission timer ------------------------------------------------------------------
    def _arm(self) -> None:
        if self.timer is None:
            self.timer = self.stack.ctx.schedule_ns(self.rto_ns, self._rto)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.stack.ctx.world.events.cancel(self.timer)
            self.timer = None

    def _rto(self) -> None:
        """RTO expiry (tcp_retransmit_timer): back off, resend from snd_una, or give up."""
        self.timer = None
        if self.snd_nxt == self.snd_una or self.state == "CLOSED":
            return
        self.retries += 1
        limit = SYN_RETRIES if self.state in ("SYN_SENT", "SYN_RCVD") else RETRIES2
        if self.retries > limit:
            self._fail(ETIMEDOUT)
            return
        self.retransmits += 1
        self.rto_ns = min(self.rto_ns * 2, RTO_MAX_NS)
        if self.state == "SYN_SENT":
            self._send_syn()
        elif self.state == "SYN_RCVD":
            self._send_synack()
        else:
            self.snd_nxt = self.snd_una  # go back N
            self._output()

    def _fail(self, errno: int) -> None:
        self.so_error = errno
        self._destroy()
        self._wake()

    def _destroy(self) -> None:
        self._disarm()
        self.state = "CLOSED"
        key = (self.laddr, self.lport, self.raddr, self.rport)
        if self.table.tcp_conns.get(key) is self:
            del self.table.tcp_conns[key]

    def icmp_error(self, err: IcmpErr) -> None:
        # RFC 1122 4.2.3.9: soft errors do not abort an established connection; a SYN_SENT one
        # fails on "port/protocol unreachable" as Linux does, others after the timer.
        self.errq.append(err)
        if self.state == "SYN_SENT" and err.errno in (ECONNREFUSED, 92):
            self._fail(err.errno)

    # -- segments in -------------------------------------------------------------------------------
    def segment(self, seg: tcpf.Tcp) -> None:
        f = seg.flags
        if self.state == "SYN_SENT":
            if f & tcpf.ACK and seg.ack != (self.iss + 1) & M32:
                if not f & tcpf.RST:
                    self._send_raw_rst(seg)
                return
            if f & tcpf.RST:
                if f & tcpf.ACK:
                    self._fail(ECONNREFUSED)
                return
            if f & tcpf.SYN and f & tcpf.ACK:
                self.irs = seg.seq
                self.rcv_nxt = (seg.seq + 1) & M32
                self.snd_una = self.iss + 1
                self.snd_wnd = seg.window
                if seg.mss:
                    self.mss = min(MSS, seg.mss)
                self._disarm()
                self.rto_ns, self.retries = RTO_INIT_NS, 0
                self.state = "ESTABLISHED"
                self.connected = True
                self._connect_done = True
                self._send(tcpf.ACK, self.snd_nxt)
                self._wake()
            return
        if f & tcpf.RST:
            # RFC 5961 3.2 in spirit: only an in-window RST counts; here, exactly rcv_nxt or any in SYN_RCVD.
            if seg.seq == self.rcv_nxt or self.state == "SYN_RCVD":
                if self.state == "SYN_RCVD" and self.parent is not None:
                    self._destroy()
                    return
                self._fail(ECONNRESET if self.state not in ("LAST_ACK", "TIME_WAIT", "CLOSING") else 0)
            return
        if f & tcpf.SYN:
            if self.state == "SYN_RCVD" and seg.seq == self.irs:
                self._send_synack()  # our SYN-ACK was lost: send it again
            else:
                self._send(tcpf.ACK, self.snd_nxt)  # RFC 5961 4: challenge ACK
            return
        if not f & tcpf.ACK:
            return
        if self.state == "SYN_RCVD":
            if seg.ack != (self.iss + 1) & M32:
                self._send_raw_rst(seg)
                return
            self.snd_una = self.iss + 1
            self._disarm()
            self.rto_ns, self.retries = RTO_INIT_NS, 0
            self.state = "ESTABLISHED"
            self.connected = True
            parent = self.parent
            if parent is not None and parent.listening and len(parent.accept_q) < parent.backlog:
                parent.accept_q.append(self)
                parent._wake()
            elif parent is not None:
                self.abort()
                return
        self._ack(seg.ack, seg.window)
        self._data(seg)

    def _ack(self, ack: int, window: int) -> None:
        acked = (ack - self.snd_una) & M32
        if 0 < acked <= self.snd_nxt - self.snd_una:
            data_acked = min(acked, len(self.sndbuf))
            del self.sndbuf[:data_acked]
            self.snd_una += acked
            self._disarm()
            self.rto_ns, self.retries = RTO_INIT_NS, 0
            if self.snd_nxt > self.snd_una:
                self._arm()
            fin_acked = (
                self.fin_queued and not self.sndbuf and self.snd_una == self.snd_nxt and acked > data_acked
            )
            if fin_acked:
                if self.state == "FIN_WAIT_1":
                    self.state = "FIN_WAIT_2"
                elif self.state == "CLOSING":
                    self._time_wait()
                elif self.state == "LAST_ACK":
                    self._destroy()
            self._wake()
        self.snd_wnd = window
        self._output()

    def _data(self, seg: tcpf.Tcp) -> None:
        if not seg.data and not seg.flags & tcpf.FIN:
            return
        if seg.seq != self.rcv_nxt or self.fin_rcvd:
            self._send(tcpf.ACK, self.snd_nxt)  # out of order or duplicate: re-ACK what we have
            return
        if seg.data:
            if not self.shut_rd:
                self.rcvbuf += seg.data
            self.rcv_nxt = (self.rcv_nxt + len(seg.data)) & M32
        if seg.flags & tcpf.FIN:
            self.rcv_nxt = (self.rcv_nxt + 1) & M32
            self.fin_rcvd = True
            if self.state == "ESTABLISHED":
                self.state = "CLOSE_WAIT"
            elif self.state == "FIN_WAIT_1":
                self.state = "CLOSING"
            elif self.state == "FIN_WAIT_2":
                self._time_wait()
        self._send(tcpf.ACK, self.snd_nxt)
        self._wake()

    def _time_wait(self) -> None:
        self.state = "TIME_WAIT"
        self._disarm()
        self.stack.ctx.schedule_ns(TIME_WAIT_NS, self._destroy)

    def _send_raw_rst(self, seg: tcpf.Tcp) -> None:
        rst = tcpf.build(self.laddr, self.raddr, self.lport, self.rport, seg.ack, 0, tcpf.RST, 0)
        self.stack.ip_output(self.laddr, self.raddr, IPPROTO_TCP, rst)


def tcp_v4_rcv(table: Any, src: int, dst: int, seg: tcpf.Tcp) -> None:
    """Find the connection, else a listener (a SYN makes a child in SYN_RCVD), else answer RST."""
    c = table.tcp_conns.get((dst, seg.dport, src, seg.sport))
    if c is not None:
        c.segment(seg)
        return
    if seg.flags & tcpf.SYN and not seg.flags & (tcpf.ACK | tcpf.RST):
        for ls in table.tcp_listen.get(seg.dport, ()):
            if ls.laddr and ls.laddr != dst:
                continue
            if len(ls.accept_q) >= ls.backlog:
                return  # listen queue overflow: drop the SYN (the peer retries)
            child = TcpSocket(table, ls.type, ls.proto)
            child.laddr, child.lport, child.raddr, child.rport = dst, seg.dport, src, seg.sport
            child.bound = True
            child.parent = ls
            child.irs = seg.seq
            child.rcv_nxt = (seg.seq + 1) & M32
            child.snd_wnd = seg.window
            if seg.mss:
                child.mss = min(MSS, seg.mss)
            child.iss = table.new_isn()
            child.snd_una = child.iss
            child.state = "SYN_RCVD"
            table.tcp_conns[(dst, seg.dport, src, seg.sport)] = child
            child._send_synack()
            return
    if seg.flags & tcpf.RST:
        return
    # RFC 9293 3.10.7.1: a segment for a closed port gets a RST.
    if seg.flags & tcpf.ACK:
        rst = tcpf.build(dst, src, seg.dport, seg.sport, seg.ack, 0, tcpf.RST, 0)
    else:
        ack = (
            seg.seq + len(seg.data) + (1 if seg.flags & tcpf.SYN else 0) + (1 if seg.flags & tcpf.FIN else 0)
        )
        rst = tcpf.build(dst, src, seg.dport, seg.sport, 0, ack, tcpf.RST | tcpf.ACK, 0)
    table.stack.ip_output(dst, src, IPPROTO_TCP, rst)


__all__ = ["EAGAIN", "TcpSocket", "tcp_v4_rcv"]
