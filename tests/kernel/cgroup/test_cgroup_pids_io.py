"""The pids and io controllers."""

from __future__ import annotations

import pytest

from virtlevels.kernel.cgroup import (
    CgroupHierarchy,
    cancel_charge_pid,
    charge_io,
    io_weight,
    read_file,
    try_charge_pid,
    write_file,
)  # fmt: skip
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EAGAIN, EINVAL, ENODEV, ERANGE, KernelError

ROOT = Credentials.root()
SEC = 1_000_000_000


def _errno(fn, *a, **kw):
    with pytest.raises(KernelError) as e:
        fn(*a, **kw)
    return e.value.errno


@pytest.fixture
def h():
    h = CgroupHierarchy(block_devices=[(8, 0), (8, 16)])
    write_file(h.root, "cgroup.subtree_control", "+pids +io", ROOT)
    return h


def _fork(h, cg, name, pid):
    try_charge_pid(cg)
    h.attach_task(name, cg, pid, pid_charged=True)


def test_pids_max_format(h):
    a = h.mkdir(h.root, "a", ROOT)
    assert read_file(a, "pids.max") == "max\n" and read_file(a, "pids.events") == "max 0\n"
    write_file(a, "pids.max", "10\n", ROOT)
    assert read_file(a, "pids.max") == "10\n"
    write_file(a, "pids.max", "0x20", ROOT)  # kstrtoll base 0
    assert read_file(a, "pids.max") == "32\n"
    for bad in ("-1", "32769", "lots", ""):
        assert _errno(write_file, a, "pids.max", bad, ROOT) == EINVAL


def test_fork_beyond_pids_max_fails_with_eagain_and_counts(h):
    a = h.mkdir(h.root, "a", ROOT)
    write_file(a, "cgroup.subtree_control", "+pids", ROOT)
    b = h.mkdir(a, "b", ROOT)
    write_file(a, "pids.max", "3", ROOT)
    for i in range(3):
        _fork(h, b, f"t{i}", i + 1)
    assert read_file(a, "pids.current") == "3\n" and read_file(b, "pids.current") == "3\n"
    assert _errno(try_charge_pid, b) == EAGAIN
    assert _errno(try_charge_pid, b) == EAGAIN
    assert read_file(a, "pids.events") == "max 2\n"  # counted where the limit was hit
    assert read_file(a, "pids.events.local") == "max 2\n"
    assert read_file(b, "pids.events") == "max 0\n"
    assert read_file(a, "pids.current") == "3\n"  # nothing charged by the failures
    h.release_task("t0")  # reaped: the pid is uncharged
    _fork(h, b, "t3", 4)
    assert read_file(a, "pids.peak") == "3\n"


def test_zombies_count_until_reaped_and_cancel(h):
    a = h.mkdir(h.root, "a", ROOT)
    write_file(a, "pids.max", "1", ROOT)
    _fork(h, a, "t", 1)
    h.exit_task("t")
    assert read_file(a, "cgroup.procs") == "" and read_file(a, "pids.current") == "1\n"
    assert _errno(try_charge_pid, a) == EAGAIN
    h.release_task("t")
    try_charge_pid(a)
    cancel_charge_pid(a)  # the fork failed later
    assert read_file(a, "pids.current") == "0\n"


def test_migration_moves_the_pid_charge_even_past_the_limit(h):
    a = h.mkdir(h.root, "a", ROOT)
    b = h.mkdir(h.root, "b", ROOT)
    write_file(b, "pids.max", "0", ROOT)
    _fork(h, a, "t", 1)
    write_file(b, "cgroup.procs", "1", ROOT)
    assert read_file(b, "pids.current") == "1\n" and read_file(a, "pids.current") == "0\n"


def test_io_files(h):
    a = h.mkdir(h.root, "a", ROOT)
    assert read_file(a, "io.max") == "" and read_file(a, "io.weight") == "default 100\n"
    write_file(a, "io.max", "8:16 rbps=2097152 wiops=120", ROOT)
    assert read_file(a, "io.max") == "8:16 rbps=2097152 wbps=max riops=max wiops=120\n"
    write_file(a, "io.max", "8:16 wiops=max", ROOT)
    assert read_file(a, "io.max") == "8:16 rbps=2097152 wbps=max riops=max wiops=max\n"
    write_file(a, "io.max", "8:16 rbps=max", ROOT)
    assert read_file(a, "io.max") == ""
    assert _errno(write_file, a, "io.max", "9:0 rbps=1", ROOT) == ENODEV
    assert _errno(write_file, a, "io.max", "8:16 rbps=0", ROOT) == ERANGE
    assert _errno(write_file, a, "io.max", "8:16 xbps=5", ROOT) == EINVAL
    assert _errno(write_file, a, "io.max", "8:16 rbps=fast", ROOT) == EINVAL
    assert _errno(write_file, a, "io.max", "sda rbps=5", ROOT) == EINVAL
    write_file(a, "io.weight", "default 200", ROOT)
    write_file(a, "io.weight", "8:0 50", ROOT)
    assert read_file(a, "io.weight") == "default 200\n8:0 50\n"
    assert io_weight(a, (8, 0)) == 50 and io_weight(a, (8, 16)) == 200
    write_file(a, "io.weight", "8:0 default", ROOT)
    assert read_file(a, "io.weight") == "default 200\n"
    assert _errno(write_file, a, "io.weight", "0", ROOT) == EINVAL


def test_io_max_delays_and_stat(h):
    t = [0]
    h.clock = lambda: t[0]
    a = h.mkdir(h.root, "a", ROOT)
    write_file(a, "io.max", "8:0 rbps=1048576 wiops=10", ROOT)
    assert charge_io(a, (8, 0), True, 1048576) == SEC  # 1 MiB at 1 MiB/s
    assert charge_io(a, (8, 0), True, 524288) == SEC + SEC // 2  # queued behind the first
    t[0] = 3 * SEC  # the bucket has drained
    assert charge_io(a, (8, 0), True, 4096) == -(-4096 * SEC // 1048576)
    assert [charge_io(a, (8, 0), False, 512, now=3 * SEC) for _ in range(3)] == [
        SEC // 10,
        2 * SEC // 10,
        3 * SEC // 10,
    ]
    assert charge_io(a, (8, 16), True, 10**9, now=3 * SEC) == 0  # another disk: unlimited
    assert read_file(a, "io.stat") == (
        "8:0 rbytes=1576960 wbytes=1536 rios=3 wios=3 dbytes=0 dios=0\n"
        "8:16 rbytes=1000000000 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"
    )
    assert read_file(h.root, "io.stat") == read_file(a, "io.stat")  # hierarchical


def test_io_limits_compose_up_the_tree(h):
    a = h.mkdir(h.root, "a", ROOT)
    write_file(a, "cgroup.subtree_control", "+io", ROOT)
    b = h.mkdir(a, "b", ROOT)
    write_file(a, "io.max", "8:0 wbps=1000", ROOT)
    write_file(b, "io.max", "8:0 wbps=2000", ROOT)
    assert charge_io(b, (8, 0), False, 1000, now=0) == SEC // 2 + SEC  # b's bucket, then a's
