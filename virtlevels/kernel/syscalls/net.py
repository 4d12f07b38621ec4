"""Socket system calls (socket(2), bind(2), connect(2), listen(2), accept4(2), sendto(2),
recvfrom(2), sendmsg(2)/recvmsg(2) basic, shutdown(2), getsockname(2), getpeername(2),
setsockopt(2)/getsockopt(2) for SO_REUSEADDR, SO_RCVTIMEO, SO_ERROR, IP_TTL).

The kernel only marshals: it dispatches to the caller's network namespace's stack through the
seam (``stack.socks.socket(type, proto)``, filled by the vnet plugin). A namespace whose stack
has no sockets (the default loopback-only stack) answers EAFNOSUPPORT, as a kernel without
CONFIG_INET would. A socket is an open file (S_IFSOCK) so read/write/close work on it.
Numbers are the generic ABI's (include/uapi/asm-generic/unistd.h); ``struct sockaddr_in`` is
family (u16, host order), port and address (network order), 8 bytes of zero.
"""

from __future__ import annotations

import struct
from typing import Any

from virtlevels.kernel.errno import (
    EAFNOSUPPORT,
    EAGAIN,
    EBADF,
    EFAULT,
    EINPROGRESS,
    EINVAL,
    ENODEV,
    ENOPROTOOPT,
    ENOTSOCK,
    ENOTTY,
    EPERM,
    KernelError,
)
from virtlevels.kernel.scripted import Out, Syscall
from virtlevels.kernel.syscalls.table import _DEFAULT
from virtlevels.kernel.syscalls.util import mem, s32
from virtlevels.kernel.vfs.constants import O_CLOEXEC, O_NONBLOCK, O_RDWR, S_IFSOCK
from virtlevels.kernel.vfs.file import OpenFile
from virtlevels.kernel.wait import WaitQueue, WouldBlock

# include/uapi/asm-generic/unistd.h
NR_SOCKET, NR_BIND, NR_LISTEN, NR_ACCEPT, NR_CONNECT = 198, 200, 201, 202, 203
NR_GETSOCKNAME, NR_GETPEERNAME, NR_SENDTO, NR_RECVFROM = 204, 205, 206, 207
NR_SETSOCKOPT, NR_GETSOCKOPT, NR_SHUTDOWN, NR_SENDMSG, NR_RECVMSG, NR_ACCEPT4 = 208, 209, 210, 211, 212, 242

AF_INET = 2
SOCK_STREAM, SOCK_DGRAM = 1, 2
SOCK_NONBLOCK, SOCK_CLOEXEC = O_NONBLOCK, O_CLOEXEC
IPPROTO_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 0, 1, 6, 17
SOL_SOCKET = 1
SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_RCVTIMEO, SO_SNDTIMEO = 2, 3, 4, 20, 21
IP_TTL = 2
MSG_PEEK, MSG_DONTWAIT, MSG_ERRQUEUE = 0x2, 0x40, 0x2000
SOCKADDR_IN = struct.Struct("<H2s4s8x")
_MSGHDR = struct.Struct("<IIIIIII")  # name, namelen, iov, iovlen, control, controllen, flags (ILP32)


# include/uapi/linux/sockios.h, if.h
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFNAMSIZ, IFREQ_SIZE, IFF_UP = 16, 32, 0x1


class SocketOps:
    """file_operations of a socket (sock_read_iter/sock_write_iter/sock_close)."""

    seekable = False

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def read(self, f: OpenFile, size: int) -> bytes:
        return _recv(self.sock, f, size, 0)[0]

    def write(self, f: OpenFile, data: bytes) -> int:
        return int(self.sock.sendto(data, None))

    def release(self, f: OpenFile) -> None:
        self.sock.close()

    def ioctl(self, k: Any, t: Any, f: OpenFile, request: int, arg: int) -> int:
        """netdevice(7) SIOCGIFFLAGS / SIOCSIFFLAGS on the caller's network namespace (``struct
        ifreq``: a 16-byte name, then ``short ifr_flags``); setting needs CAP_NET_ADMIN."""
        if request not in (SIOCGIFFLAGS, SIOCSIFFLAGS):
            raise KernelError(ENOTTY, f"socket ioctl {request:#x}")
        stack = t.nsproxy.net.stack
        m = mem(t)
        raw = m.read(arg, IFREQ_SIZE)
        name = raw[:IFNAMSIZ].split(b"\0", 1)[0].decode("ascii", "replace")
        info = next((i for i in stack.interfaces() if i.name == name), None)
        if info is None:
            raise KernelError(ENODEV, f"no interface {name!r}")
        if request == SIOCGIFFLAGS:
            m.write(arg + IFNAMSIZ, struct.pack("<H", info.flags & 0xFFFF))
            return 0
        from virtlevels.kernel.caps import CAP_NET_ADMIN
        from virtlevels.kernel.ns.user import has_cap

        # dev_ifsioc: ns_capable(net->user_ns, CAP_NET_ADMIN)
        owner = t.nsproxy.net.owner_ns or t.nsproxy.user
        if not has_cap(t.creds, owner, CAP_NET_ADMIN):
            raise KernelError(EPERM, "SIOCSIFFLAGS needs CAP_NET_ADMIN")
        (flags,) = struct.unpack("<H", raw[IFNAMSIZ : IFNAMSIZ + 2])
        stack.set_link_up(name, bool(flags & IFF_UP))
        return 0


