"""The cpu controller (cgroup-v2.rst "CPU"; kernel/sched/fair.c CFS bandwidth control).

cpu.weight is a share for the scheduler to read. cpu.max is bandwidth: a cgroup may run
``quota`` ns per ``period``; once the runtime of the current period is used up the cgroup is
*throttled* until the next period refills it. Throttling is hierarchical: a cgroup cannot run
while any ancestor is throttled.

Model (documented simplifications of fair.c):
- one runtime pool per cgroup (Linux has a global pool plus per-CPU slices): a charge that
  overruns leaves a deficit, paid from the next period (as Linux's distribute_cfs_runtime does);
- period boundaries are multiples of the period since time 0 (Linux forwards its period hrtimer
  from its previous expiry, which starts at 0);
- the period timer runs while the cgroup is active: the first period end without activity marks
  it idle, the next one stops it (both are counted in ``nr_periods``, as in Linux);
- ``nr_throttled`` counts periods that ended throttled; ``throttled_usec`` sums the time from
  throttling to the refill that ends it (once per cgroup, as on one CPU).
The scheduler calls :func:`charge_cpu` after running a task, asks :func:`cpu_runnable` before
picking one, and sleeps a throttled cgroup until :func:`cpu_next_unthrottle`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from virtlevels.kernel.cgroup.parse import kstrto
from virtlevels.kernel.errno import EINVAL, ERANGE, KernelError

if TYPE_CHECKING:
    from virtlevels.kernel.cgroup.core import Cgroup

NSEC_PER_USEC = 1000
DEFAULT_PERIOD_NS = 100_000_000  # 100 ms (default_cfs_period)
MIN_CFS_QUOTA_PERIOD_NS = 1_000_000  # 1 ms (min_cfs_quota_period)
MAX_CFS_QUOTA_PERIOD_NS = 1_000_000_000  # 1 s (max_cfs_quota_period)
MAX_CFS_RUNTIME_NS = ((1 << 44) - 1) * NSEC_PER_USEC  # max_cfs_runtime
CGROUP_WEIGHT_MIN, CGROUP_WEIGHT_DFL, CGROUP_WEIGHT_MAX = 1, 100, 10000


@attrs.define
class CpuState:
    weight: int = CGROUP_WEIGHT_DFL
    quota: int | None = None  # ns per period; None = "max"
    period: int = DEFAULT_PERIOD_NS
    usage_ns: int = 0  # hierarchical, kept on every cgroup
    user_ns: int = 0
    system_ns: int = 0
    runtime: int = 0  # what is left of this period's quota (negative = deficit)
    throttled: bool = False
    throttled_since: int = 0
    nr_periods: int = 0
    nr_throttled: int = 0
    throttled_ns: int = 0
    timer_active: bool = False
    idle: bool = False
    next_period: int = 0
    timer_scheduled_for: int | None = None

    def reset_config(self) -> None:
        usage = (self.usage_ns, self.user_ns, self.system_ns)
        self.__init__()  # type: ignore[misc]
        self.usage_ns, self.user_ns, self.system_ns = usage


def _now(cg: Cgroup, now: int | None) -> int:
    return cg.hierarchy.clock() if now is None else now


def _bandwidth(cg: Cgroup) -> list[Cgroup]:
    """This cgroup and its ancestors that have a cpu.max quota."""
    return [a for a in cg.ancestors() if a.cpu.quota is not None and a.has("cpu")]


def _advance(cg: Cgroup, now: int) -> None:
    """Run the period timer of ``cg`` up to ``now`` (do_sched_cfs_period_timer, once per period)."""
    st = cg.cpu
    unthrottled = False
    while st.timer_active and st.next_period <= now:
        t = st.next_period
        st.nr_periods += 1
        throttled = st.throttled
        if st.quota is not None:
            st.runtime = min(st.runtime, 0) + st.quota
        else:
            st.runtime = 0
        if not throttled:
            if st.idle:
                st.timer_active = False  # a whole period without activity: stop the timer
            else:
                st.idle = True
        else:
            st.nr_throttled += 1
            if st.quota is None or st.runtime > 0:
                st.throttled = False
                st.throttled_ns += t - st.throttled_since
                unthrottled = True
            st.idle = False
        st.next_period = t + st.period
    if unthrottled and cg.hierarchy.on_unthrottle is not None:
        cg.hierarchy.on_unthrottle(cg)


def advance_all(cg: Cgroup, now: int | None = None) -> None:
    t = _now(cg, now)
    for a in cg.ancestors():
        _advance(a, t)


def _arm_timer(cg: Cgroup, at: int) -> None:
    h = cg.hierarchy
    st = cg.cpu
    if h.schedule is None or st.timer_scheduled_for == at:
        return
    st.timer_scheduled_for = at

    def fire() -> None:
        st.timer_scheduled_for = None
        now = h.clock()
        _advance(cg, max(now, at))
        if st.throttled and st.timer_active:
            _arm_timer(cg, st.next_period)

    h.schedule(max(0, at - h.clock()), fire)


def charge_cpu(cg: Cgroup, ns: int, user: bool, now: int | None = None) -> None:
    """Account ``ns`` of CPU time (user or system) that a task of ``cg`` just ran."""
    t = _now(cg, now)
    for a in cg.ancestors():
        _advance(a, t)
        st = a.cpu
        st.usage_ns += ns
        if user:
            st.user_ns += ns
        else:
            st.system_ns += ns
        if st.quota is None or not a.has("cpu"):
            continue
        if not st.timer_active:
            # start_cfs_bandwidth: the period timer resumes on the next period boundary.
            st.timer_active = True
            st.next_period = (t // st.period + 1) * st.period
        st.idle = False
        st.runtime -= ns
        if st.runtime <= 0 and not st.throttled:
            st.throttled = True
            st.throttled_since = t
        if st.throttled:
            _arm_timer(a, st.next_period)


def cpu_runnable(cg: Cgroup, now: int | None = None) -> bool:
    """False while ``cg`` or an ancestor is throttled (or frozen)."""
    t = _now(cg, now)
    for a in cg.ancestors():
        _advance(a, t)
        if a.cpu.throttled or a.freeze:
            return False
    return True


def cpu_next_unthrottle(cg: Cgroup, now: int | None = None) -> int | None:
    """The earliest time a throttled ``cg`` can run again (its throttled ancestors' next
    refill), or None if it is not throttled."""
    t = _now(cg, now)
    times = []
    for a in cg.ancestors():
        _advance(a, t)
        if a.cpu.throttled:
            times.append(a.cpu.next_period)
    return max(times) if times else None


def cpu_runtime_left(cg: Cgroup, now: int | None = None) -> int | None:
    """How long ``cg`` may run before some ancestor throttles (None: no bandwidth limit)."""
    t = _now(cg, now)
    left: int | None = None
    for a in _bandwidth(cg):
        _advance(a, t)
        r = max(a.cpu.runtime, 0)
        left = r if left is None else min(left, r)
    return left


# -- files ---------------------------------------------------------------------------------------
def read_weight(cg: Cgroup) -> str:
    return f"{cg.cpu.weight}\n"


def write_weight(cg: Cgroup, text: str) -> None:
    """cpu_weight_write_u64: an integer 1..10000 (ERANGE outside, EINVAL if not a number)."""
    v = kstrto(text.strip())
    if not CGROUP_WEIGHT_MIN <= v <= CGROUP_WEIGHT_MAX:
        raise KernelError(ERANGE, f"cpu.weight out of range: {v}")
    cg.cpu.weight = v


def read_max(cg: Cgroup) -> str:
    st = cg.cpu
    q = "max" if st.quota is None else str(st.quota // NSEC_PER_USEC)
    return f"{q} {st.period // NSEC_PER_USEC}\n"


def write_max(cg: Cgroup, text: str) -> None:
    """cpu_max_write: "$MAX [$PERIOD]" in microseconds, $MAX "max" or a number.

    EINVAL for malformed text, a period outside 1 ms..1 s or a quota under 1 ms (tg_set_cfs_bandwidth).
    """
    # cpu_period_quota_parse: sscanf(buf, "%19s %llu") - a period that does not parse is
    # left unchanged; the quota token is "max" or starts with digits.
    parts = text.split()
    if not parts:
        raise KernelError(EINVAL, "empty cpu.max")
    st = cg.cpu
    period = st.period
    if len(parts) >= 2:
        digits = _leading_digits(parts[1])
        if digits:
            period = int(digits) * NSEC_PER_USEC
    quota: int | None
    qdigits = _leading_digits(parts[0])
    if qdigits:
        quota = int(qdigits) * NSEC_PER_USEC
    elif parts[0] == "max":
        quota = None
    else:
        raise KernelError(EINVAL, f"bad quota {parts[0]!r}")
    if period < MIN_CFS_QUOTA_PERIOD_NS or period > MAX_CFS_QUOTA_PERIOD_NS:
        raise KernelError(EINVAL, "period must be between 1000 and 1000000 us")
    if quota is not None and (quota < MIN_CFS_QUOTA_PERIOD_NS or quota > MAX_CFS_RUNTIME_NS):
        raise KernelError(EINVAL, "quota must be at least 1000 us")
    now = cg.hierarchy.clock()
    _advance(cg, now)
    st.quota, st.period = quota, period
    # tg_set_cfs_bandwidth refills the runtime and unthrottles at once.
    st.runtime = quota or 0
    if st.throttled:
        st.throttled = False
        st.throttled_ns += now - st.throttled_since
        if cg.hierarchy.on_unthrottle is not None:
            cg.hierarchy.on_unthrottle(cg)
    if st.timer_active:
        st.next_period = (now // period + 1) * period
    if quota is None:
        st.timer_active = False


def _leading_digits(s: str) -> str:
    n = 0
    while n < len(s) and s[n].isdigit():
        n += 1
    return s[:n]


def read_stat(cg: Cgroup) -> str:
    """cpu.stat: the core's usage lines, plus bandwidth lines where the controller is enabled."""
    st = cg.cpu
    lines = [
        f"usage_usec {st.usage_ns // NSEC_PER_USEC}",
        f"user_usec {st.user_ns // NSEC_PER_USEC}",
        f"system_usec {st.system_ns // NSEC_PER_USEC}",
    ]
    if cg.has("cpu"):
        _advance(cg, cg.hierarchy.clock())
        lines += [
            f"nr_periods {st.nr_periods}",
            f"nr_throttled {st.nr_throttled}",
            f"throttled_usec {st.throttled_ns // NSEC_PER_USEC}",
            "nr_bursts 0",
            "burst_usec 0",
        ]
    return "\n".join(lines) + "\n"
