"""The CPU loop's clock: one event chain per CPU, every system call advances time by its cost."""

from __future__ import annotations

from typing import Any

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.kernel import Kernel


def test_syscalls_in_one_process_take_their_cost() -> None:
    k = Kernel(ncpus=1)
    n = 40

    def prog() -> Any:
        for _ in range(n):
            yield sc.getpid()
        return 0

    start = k.world.now
    k.spawn(prog)
    k.run()
    assert k.world.now - start >= n * k.c_syscall


def test_forks_serialize_on_one_cpu() -> None:
    """A wake-up during a step (fork's _wake_new, wait4's wake) must not start a second chain."""
    k = Kernel(ncpus=1)
    k.tracing = True

    def child() -> Any:
        yield sc.getpid()
        yield sc.getpid()
        return 0

    def parent() -> Any:
        for _ in range(3):
            yield sc.fork(child)
        for _ in range(3):
            yield sc.wait4()
        return 0

    k.spawn(parent)
    k.run()
    times = [t for t, _tid, _name, _res in k.trace]
    forks = [t for t, _tid, name, _res in k.trace if name == "clone"]
    assert len(forks) == 3 and len(set(forks)) == 3  # not all at t=0
    # One CPU runs one step at a time: no two system calls at the same instant, and the
    # steps are at least a syscall's cost apart.
    assert len(times) == len(set(times))
    assert all(b - a >= k.c_syscall for a, b in zip(times, times[1:], strict=False))
    assert k.world.now >= 3 * (k.c_syscall + k.c_fork) + 6 * k.c_syscall


def test_one_pending_event_per_cpu() -> None:
    k = Kernel(ncpus=2)

    def child() -> Any:
        yield sc.getpid()
        return 0

    def parent() -> Any:
        for _ in range(5):
            yield sc.fork(child)
            assert len(k.world.events) <= len(k.sched.cpus)
        for _ in range(5):
            yield sc.wait4()
        return 0

    k.spawn(parent)
    k.run()
    assert k.exit_status