# -- helpers --------------------------------------------------------------------------------------
def _stack(t: Any) -> Any:
    stack = t.nsproxy.net.stack
    if getattr(stack, "socks", None) is None:
        raise KernelError(EAFNOSUPPORT, "this network namespace has no IPv4 stack")
    return stack


def _sockfile(t: Any, fd: int) -> OpenFile:
    f: OpenFile = t.files.get(s32(fd))
    if not isinstance(f.ops, SocketOps):
        raise KernelError(ENOTSOCK, f"fd {s32(fd)} is not a socket")
    return f


def _read_addr(t: Any, addr: int, addrlen: int) -> tuple[int, int]:
    if addr == 0:
        raise KernelError(EFAULT, "NULL address")
    if s32(addrlen) < SOCKADDR_IN.size:
        raise KernelError(EINVAL, f"address length {s32(addrlen)}")
    fam, port, ip = SOCKADDR_IN.unpack(mem(t).read(addr, SOCKADDR_IN.size))
    if fam != AF_INET:
        raise KernelError(EAFNOSUPPORT, f"address family {fam}")
    return int.from_bytes(ip, "big"), int.from_bytes(port, "big")


def _write_addr(t: Any, addr: int, lenp: int, value: tuple[int, int]) -> None:
    if addr == 0:
        return
    m = mem(t)
    have = struct.unpack("<i", m.read(lenp, 4))[0] if lenp else SOCKADDR_IN.size
    if have < 0:
        raise KernelError(EINVAL, "negative address length")
    raw = SOCKADDR_IN.pack(AF_INET, value[1].to_bytes(2, "big"), value[0].to_bytes(4, "big"))
    m.write(addr, raw[:have])
    if lenp:
        m.write(lenp, struct.pack("<i", SOCKADDR_IN.size))  # the real size, even if truncated


def _nonblock(f: OpenFile, flags: int = 0) -> bool:
    return bool(f.flags & O_NONBLOCK) or bool(flags & MSG_DONTWAIT)


def _blocking(k: Any, t: Any, sock: Any, wb: WouldBlock) -> None:
    """Sleep on the socket, bounded by SO_RCVTIMEO (sock_rcvtimeo): past it, EAGAIN."""
    if not sock.rcvtimeo_ns:
        raise wb
    deadlines = _deadlines(sock)
    now = k.now_ns()
    due = deadlines.setdefault(t.host_tid, now + sock.rcvtimeo_ns)
    if now >= due:
        del deadlines[t.host_tid]
        raise KernelError(EAGAIN, "SO_RCVTIMEO expired")
    q = WaitQueue()
    wb.queue.add(q.wake_all)
    k._schedule_ns(due - now, q.wake_all)
    raise WouldBlock(q)


def _deadlines(sock: Any) -> dict[int, int]:
    """The stack's socket keeps, per sleeping thread, its SO_RCVTIMEO deadline (``timeouts``)."""
    return sock.timeouts  # type: ignore[no-any-return]


def _recv(sock: Any, f: OpenFile, size: int, flags: int) -> tuple[bytes, tuple[int, int]]:
    try:
        return sock.recvfrom(size, flags)  # type: ignore[no-any-return]
    except WouldBlock:
        if _nonblock(f, flags):
            raise KernelError(EAGAIN, "no data") from None
        raise


def _install(k: Any, t: Any, sock: Any, flags: int) -> int:
    inode = k.vfs.anon_inode(S_IFSOCK | 0o777, t.creds)  # sockfs
    inode.open_count += 1
    f = OpenFile(inode, SocketOps(sock), O_RDWR | (flags & O_NONBLOCK))
    files = t.files
    files.max_fds = k.nofile(t)
    try:
        return int(files.install(f, bool(flags & O_CLOEXEC)))
    except KernelError:
        f.put()
        raise


