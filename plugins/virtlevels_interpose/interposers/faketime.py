"""libfaketime: shift or freeze the time one process sees (``LD_PRELOAD=libfaketime.so.1``).

The preloaded library defines time, gettimeofday and clock_gettime (CLOCK_REALTIME only, as
the monotonic clocks are left alone), calls
the real ones with ``dlsym(RTLD_NEXT, ...)`` and adjusts the result from ``FAKETIME`` in the
process's environment (libfaketime README "Using absolute dates" / "relative dates"):

* ``"+2d"``, ``"-1h30m"``, ``"+120"``: an offset (s, m, h, d, y; plain numbers are seconds);
* ``"@2008-12-24 08:15:42"``: start at that date, the clock keeps running from there;
* ``"2008-12-24 08:15:42"``: frozen at that date.
"""

from __future__ import annotations

import calendar
import re
import struct
from collections.abc import Generator
from typing import Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels_interpose.linker import CallCtx, Library

FAKETIME_NAME = "libfaketime.so.1"
CLOCK_REALTIME = 0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}
Gen = Generator[Any, Any, Any]


@attrs.frozen
class FakeTime:
    mode: str  # "offset", "start" or "freeze"
    seconds: int  # the offset, or the absolute date (epoch seconds)


def parse_faketime(spec: str) -> FakeTime:
    s = spec.strip()
    if s[:1] in "+-":
        sign = -1 if s[0] == "-" else 1
        total = 0
        body = s[1:]
        if re.fullmatch(r"\d+", body):
            return FakeTime("offset", sign * int(body))
        parts = re.findall(r"(\d+)([smhdy])", body)
        if not parts or "".join(n + u for n, u in parts) != body:
            raise ConfigError(f"FAKETIME={spec!r}: an offset is +/-N with units s, m, h, d, y (e.g. +2d)")
        for n, u in parts:
            total += int(n) * _UNITS[u]
        return FakeTime("offset", sign * total)
    mode = "start" if s.startswith("@") else "freeze"
    date = s.lstrip("@").strip()
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}):(\d{2}))?", date)
    if m is None:
        raise ConfigError(
            f"FAKETIME={spec!r}: expected +/-offset, YYYY-MM-DD HH:MM:SS or @YYYY-MM-DD HH:MM:SS"
        )
    y, mo, d, hh, mi, ss = (int(x) if x else 0 for x in m.groups())
    return FakeTime(mode, calendar.timegm((y, mo, d, hh, mi, ss, 0, 0, 0)))


def _fake_ns(c: CallCtx, real_ns: int) -> int:
    spec = c.getenv("FAKETIME")
    if not spec:
        return real_ns
    try:
        ft = parse_faketime(spec)
    except ConfigError:
        return real_ns  # libfaketime ignores a FAKETIME it cannot parse
    if ft.mode == "offset":
        return real_ns + ft.seconds * 1_000_000_000
    if ft.mode == "freeze":
        return ft.seconds * 1_000_000_000
    # "start": the first call fixes the origin; time runs on from the given date.
    origin = c.lm.ext.setdefault("faketime_origin", real_ns)
    return ft.seconds * 1_000_000_000 + (real_ns - int(origin))


def make_faketime() -> Library:
    lib = Library(FAKETIME_NAME, description="libfaketime: FAKETIME shifts or freezes the wall clock")

    @lib.function("clock_gettime")
    def clock_gettime(c: CallCtx, clk: int, tp: Any = 0) -> Gen:
        buf = bytearray(8)
        r = yield from c.next(clk, buf)
        if r != 0:
            return r
        sec, nsec = struct.unpack("<iI", bytes(buf))
        ns = sec * 10**9 + nsec
        if clk == CLOCK_REALTIME:
            ns = _fake_ns(c, ns)
        if tp:
            c.write(tp, struct.pack("<iI", *divmod(ns, 10**9)))
            return 0
        return 0 if c.isa else ns

    @lib.function("time")
    def time(c: CallCtx, tloc: Any = 0) -> Gen:
        real = yield from c.next(0)
        if real == -1:
            return -1
        sec = _fake_ns(c, int(real) * 10**9) // 10**9
        if tloc:
            c.write(tloc, struct.pack("<i", sec))
        return sec

    @lib.function("gettimeofday")
    def gettimeofday(c: CallCtx, tv: Any = 0, tz: Any = 0) -> Gen:
        buf = bytearray(8)
        r = yield from c.next(buf, 0)
        if r != 0:
            return r
        sec, usec = struct.unpack("<iI", bytes(buf))
        ns = _fake_ns(c, sec * 10**9 + usec * 1000)
        if tv:
            s2, n2 = divmod(ns, 10**9)
            c.write(tv, struct.pack("<iI", s2, n2 // 1000))
        return 0

    return lib
