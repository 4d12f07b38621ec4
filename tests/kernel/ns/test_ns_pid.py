"""PID namespaces: translation up and down the hierarchy, init semantics, nesting limit."""

from __future__ import annotations

import pytest

from virtlevels.kernel.errno import ENOMEM, ENOSPC, KernelError
from virtlevels.kernel.ns import NsContext, create_initial
from virtlevels.kernel.ns.pid import (
    MAX_PID_NS_LEVEL,
    create_pid_ns,
    free_pid,
    init_exited,
    orphan_reaper,
    reaper_for,
)


def _setup():
    ctx = NsContext()
    creds, proxy = create_initial(ctx)
    return ctx, creds, proxy


def test_first_process_in_new_namespace_is_pid_1_and_parent_sees_host_pid():
    _ctx, _creds, p = _setup()
    host = p.pid_for_children
    init = host.alloc_pid("init")
    shell = host.alloc_pid("shell")
    assert (init.nr, shell.nr) == (1, 2)
    child_ns = create_pid_ns(p.user, host)
    c1 = child_ns.alloc_pid("c1")
    c2 = child_ns.alloc_pid("c2")
    assert c1.nr == 1 and c2.nr == 2  # inside view
    assert c1.nr_in(host) == 3 and c2.nr_in(host) == 4  # host view
    assert c1.nspid_from(host) == [3, 1]
    assert host.find_task(3) == "c1"
    assert child_ns.find_task(1) == "c1"


def test_processes_cannot_see_pids_outside_their_namespace():
    _ctx, _creds, p = _setup()
    host = p.pid_for_children
    h1 = host.alloc_pid("host-init")
    host.alloc_pid("host-daemon")
    ns = create_pid_ns(p.user, host)
    inner = ns.alloc_pid("inner")
    assert ns.find_task(1) == "inner"  # pid 1 inside is the namespace's own init
    assert ns.find_task(2) is None  # the host's pid 2 is invisible inside
    assert ns.find_pid(99) is None
    # getppid of a process whose parent is outside: 0, as pid_nr_ns says
    assert h1.nr_in(ns) == 0
    assert inner.nspid_from(ns) == [1]
    assert h1.nspid_from(ns) == []


def test_three_levels_translate_at_every_boundary():
    _ctx, _creds, p = _setup()
    l0 = p.pid_for_children
    for i in range(5):
        l0.alloc_pid(f"h{i}")
    l1 = create_pid_ns(p.user, l0)
    l1.alloc_pid("a")
    l2 = create_pid_ns(p.user, l1)
    x = l2.alloc_pid("x")
    assert [x.nr_in(n) for n in (l0, l1, l2)] == [7, 2, 1]
    assert l0.is_ancestor_of(l2) and not l2.is_ancestor_of(l0)


def test_reaper_orphans_and_init_death():
    _ctx, _creds, p = _setup()
    host = p.pid_for_children
    host.alloc_pid("sys-init")
    ns = create_pid_ns(p.user, host)
    init = ns.alloc_pid("cinit")
    mid = ns.alloc_pid("mid")
    ns.alloc_pid("leaf")
    nested = create_pid_ns(p.user, ns)
    nested.alloc_pid("deep")
    assert reaper_for(ns) == "cinit"
    # "mid" dies: its children go to the namespace's init
    assert orphan_reaper(mid, "mid") == "cinit"
    # init dies: every other task in the namespace and below must be killed
    assert orphan_reaper(init, "cinit") is None
    assert init_exited(ns) == ["mid", "leaf", "deep"]
    with pytest.raises(KernelError) as e:
        ns.alloc_pid("late")
    assert e.value.errno == ENOMEM


def test_pid_numbers_are_freed_and_namespace_dropped():
    ctx, _creds, p = _setup()
    host = p.pid_for_children
    ns = create_pid_ns(p.user, host)
    pid = ns.alloc_pid("t")
    ino = ns.inode
    ns.put()  # creator's reference; the Pid still holds the namespace
    assert ctx.by_inode(ino) is ns
    host_nr = pid.nr_in(host)
    free_pid(pid)
    assert host.find_pid(host_nr) is None
    assert ctx.by_inode(ino) is None and ns.dead


def test_pid_allocation_is_cyclic_and_deterministic():
    _ctx, _creds, p = _setup()
    host = p.pid_for_children
    host.alloc_pid("init")
    b = host.alloc_pid("b")
    free_pid(b)
    c = host.alloc_pid("c")
    assert c.nr == 3  # no immediate reuse of 2: allocation is cyclic, as Linux's
    assert host.last_pid == 3


def test_nesting_limit_is_32_levels():
    _ctx, _creds, p = _setup()
    ns = p.pid_for_children
    for _ in range(MAX_PID_NS_LEVEL):
        ns = create_pid_ns(p.user, ns)
    assert ns.level == 32
    with pytest.raises(KernelError) as e:
        create_pid_ns(p.user, ns)
    assert e.value.errno == ENOSPC


def test_pid_allocation_wraps_above_reserved_and_fails_when_full():
    _ctx, _creds, p = _setup()
    host = p.pid_for_children
    host.pid_max = 310
    pids = [host.alloc_pid(i) for i in range(309)]  # 1..309: the namespace is full
    assert pids[-1].nr == 309
    with pytest.raises(KernelError):
        host.alloc_pid("none left")
    free_pid(pids[4])  # 5: below RESERVED_PIDS, not reused after the wrap
    free_pid(pids[302])  # 303
    assert host.alloc_pid("wrapped").nr == 303
    with pytest.raises(KernelError):
        host.alloc_pid("still full")


def test_pid_allocation_does_not_scan_the_whole_range():
    """alloc_pid is lazy (a cursor, as idr_alloc_cyclic): no per-fork allocation over pid_max."""
    import tracemalloc

    _ctx, _creds, p = _setup()
    host = p.pid_for_children
    host.pid_max = 1 << 22  # PID_MAX_LIMIT on 64-bit Linux
    tracemalloc.start()
    try:
        for i in range(5):
            host.alloc_pid(i)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