# -- handlers -------------------------------------------------------------------------------------
def sys_socket(k: Any, t: Any, domain: int, type_: int, proto: int) -> int:
    if domain != AF_INET:
        raise KernelError(EAFNOSUPPORT, f"domain {domain}")
    flags = type_ & (SOCK_NONBLOCK | SOCK_CLOEXEC)
    base = type_ & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
    sock = _stack(t).socks.socket(base, proto)
    try:
        return _install(k, t, sock, flags)
    except KernelError:
        sock.close()
        raise


def sys_bind(k: Any, t: Any, fd: int, addr: int, addrlen: int) -> int:
    sock = _sockfile(t, fd).ops.sock
    ip, port = _read_addr(t, addr, addrlen)
    sock.bind(ip, port)
    return 0


def sys_connect(k: Any, t: Any, fd: int, addr: int, addrlen: int) -> int:
    f = _sockfile(t, fd)
    sock = f.ops.sock
    ip, port = _read_addr(t, addr, addrlen)
    try:
        sock.connect(ip, port)
    except WouldBlock:
        if _nonblock(f):
            raise KernelError(EINPROGRESS, "connection under way") from None
        raise
    return 0


def sys_listen(k: Any, t: Any, fd: int, backlog: int) -> int:
    _sockfile(t, fd).ops.sock.listen(s32(backlog))
    return 0


def sys_accept4(k: Any, t: Any, fd: int, addr: int, lenp: int, flags: int) -> int:
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise KernelError(EINVAL, f"accept4 flags {flags:#x}")
    f = _sockfile(t, fd)
    sock = f.ops.sock
    try:
        child = sock.accept()
    except WouldBlock as wb:
        if _nonblock(f):
            raise KernelError(EAGAIN, "no pending connection") from None
        _blocking(k, t, sock, wb)
    _deadlines(sock).pop(t.host_tid, None)
    nfd = _install(k, t, child, flags)
    _write_addr(t, addr, lenp, (child.raddr, child.rport))
    return nfd


def sys_accept(k: Any, t: Any, fd: int, addr: int, lenp: int) -> int:
    return sys_accept4(k, t, fd, addr, lenp, 0)


def sys_getsockname(k: Any, t: Any, fd: int, addr: int, lenp: int) -> int:
    _write_addr(t, addr, lenp, _sockfile(t, fd).ops.sock.getsockname())
    return 0


def sys_getpeername(k: Any, t: Any, fd: int, addr: int, lenp: int) -> int:
    _write_addr(t, addr, lenp, _sockfile(t, fd).ops.sock.getpeername())
    return 0


