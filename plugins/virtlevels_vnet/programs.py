"""ping, traceroute and a netcat-like ``nc``: scripted programs that run as processes of the
simulated kernel and use only system calls (socket(2), sendto(2), recvfrom(2), setsockopt(2),
clock_gettime(2), nanosleep(2), read(2), write(2)), as their C namesakes do.

- ``ping [-c COUNT] [-i INTERVAL] [-t TTL] [-W TIMEOUT] DEST`` (ping(8)): an ICMP echo socket
  (SOCK_DGRAM/IPPROTO_ICMP); prints a line per reply, ICMP errors from the error queue, and the
  summary; exit 0 if any reply came, 1 if none, 2 on an error.
- ``traceroute [-m MAX_HOPS] [-w WAIT] [-p PORT] DEST`` (traceroute(8), UDP probes): probe ``n``
  goes to port PORT+n-1 with TTL ``n`` from a connected UDP socket; "time exceeded" from a
  router reports the hop (read from the error queue), "port unreachable" means the destination.
- ``nc [-u] [-w SECS] HOST PORT`` sends standard input and prints what comes back;
  ``nc -l [-u] [-w SECS] -p PORT`` accepts one connection (or datagrams) and prints what
  arrives, sending standard input back (nc(1), OpenBSD flavour).

Addresses are dotted quads (there is no resolver).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.syscalls import net as sn

CLOCK_MONOTONIC = 1
EAGAIN, ECONNREFUSED, EHOSTUNREACH, ENETUNREACH = 11, 111, 113, 101
_ERR_TEXT = {  # what ping(8) prints for ICMP errors (type, code)
    (3, 0): "Destination Net Unreachable", (3, 1): "Destination Host Unreachable",
    (3, 3): "Destination Port Unreachable", (3, 13): "Packet filtered",
    (11, 0): "Time to live exceeded",
}  # fmt: skip

Gen = Generator[Any, Any, int]


def _out(text: str) -> Any:
    return sc.write(1, text.encode())


def _err(text: str) -> Any:
    return sc.write(2, text.encode())


def _valid_ip(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def _opts(argv: tuple[str, ...], spec: dict[str, bool]) -> tuple[dict[str, str], list[str]] | str:
    """getopt-like: ``spec[flag]`` True if it takes a value. Returns (options, operands) or an error."""
    opts: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and len(a) > 1 and not a[1:].replace(".", "").isdigit():
            if a not in spec:
                return f"invalid option -- '{a[1:]}'"
            if spec[a]:
                if i + 1 >= len(argv):
                    return f"option requires an argument -- '{a[1:]}'"
                opts[a] = argv[i + 1]
                i += 1
            else:
                opts[a] = ""
        else:
            rest.append(a)
        i += 1
    return opts, rest


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# -- ping ----------------------------------------------------------------------------------------------
def ping(*argv: str) -> Gen:
    parsed = _opts(argv, {"-c": True, "-i": True, "-t": True, "-W": True})
    if isinstance(parsed, str) or len(parsed[1]) != 1 or not _valid_ip(parsed[1][0]):
        yield _err(f"ping: {parsed if isinstance(parsed, str) else 'usage: ping [-c N] [-t TTL] DEST'}\n")
        return 2
    o, (dest,) = parsed
    count, interval, ttl, wait = (_num(o.get(k, d)) for k, d in (("-c", "4"), ("-i", "1"), ("-t", "64"),
                                                                  ("-W", "1")))  # fmt: skip
    if count is None or interval is None or ttl is None or wait is None or count < 1 or not 1 <= ttl <= 255:
        yield _err("ping: bad -c, -i, -t or -W value\n")
        return 2
    fd = yield sn.socket(sn.AF_INET, sn.SOCK_DGRAM, sn.IPPROTO_ICMP)
    if fd < 0:
        yield _err(f"ping: socket: errno {-fd}\n")
        return 2
    yield sn.setsockopt(fd, sn.IPPROTO_IP, sn.IP_TTL, int(ttl))
    yield sn.rcvtimeo(fd, wait)
    yield _out(f"PING {dest} 56 data bytes\n")
    sent = received = 0
    rtts: list[float] = []
    for seq in range(1, int(count) + 1):
        t0 = yield sc.clock_gettime(CLOCK_MONOTONIC)
        echo = bytes([8, 0, 0, 0, 0, 0, seq >> 8, seq & 255]) + bytes(range(56))
        r = yield sn.sendto(fd, echo, dest, 0)
        sent += 1
        if isinstance(r, int) and r < 0:
            yield _out(f"ping: sendto: {'Network is unreachable' if -r == ENETUNREACH else f'errno {-r}'}\n")
            return 2
        while True:
            got = yield sn.recvfrom(fd, 1024)
            if isinstance(got, tuple):
                data, (src, _p) = got
                if len(data) >= 8 and ((data[6] << 8) | data[7]) != seq:
                    continue  # a late reply to an earlier probe
                t1 = yield sc.clock_gettime(CLOCK_MONOTONIC)
                rtt = (t1 - t0) / 1e6
                rtts.append(rtt)
                received += 1
                yield _out(f"{len(data)} bytes from {src}: icmp_seq={seq} time={rtt:.3f} ms\n")
                break
            err = yield sn.recvfrom(fd, 12, sn.MSG_ERRQUEUE)
            if isinstance(err, tuple):
                raw, (who, _p) = err
                text = _ERR_TEXT.get((raw[4], raw[5]), f"ICMP type {raw[4]} code {raw[5]}")
                yield _out(f"From {who} icmp_seq={seq} {text}\n")
            break  # timed out (EAGAIN) or an ICMP error
        if seq < count:
            yield sc.nanosleep(int(interval * 1e9))
    loss = 100 * (sent - received) // sent
    yield _out(f"--- {dest} ping statistics ---\n{sent} packets transmitted, {received} received, "
               f"{loss}% packet loss\n")  # fmt: skip
    if rtts:
        avg = sum(rtts) / len(rtts)
        yield _out(f"rtt min/avg/max = {min(rtts):.3f}/{avg:.3f}/{max(rtts):.3f} ms\n")
    yield sc.close(fd)
    return 0 if received else 1


# -- traceroute ------------------------------------------------------------------------------------------
def traceroute(*argv: str) -> Gen:
    parsed = _opts(argv, {"-m": True, "-w": True, "-p": True})
    if isinstance(parsed, str) or len(parsed[1]) != 1 or not _valid_ip(parsed[1][0]):
        yield _err("traceroute: usage: traceroute [-m MAX_HOPS] [-w WAIT] [-p PORT] DEST\n")
        return 2
    o, (dest,) = parsed
    hops, wait, port = (_num(o.get(k, d)) for k, d in (("-m", "30"), ("-w", "1"), ("-p", "33434")))
    if hops is None or wait is None or port is None or not 1 <= hops <= 255:
        yield _err("traceroute: bad -m, -w or -p value\n")
        return 2
    yield _out(f"traceroute to {dest}, {int(hops)} hops max\n")
    for ttl in range(1, int(hops) + 1):
        fd = yield sn.socket(sn.AF_INET, sn.SOCK_DGRAM, 0)
        yield sn.setsockopt(fd, sn.IPPROTO_IP, sn.IP_TTL, ttl)
        yield sn.rcvtimeo(fd, wait)
        r = yield sn.connect(fd, dest, int(port) + ttl - 1)
        if r < 0:
            yield _out(f"traceroute: connect: errno {-r}\n")
            return 2
        t0 = yield sc.clock_gettime(CLOCK_MONOTONIC)
        yield sn.sendto(fd, b"virtlevels-traceroute")
        res = yield sn.recvfrom(fd, 64)
        t1 = yield sc.clock_gettime(CLOCK_MONOTONIC)
        done = False
        if isinstance(res, int) and res in (-EHOSTUNREACH, -ECONNREFUSED, -ENETUNREACH):
            err = yield sn.recvfrom(fd, 12, sn.MSG_ERRQUEUE)
            who = err[1][0] if isinstance(err, tuple) else "?"
            mark = {-ENETUNREACH: " !N"}.get(res, "")
            if isinstance(err, tuple) and err[0][4] == 3 and err[0][5] == 1:
                mark = " !H"
            yield _out(f"{ttl:2d}  {who}  {(t1 - t0) / 1e6:.3f} ms{mark}\n")
            done = res != -EHOSTUNREACH or bool(mark)
        else:
            yield _out(f"{ttl:2d}  *\n")
        yield sc.close(fd)
        if done:
            return 0
    return 1


# -- nc --------------------------------------------------------------------------------------------------
def _stdin() -> Generator[Any, Any, bytes]:
    data = b""
    while True:
        chunk = yield sc.read(0, 65536)
        if not isinstance(chunk, bytes) or not chunk:
            return data
        data += chunk


def nc(*argv: str) -> Gen:
    parsed = _opts(argv, {"-u": False, "-l": False, "-w": True, "-p": True})
    usage = "nc: usage: nc [-u] [-w SECS] HOST PORT | nc -l [-u] [-w SECS] -p PORT\n"
    if isinstance(parsed, str):
        yield _err(f"nc: {parsed}\n{usage}")
        return 1
    o, rest = parsed
    udp, listen = "-u" in o, "-l" in o
    wait = _num(o.get("-w", "5"))
    if wait is None or wait <= 0:
        yield _err("nc: bad -w value\n")
        return 1
    stype = sn.SOCK_DGRAM if udp else sn.SOCK_STREAM
    payload = yield from _stdin()
    fd = yield sn.socket(sn.AF_INET, stype, 0)
    if fd < 0:
        yield _err(f"nc: socket: errno {-fd}\n")
        return 1
    yield sn.rcvtimeo(fd, wait)
    if listen:
        p = _num(o.get("-p", ""))
        if p is None or not 0 < p < 65536 or rest:
            yield _err(usage)
            return 1
        yield sn.setsockopt(fd, sn.SOL_SOCKET, sn.SO_REUSEADDR, 1)
        r = yield sn.bind(fd, "0.0.0.0", int(p))
        if r < 0:
            yield _err(f"nc: bind: errno {-r}\n")
            return 1
        if udp:
            got = yield sn.recvfrom(fd, 65536)
            if not isinstance(got, tuple):
                return 1
            yield sc.write(1, got[0])
            if payload:
                yield sn.sendto(fd, payload, *got[1])
            return 0
        yield sn.listen(fd, 1)
        acc = yield sn.accept4(fd)
        if not isinstance(acc, tuple):
            yield _err("nc: accept: timed out\n")
            return 1
        conn = acc[0]
        yield sn.rcvtimeo(conn, wait)
        if payload:
            yield sn.sendto(conn, payload)
        code = yield from _copy_out(conn)
        yield sc.close(conn)
        return code
    if len(rest) != 2 or not _valid_ip(rest[0]) or _num(rest[1]) is None:
        yield _err(usage)
        return 1
    host, port = rest[0], int(rest[1])
    r = yield sn.connect(fd, host, port)
    if r < 0:
        yield _err(f"nc: connect to {host} port {port} failed: errno {-r}\n")
        return 1
    yield sn.sendto(fd, payload)
    if udp:
        got = yield sn.recvfrom(fd, 65536)
        if isinstance(got, tuple):
            yield sc.write(1, got[0])
        return 0
    yield sn.shutdown(fd, 1)  # SHUT_WR: EOF to the peer, as nc -N
    return (yield from _copy_out(fd))


def _copy_out(fd: int) -> Gen:
    while True:
        got = yield sn.recvfrom(fd, 65536)
        if not isinstance(got, tuple):
            return 0 if got == -EAGAIN else 1
        if not got[0]:
            return 0
        yield sc.write(1, got[0])


PROGRAMS = {"ping": ping, "traceroute": traceroute, "nc": nc}
