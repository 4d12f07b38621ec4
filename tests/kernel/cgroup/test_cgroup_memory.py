"""The memory controller: charging, memory.high throttling/reclaim, memory.max OOM, files."""

from __future__ import annotations

import pytest

from virtlevels.kernel.cgroup import (
    PAGE_SIZE,
    CgroupHierarchy,
    charge_pages,
    count_fault,
    read_file,
    uncharge_pages,
    uncharge_task,
    write_file,
)  # fmt: skip
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EAGAIN, EINVAL, KernelError

ROOT = Credentials.root()


def _errno(fn, *a, **kw):
    with pytest.raises(KernelError) as e:
        fn(*a, **kw)
    return e.value.errno


def _events(cg, local=False):
    text = read_file(cg, "memory.events.local" if local else "memory.events")
    return {k: int(v) for k, v in (line.split() for line in text.splitlines())}


def _stat(cg):
    return {k: int(v) for k, v in (line.split() for line in read_file(cg, "memory.stat").splitlines())}


@pytest.fixture
def h():
    h = CgroupHierarchy()
    write_file(h.root, "cgroup.subtree_control", "+memory", ROOT)
    return h


def test_limit_file_formats(h):
    a = h.mkdir(h.root, "a", ROOT)
    for name in ("memory.max", "memory.high", "memory.swap.max"):
        assert read_file(a, name) == "max\n"
    assert read_file(a, "memory.low") == "0\n" and read_file(a, "memory.min") == "0\n"
    write_file(a, "memory.max", "64M\n", ROOT)
    assert read_file(a, "memory.max") == "67108864\n"
    write_file(a, "memory.max", "10000", ROOT)  # rounded down to whole pages
    assert read_file(a, "memory.max") == "8192\n"
    write_file(a, "memory.high", "1g", ROOT)
    assert read_file(a, "memory.high") == str(1 << 30) + "\n"
    write_file(a, "memory.low", "max", ROOT)
    assert read_file(a, "memory.low") == "max\n"
    write_file(a, "memory.swap.max", "0", ROOT)
    assert read_file(a, "memory.swap.max") == "0\n" and read_file(a, "memory.swap.current") == "0\n"
    for bad in ("-1", "12Q", "abc", ""):
        assert _errno(write_file, a, "memory.max", bad, ROOT) == EINVAL
    assert _errno(write_file, a, "memory.oom.group", "2", ROOT) == EINVAL
    assert _events(a) == {"low": 0, "high": 0, "max": 0, "oom": 0, "oom_kill": 0, "oom_group_kill": 0}


def test_charges_are_hierarchical_with_peak_and_stat(h):
    a = h.mkdir(h.root, "a", ROOT)
    write_file(a, "cgroup.subtree_control", "+memory", ROOT)
    b = h.mkdir(a, "b", ROOT)
    h.attach_task("t", b, 1)
    assert charge_pages(b, 10, "anon", "t").ok
    assert charge_pages(b, 5, "file", "t").ok
    assert charge_pages(b, 2, "shmem", "t").ok
    count_fault(b)
    assert read_file(a, "memory.current") == f"{17 * PAGE_SIZE}\n"
    uncharge_pages(b, 4, "anon", "t")
    assert read_file(b, "memory.current") == f"{13 * PAGE_SIZE}\n"
    assert read_file(b, "memory.peak") == f"{17 * PAGE_SIZE}\n"
    s = _stat(a)
    assert (s["anon"], s["file"], s["shmem"], s["pgfault"]) == (
        6 * PAGE_SIZE,
        7 * PAGE_SIZE,
        2 * PAGE_SIZE,
        1,
    )
    assert uncharge_task(h, "t") == 13
    assert read_file(a, "memory.current") == "0\n"