def sys_sendto(k: Any, t: Any, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    _sockfile(t, fd)  # EBADF / ENOTSOCK before the buffer is read
    return _sendmsg(k, t, fd, mem(t).read(buf, length), flags, addr, addrlen)


def sys_recvfrom(k: Any, t: Any, fd: int, buf: int, size: int, flags: int, addr: int, lenp: int) -> int:
    f = _sockfile(t, fd)
    sock = f.ops.sock
    if flags & MSG_ERRQUEUE:
        # The IP_RECVERR error queue, simplified: the quoted errno is returned and the address
        # is the ICMP error's sender (what traceroute needs: the router that answered).
        err = sock.recv_err()
        mem(t).write(buf, struct.pack("<iBBxxI", err.errno, err.type, err.code, err.offender)[:size])
        _write_addr(t, addr, lenp, (err.offender, 0))
        return min(size, 12)
    try:
        data, src = _recv(sock, f, size, flags)
    except WouldBlock as wb:
        _blocking(k, t, sock, wb)
    _deadlines(sock).pop(t.host_tid, None)
    mem(t).write(buf, data)
    _write_addr(t, addr, lenp, src)
    return len(data)


def _iov(t: Any, iov: int, n: int) -> list[tuple[int, int]]:
    if n < 0 or n > 1024:
        raise KernelError(EINVAL, f"iovlen {n}")
    m = mem(t)
    return [struct.unpack("<II", m.read(iov + 8 * i, 8)) for i in range(n)]


def sys_sendmsg(k: Any, t: Any, fd: int, msg: int, flags: int) -> int:
    name, namelen, iov, iovlen, _c, _cl, _f = _MSGHDR.unpack(mem(t).read(msg, _MSGHDR.size))
    data = b"".join(mem(t).read(b, n) for b, n in _iov(t, iov, iovlen))
    return _sendmsg(k, t, fd, data, flags, name, namelen)


def _sendmsg(k: Any, t: Any, fd: int, data: bytes, flags: int, name: int, namelen: int) -> int:
    f = _sockfile(t, fd)
    dest = _read_addr(t, name, namelen) if name else None
    try:
        return int(f.ops.sock.sendto(data, dest))
    except WouldBlock:
        if _nonblock(f, flags):
            raise KernelError(EAGAIN, "send buffer full") from None
        raise


def sys_recvmsg(k: Any, t: Any, fd: int, msg: int, flags: int) -> int:
    m = mem(t)
    name, _namelen, iov, iovlen, _c, _cl, _f = _MSGHDR.unpack(m.read(msg, _MSGHDR.size))
    vecs = _iov(t, iov, iovlen)
    f = _sockfile(t, fd)
    sock = f.ops.sock
    try:
        data, src = _recv(sock, f, sum(n for _b, n in vecs), flags)
    except WouldBlock as wb:
        _blocking(k, t, sock, wb)
    _deadlines(sock).pop(t.host_tid, None)
    off = 0
    for b, n in vecs:
        m.write(b, data[off : off + n])
        off += n
    if name:
        _write_addr(t, name, msg + 4, src)
    m.write(msg + 20, struct.pack("<II", 0, 0))  # no control data; msg_flags 0
    return len(data)


def sys_shutdown(k: Any, t: Any, fd: int, how: int) -> int:
    _sockfile(t, fd).ops.sock.shutdown(s32(how))
    return 0


def _timeval_ns(raw: bytes) -> int:
    sec, usec = struct.unpack("<ii", raw[:8])
    if sec < 0 or not 0 <= usec < 1_000_000:
        raise KernelError(33, "timeval out of range")  # EDOM, as sock_set_timeout
    return sec * 1_000_000_000 + usec * 1000


def sys_setsockopt(k: Any, t: Any, fd: int, level: int, name: int, val: int, vlen: int) -> int:
    sock = _sockfile(t, fd).ops.sock
    raw = mem(t).read(val, s32(vlen)) if s32(vlen) > 0 else b""
    if level == SOL_SOCKET and name == SO_REUSEADDR and len(raw) >= 4:
        sock.reuseaddr = bool(struct.unpack("<i", raw[:4])[0])
    elif level == SOL_SOCKET and name in (SO_RCVTIMEO, SO_SNDTIMEO) and len(raw) >= 8:
        setattr(sock, "rcvtimeo_ns" if name == SO_RCVTIMEO else "sndtimeo_ns", _timeval_ns(raw))
    elif level == IPPROTO_IP and name == IP_TTL and len(raw) >= 4:
        ttl = struct.unpack("<i", raw[:4])[0]
        if not 1 <= ttl <= 255:
            raise KernelError(EINVAL, f"IP_TTL {ttl}")
        sock.ttl = ttl
    elif level in (SOL_SOCKET, IPPROTO_IP) and len(raw) < 4:
        raise KernelError(EINVAL, "option value too short")
    else:
        raise KernelError(ENOPROTOOPT, f"option {level}/{name}")
    return 0


def sys_getsockopt(k: Any, t: Any, fd: int, level: int, name: int, val: int, lenp: int) -> int:
    sock = _sockfile(t, fd).ops.sock
    if level == SOL_SOCKET and name == SO_ERROR:
        v, sock.so_error = sock.so_error, 0
    elif level == SOL_SOCKET and name == SO_REUSEADDR:
        v = int(sock.reuseaddr)
    elif level == SOL_SOCKET and name == SO_TYPE:
        v = sock.type
    elif level == IPPROTO_IP and name == IP_TTL:
        v = sock.ttl
    else:
        raise KernelError(ENOPROTOOPT, f"option {level}/{name}")
    mem(t).write(val, struct.pack("<i", v))
    mem(t).write(lenp, struct.pack("<i", 4))
    return 0


for _nr, _fn, _n, _name in (
    (NR_SOCKET, sys_socket, 3, "socket"), (NR_BIND, sys_bind, 3, "bind"),
    (NR_LISTEN, sys_listen, 2, "listen"),
    (NR_ACCEPT, sys_accept, 3, "accept"), (NR_CONNECT, sys_connect, 3, "connect"),
    (NR_GETSOCKNAME, sys_getsockname, 3, "getsockname"), (NR_GETPEERNAME, sys_getpeername, 3, "getpeername"),
    (NR_SENDTO, sys_sendto, 6, "sendto"), (NR_RECVFROM, sys_recvfrom, 6, "recvfrom"),
    (NR_SETSOCKOPT, sys_setsockopt, 5, "setsockopt"), (NR_GETSOCKOPT, sys_getsockopt, 5, "getsockopt"),
    (NR_SHUTDOWN, sys_shutdown, 2, "shutdown"), (NR_SENDMSG, sys_sendmsg, 3, "sendmsg"),
    (NR_RECVMSG, sys_recvmsg, 3, "recvmsg"), (NR_ACCEPT4, sys_accept4, 4, "accept4"),
):  # fmt: skip
    _DEFAULT.register(_nr, _fn, _n, _name)


# -- scripted-program wrappers (what libc's socket functions are to a C program) ----------------------
def sockaddr(ip: str | int, port: int) -> bytes:
    """A ``struct sockaddr_in`` for ``ip`` (dotted quad or int) and ``port``."""
    if isinstance(ip, str):
        parts = [int(p) for p in ip.split(".")]
        ip = (parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]
    return SOCKADDR_IN.pack(AF_INET, port.to_bytes(2, "big"), ip.to_bytes(4, "big"))


def unpack_sockaddr(raw: bytes) -> tuple[str, int]:
    _f, port, ip = SOCKADDR_IN.unpack(raw[: SOCKADDR_IN.size])
    return ".".join(str(b) for b in ip), int.from_bytes(port, "big")


class _LenIn(int):
    """An in/out ``socklen_t`` preset to 16: the marshaller copies ``bytes(x)`` into user
    memory, so the kernel reads 16 and the decoder sees what the kernel wrote back."""

    def __new__(cls) -> _LenIn:
        return super().__new__(cls, 4)

    def __bytes__(self) -> bytes:
        return struct.pack("<i", SOCKADDR_IN.size)


def socket(domain: int, type_: int, proto: int = 0) -> Syscall:
    return Syscall(NR_SOCKET, (domain, type_, proto))


def bind(fd: int, ip: str | int, port: int) -> Syscall:
    return Syscall(NR_BIND, (fd, sockaddr(ip, port), SOCKADDR_IN.size))


def connect(fd: int, ip: str | int, port: int) -> Syscall:
    return Syscall(NR_CONNECT, (fd, sockaddr(ip, port), SOCKADDR_IN.size))


def listen(fd: int, backlog: int = 128) -> Syscall:
    return Syscall(NR_LISTEN, (fd, backlog))


def accept4(fd: int, flags: int = 0) -> Syscall:
    """Returns ``(fd, (ip, port))`` or ``-errno``."""
    return Syscall(NR_ACCEPT4, (fd, Out(16), Out(_LenIn()), flags),
                   lambda r, o: r if r < 0 else (r, unpack_sockaddr(o[0])))  # fmt: skip


def sendto(fd: int, data: bytes, ip: str | int | None = None, port: int = 0, flags: int = 0) -> Syscall:
    if ip is None:
        return Syscall(NR_SENDTO, (fd, bytes(data), len(data), flags, 0, 0))
    return Syscall(NR_SENDTO, (fd, bytes(data), len(data), flags, sockaddr(ip, port), SOCKADDR_IN.size))


def recvfrom(fd: int, size: int, flags: int = 0) -> Syscall:
    """Returns ``(data, (ip, port))`` or ``-errno``."""
    return Syscall(NR_RECVFROM, (fd, Out(size), size, flags, Out(16), Out(_LenIn())),
                   lambda r, o: r if r < 0 else (o[0][:r], unpack_sockaddr(o[1])))  # fmt: skip


def shutdown(fd: int, how: int) -> Syscall:
    return Syscall(NR_SHUTDOWN, (fd, how))


def getsockname(fd: int) -> Syscall:
    return Syscall(NR_GETSOCKNAME, (fd, Out(16), Out(_LenIn())),
                   lambda r, o: r if r < 0 else unpack_sockaddr(o[0]))  # fmt: skip


def setsockopt(fd: int, level: int, name: int, value: int | bytes) -> Syscall:
    raw = struct.pack("<i", value) if isinstance(value, int) else bytes(value)
    return Syscall(NR_SETSOCKOPT, (fd, level, name, raw, len(raw)))


def rcvtimeo(fd: int, seconds: float) -> Syscall:
    sec = int(seconds)
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, struct.pack("<ii", sec, int((seconds - sec) * 1e6)))


__all__ = [
    "AF_INET",
    "EBADF",
    "SOCK_DGRAM",
    "SOCK_STREAM",
    "SocketOps",
    "accept4",
    "bind",
    "connect",
    "listen",
    "recvfrom",
    "sendto",
    "setsockopt",
    "shutdown",
    "socket",
    "sockaddr",
]
