"""Time namespaces (time_namespaces(7)): per-namespace offsets of CLOCK_MONOTONIC and CLOCK_BOOTTIME.

Offsets are set through /proc/PID/timens_offsets of a process whose *time_for_children*
namespace is the new one, before any process has entered it (then they are frozen: EACCES).
Inside, clock_gettime(2) adds the offset; absolute timer values are converted back.
"""

from __future__ import annotations

import re

import attrs

from virtlevels.kernel.caps import CAP_SYS_TIME
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EACCES, EINVAL, EPERM, ERANGE, KernelError
from virtlevels.kernel.ns.common import NS_TYPES, Namespace, NsContext
from virtlevels.kernel.ns.user import UserNamespace, has_cap

# include/uapi/linux/time.h
CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
CLOCK_PROCESS_CPUTIME_ID = 2
CLOCK_THREAD_CPUTIME_ID = 3
CLOCK_MONOTONIC_RAW = 4
CLOCK_REALTIME_COARSE = 5
CLOCK_MONOTONIC_COARSE = 6
CLOCK_BOOTTIME = 7
CLOCK_REALTIME_ALARM = 8
CLOCK_BOOTTIME_ALARM = 9
NSEC_PER_SEC = 1_000_000_000
KTIME_SEC_MAX = (2**63 - 1) // NSEC_PER_SEC  # include/linux/ktime.h

# Which offset applies to which clock (kernel/time/posix-timers.c, the timens_add_* calls).
_MONOTONIC_CLOCKS = frozenset({CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_COARSE})
_BOOTTIME_CLOCKS = frozenset({CLOCK_BOOTTIME, CLOCK_BOOTTIME_ALARM})
_LINE = re.compile(r"\s*(\S+)\s+([+-]?\d+)\s+(\d+)")


@attrs.define(eq=False)
class TimeNamespace(Namespace):
    TYPE = NS_TYPES["time"]

    monotonic: tuple[int, int] = (0, 0)  # (seconds, nanoseconds), as struct timespec64
    boottime: tuple[int, int] = (0, 0)
    frozen_offsets: bool = False  # set when the first process enters (timens_commit)

    def offset_ns(self, clockid: int) -> int:
        if clockid in _MONOTONIC_CLOCKS:
            s, n = self.monotonic
        elif clockid in _BOOTTIME_CLOCKS:
            s, n = self.boottime
        else:
            return 0
        return s * NSEC_PER_SEC + n

    def to_ns_time(self, clockid: int, host_ns: int) -> int:
        """clock_gettime inside the namespace: host clock value plus the namespace's offset."""
        return host_ns + self.offset_ns(clockid)

    def from_ns_time(self, clockid: int, ns_value: int) -> int:
        """An absolute time given inside the namespace (timer_settime, clock_nanosleep) in host terms."""
        return ns_value - self.offset_ns(clockid)

    def freeze(self) -> None:
        self.frozen_offsets = True

    def read_offsets(self) -> str:
        """/proc/PID/timens_offsets (fs/proc/base.c, show_offset: "%-10s %10lld %9ld")."""
        return "".join(
            f"{name:<10} {s:10d} {n:9d}\n"
            for name, (s, n) in (("monotonic", self.monotonic), ("boottime", self.boottime))
        )

    def write_offsets(
        self, text: str, creds: Credentials, *, monotonic_now: int = 0, boottime_now: int = 0
    ) -> None:
        """Set offsets from ``<clock> <secs> <nanosecs>`` lines (timens_offsets_write).

        ``clock`` is "monotonic"/"boottime" or the clock id (1/7). EINVAL for malformed lines or
        other clocks, EPERM without CAP_SYS_TIME over the namespace's owner, ERANGE if the
        resulting clock would be negative or overflow, EACCES once a process has entered.
        ``*_now`` are the host clocks in ns, for the range check.
        """
        offsets: list[tuple[int, int, int]] = []
        lines = text.split("\n")
        for line in lines:
            if len(offsets) == 2:
                break
            if line == "" and offsets:
                continue
            m = _LINE.match(line)
            if m is None:
                raise KernelError(EINVAL, f"bad timens_offsets line {line!r}")
            name, secs, nsecs = m.group(1), int(m.group(2)), int(m.group(3))
            if nsecs >= NSEC_PER_SEC:
                raise KernelError(EINVAL, f"nanoseconds out of range in {line!r}")
            if name in ("monotonic", str(CLOCK_MONOTONIC)):
                clk = CLOCK_MONOTONIC
            elif name in ("boottime", str(CLOCK_BOOTTIME)):
                clk = CLOCK_BOOTTIME
            else:
                raise KernelError(EINVAL, f"unknown clock {name!r}")
            offsets.append((clk, secs, nsecs))
        if self.owner_ns is not None and not has_cap(creds, self.owner_ns, CAP_SYS_TIME):
            raise KernelError(EPERM, "CAP_SYS_TIME needed in the time namespace's user namespace")
        for clk, secs, nsecs in offsets:
            if secs > KTIME_SEC_MAX or secs < -KTIME_SEC_MAX:
                raise KernelError(ERANGE, f"offset {secs}s out of range")
            now = monotonic_now if clk == CLOCK_MONOTONIC else boottime_now
            total = now + secs * NSEC_PER_SEC + nsecs
            if total < 0 or total // NSEC_PER_SEC > KTIME_SEC_MAX // 2:
                raise KernelError(ERANGE, "the clock would be negative or overflow in the namespace")
        if self.frozen_offsets:
            raise KernelError(EACCES, "offsets are frozen once a process has entered the namespace")
        for clk, secs, nsecs in offsets:
            if clk == CLOCK_MONOTONIC:
                self.monotonic = (secs, nsecs)
            else:
                self.boottime = (secs, nsecs)


def initial_time_ns(ctx: NsContext, user_ns: UserNamespace) -> TimeNamespace:
    ns = TimeNamespace(ctx, NS_TYPES["time"].init_ino, user_ns)
    ns.frozen_offsets = True
    return ns


def create_time_ns(user_ns: UserNamespace, old: TimeNamespace) -> TimeNamespace:
    """CLONE_NEWTIME (clone_time_ns): a new namespace starting with the old one's offsets."""
    return TimeNamespace(
        old.ctx, old.ctx.alloc_ino(), user_ns, monotonic=old.monotonic, boottime=old.boottime
    )