def test_over_high_reclaims_cache_then_throttles(h):
    a = h.mkdir(h.root, "a", ROOT)
    h.attach_task("t", a, 1)
    write_file(a, "memory.high", str(100 * PAGE_SIZE), ROOT)
    charge_pages(a, 40, "file", "t")
    r = charge_pages(a, 80, "anon", "t")  # 120 > 100: reclaim 80 of cache at most -> 40 taken
    assert r.ok and r.reclaimed == 40 and r.delay_ns == 0  # back to 80 pages: no penalty
    assert _events(a)["high"] == 1
    assert read_file(a, "memory.current") == f"{80 * PAGE_SIZE}\n"
    r = charge_pages(a, 60, "anon", "t")  # 140 pages of anon, nothing to reclaim
    assert r.ok and r.reclaimed == 0
    # calculate_high_delay: overage = (40 << 20) // 100; (ov^2 * 1e9 >> 34) * 60 / 64, capped at 2 s
    ov = (40 << 20) // 100
    assert r.delay_ns == min(((ov * ov * 10**9) >> 34) * 60 // 64, 2 * 10**9)
    assert _events(a)["high"] == 2
    assert _stat(a)["pgsteal"] == 40


def test_over_max_kills_the_largest_task(h):
    a = h.mkdir(h.root, "a", ROOT)
    write_file(a, "cgroup.subtree_control", "+memory", ROOT)
    b = h.mkdir(a, "b", ROOT)
    c = h.mkdir(a, "c", ROOT)
    for t, cg, pid in (("small", b, 10), ("big", c, 11), ("tie", b, 12)):
        h.attach_task(t, cg, pid)
    write_file(a, "memory.max", str(100 * PAGE_SIZE), ROOT)
    assert charge_pages(b, 20, "anon", "small").ok
    assert charge_pages(c, 50, "anon", "big").ok
    assert charge_pages(b, 10, "file", "tie").ok
    r = charge_pages(b, 30, "anon", "small")  # 110 > 100: reclaim the 10 cache pages, fits
    assert r.ok and r.reclaimed == 10
    r = charge_pages(b, 5, "anon", "tie")
    assert not r.ok and r.victims == ("big",) and r.oom_cgroup is a
    ev = _events(a)
    assert (ev["max"], ev["oom"], ev["oom_kill"]) == (2, 1, 1)
    assert _events(c)["oom_kill"] == 1 and _events(c, local=True)["oom_kill"] == 1
    assert _events(a, local=True)["oom_kill"] == 0 and _events(a, local=True)["oom"] == 1
    # the kernel core kills the victim, frees its pages and retries
    h.release_task("big")
    uncharge_task(h, "big")
    assert charge_pages(b, 5, "anon", "tie").ok


def test_oom_ties_go_to_the_highest_pid(h):
    a = h.mkdir(h.root, "a", ROOT)
    for t, pid in (("p1", 5), ("p2", 9), ("p3", 7)):
        h.attach_task(t, a, pid)
        charge_pages(a, 10, "anon", t)
    write_file(a, "memory.max", str(30 * PAGE_SIZE), ROOT)
    assert charge_pages(a, 1, "anon", "p1").victims == ("p2",)


def test_oom_group_kills_the_whole_cgroup(h):
    a = h.mkdir(h.root, "a", ROOT)
    h.attach_task("x", a, 1)
    h.attach_task("y", a, 2)
    charge_pages(a, 10, "anon", "x")
    write_file(a, "memory.oom.group", "1", ROOT)
    write_file(a, "memory.max", str(10 * PAGE_SIZE), ROOT)
    r = charge_pages(a, 1, "anon", "y")
    assert r.victims == ("x", "y")
    ev = _events(a)
    assert (ev["oom_kill"], ev["oom_group_kill"]) == (2, 1)


def test_lowering_max_below_usage_reclaims_then_kills(h):
    a = h.mkdir(h.root, "a", ROOT)
    h.attach_task("t", a, 1)
    charge_pages(a, 30, "anon", "t")
    charge_pages(a, 30, "file", "t")

    def kill(task):
        h.release_task(task)
        uncharge_task(h, task)

    h.on_kill = kill
    write_file(a, "memory.max", str(40 * PAGE_SIZE), ROOT)  # reclaim 20 of cache: fits, no kill
    assert read_file(a, "memory.current") == f"{40 * PAGE_SIZE}\n" and _events(a)["oom_kill"] == 0
    write_file(a, "memory.max", str(10 * PAGE_SIZE), ROOT)  # cache gone, anon stays: OOM kill
    assert _events(a)["oom_kill"] == 1 and read_file(a, "memory.current") == "0\n"
    assert read_file(a, "cgroup.procs") == ""


def test_memory_reclaim_file(h):
    a = h.mkdir(h.root, "a", ROOT)
    charge_pages(a, 8, "file")
    charge_pages(a, 8, "anon")
    write_file(a, "memory.reclaim", str(4 * PAGE_SIZE), ROOT)
    assert read_file(a, "memory.current") == f"{12 * PAGE_SIZE}\n"
    assert _errno(write_file, a, "memory.reclaim", str(8 * PAGE_SIZE), ROOT) == EAGAIN


def test_charges_survive_migration_and_rmdir_reparents(h):
    a = h.mkdir(h.root, "a", ROOT)
    b = h.mkdir(h.root, "b", ROOT)
    h.attach_task("t", a, 1)
    charge_pages(a, 10, "anon", "t")
    h.migrate("t", b)
    assert read_file(a, "memory.current") == f"{10 * PAGE_SIZE}\n"  # memory is not moved (cgroup-v2.rst)
    assert read_file(b, "memory.current") == "0\n"
    h.migrate("t", h.root)
    h.rmdir(a)
    assert uncharge_task(h, "t") == 10
    assert h.root.mem.usage == 0


def test_determinism():
    def run():
        h = CgroupHierarchy()
        write_file(h.root, "cgroup.subtree_control", "+memory", ROOT)
        a = h.mkdir(h.root, "a", ROOT)
        write_file(a, "memory.high", str(50 * PAGE_SIZE), ROOT)
        write_file(a, "memory.max", str(80 * PAGE_SIZE), ROOT)
        out = []
        for i in range(6):
            h.attach_task(f"t{i}", a, i + 1)
        for i in range(40):
            r = charge_pages(a, 3 + i % 4, ("anon", "file")[i % 2], f"t{i % 6}")
            out.append((r.ok, r.delay_ns, r.reclaimed, r.victims, r.oom_cgroup and r.oom_cgroup.path))
        return out, read_file(a, "memory.events"), read_file(a, "memory.stat")

    first = run()
    assert first == run()
    assert any(not ok for ok, *_ in first[0]) and any(d for _ok, d, *_ in first[0])  # both limits were hit
