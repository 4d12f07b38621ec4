"""The cpu controller: cpu.weight, cpu.max bandwidth throttling over periods, cpu.stat counters."""

from __future__ import annotations

import pytest

from virtlevels.kernel.cgroup import (
    CgroupHierarchy,
    charge_cpu,
    cpu_next_unthrottle,
    cpu_runnable,
    cpu_runtime_left,
    read_file,
    write_file,
)  # fmt: skip
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EINVAL, ERANGE, KernelError

ROOT = Credentials.root()
MS = 1_000_000


def _errno(fn, *a, **kw):
    with pytest.raises(KernelError) as e:
        fn(*a, **kw)
    return e.value.errno


class Clock:
    """A fake simulated clock and event queue (time in ns)."""

    def __init__(self):
        self.now = 0
        self.events = []

    def __call__(self):
        return self.now

    def schedule(self, delay, cb):
        self.events.append((self.now + delay, len(self.events), cb))

    def run_until(self, t):
        while True:
            due = sorted(e for e in self.events if e[0] <= t)
            if not due:
                break
            ev = due[0]
            self.events.remove(ev)
            self.now = ev[0]
            ev[2]()
        self.now = t


def _stat(cg):
    return {k: int(v) for k, v in (line.split() for line in read_file(cg, "cpu.stat").splitlines())}


@pytest.fixture
def env():
    clk = Clock()
    h = CgroupHierarchy(clock=clk, schedule=clk.schedule)
    write_file(h.root, "cgroup.subtree_control", "+cpu", ROOT)
    return clk, h


def test_weight_and_max_formats(env):
    _clk, h = env
    a = h.mkdir(h.root, "a", ROOT)
    write_file(a, "cpu.weight", "250\n", ROOT)
    assert read_file(a, "cpu.weight") == "250\n"
    assert _errno(write_file, a, "cpu.weight", "0", ROOT) == ERANGE
    assert _errno(write_file, a, "cpu.weight", "10001", ROOT) == ERANGE
    assert _errno(write_file, a, "cpu.weight", "heavy", ROOT) == EINVAL
    write_file(a, "cpu.max", "50000 200000", ROOT)
    assert read_file(a, "cpu.max") == "50000 200000\n"
    write_file(a, "cpu.max", "20000", ROOT)  # period unchanged
    assert read_file(a, "cpu.max") == "20000 200000\n"
    write_file(a, "cpu.max", "max", ROOT)
    assert read_file(a, "cpu.max") == "max 200000\n"
    for bad in ("", "fast", "500 100000", "max 500", "max 2000000", "-5 100000"):
        assert _errno(write_file, a, "cpu.max", bad, ROOT) == EINVAL


def test_stat_lines(env):
    _clk, h = env
    a = h.mkdir(h.root, "a", ROOT)
    b = h.mkdir(a, "b", ROOT)  # no cpu controller here: only the core lines
    charge_cpu(b, 1500 * 1000, user=True)
    charge_cpu(b, 500 * 1000, user=False)
    assert read_file(b, "cpu.stat") == "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\n"
    assert list(_stat(a)) == [
        "usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec", "nr_bursts",
        "burst_usec",
    ]  # fmt: skip
    assert _stat(h.root)["usage_usec"] == 2000


def test_throttling_over_several_periods(env):
    clk, h = env
    a = h.mkdir(h.root, "a", ROOT)
    write_file(a, "cpu.max", "50000 100000", ROOT)  # 50 ms per 100 ms
    unthrottled = []
    h.on_unthrottle = unthrottled.append
    clk.now = 10 * MS
    charge_cpu(a, 30 * MS, user=True)
    assert cpu_runnable(a) and cpu_runtime_left(a) == 20 * MS
    clk.now = 40 * MS
    charge_cpu(a, 30 * MS, user=True)  # 60 ms used: throttled, 10 ms in deficit
    assert not cpu_runnable(a)
    assert cpu_next_unthrottle(a) == 100 * MS
    clk.run_until(100 * MS)  # the period timer refills 50 ms: 40 ms left
    assert unthrottled == [a] and cpu_runnable(a) and cpu_runtime_left(a) == 40 * MS
    s = _stat(a)
    assert (s["nr_periods"], s["nr_throttled"], s["throttled_usec"]) == (1, 1, 60_000)
    clk.now = 150 * MS
    charge_cpu(a, 100 * MS, user=False)  # deficit of 60 ms: two refills needed
    assert cpu_next_unthrottle(a) == 200 * MS
    clk.run_until(200 * MS)
    assert not cpu_runnable(a) and cpu_next_unthrottle(a) == 300 * MS
    clk.run_until(300 * MS)
    assert cpu_runnable(a)
    s = _stat(a)
    assert (s["nr_periods"], s["nr_throttled"], s["throttled_usec"]) == (3, 3, 60_000 + 150_000)
    assert (s["usage_usec"], s["user_usec"], s["system_usec"]) == (160_000, 60_000, 100_000)
    # idle: the period timer marks the group idle at 400 ms and stops at 500 ms (both counted)
    clk.run_until(1000 * MS)
    assert _stat(a)["nr_periods"] == 5
    clk.now = 1010 * MS
    charge_cpu(a, 1 * MS, user=True)  # activity restarts the timer on the next boundary
    clk.run_until(1100 * MS)
    assert _stat(a)["nr_periods"] == 6


def test_ancestor_quota_throttles_children(env):
    clk, h = env
    a = h.mkdir(h.root, "a", ROOT)
    write_file(a, "cgroup.subtree_control", "+cpu", ROOT)
    b = h.mkdir(a, "b", ROOT)
    c = h.mkdir(a, "c", ROOT)
    write_file(a, "cpu.max", "20000 100000", ROOT)
    clk.now = 1 * MS
    charge_cpu(b, 25 * MS, user=True)
    assert not cpu_runnable(b) and not cpu_runnable(c)  # the sibling shares the parent's quota
    assert _stat(b)["nr_throttled"] == 0  # b itself has no quota
    clk.run_until(100 * MS)
    assert cpu_runnable(c)
    assert _stat(a)["nr_throttled"] == 1


def test_setting_cpu_max_unthrottles_and_works_without_schedule():
    t = [0]
    h = CgroupHierarchy(clock=lambda: t[0])
    write_file(h.root, "cgroup.subtree_control", "+cpu", ROOT)
    a = h.mkdir(h.root, "a", ROOT)
    write_file(a, "cpu.max", "10000 100000", ROOT)
    charge_cpu(a, 20 * MS, user=True)
    assert not cpu_runnable(a)
    t[0] = 250 * MS  # no event queue: periods are caught up lazily
    assert cpu_runnable(a)
    charge_cpu(a, 30 * MS, user=True)
    assert not cpu_runnable(a)
    write_file(a, "cpu.max", "max", ROOT)
    assert cpu_runnable(a) and cpu_runtime_left(a) is None


def test_determinism():
    def run():
        clk = Clock()
        h = CgroupHierarchy(clock=clk, schedule=clk.schedule)
        write_file(h.root, "cgroup.subtree_control", "+cpu", ROOT)
        a = h.mkdir(h.root, "a", ROOT)
        write_file(a, "cpu.max", "30000 50000", ROOT)
        for i in range(200):
            clk.run_until(clk.now + 7 * MS)
            if cpu_runnable(a):
                charge_cpu(a, (3 + i % 5) * MS, user=bool(i % 2))
        return read_file(a, "cpu.stat")

    first = run()
    assert first == run() and "nr_throttled 0" not in first
