"""The syscall and process observer hooks, fed by a real kernel."""

from __future__ import annotations

import virtlevels
from virtlevels import World
from virtlevels.kernel import scripted as sc
from virtlevels.kernel.kernel import Kernel
from virtlevels.kernel.syscalls import numbers as nr


class Watcher:
    def __init__(self) -> None:
        self.syscalls: list[tuple[int, int, int]] = []
        self.events: list[tuple[int, str]] = []

    @virtlevels.hookimpl
    def virtlevels_on_syscall(self, pid: int, nr: int, result: int) -> None:
        self.syscalls.append((pid, nr, result))

    @virtlevels.hookimpl
    def virtlevels_on_process(self, pid: int, event: str) -> None:
        self.events.append((pid, event))


def test_kernel_reports_syscalls_and_process_lifecycle() -> None:
    world = World(0, entry_points=False)
    watcher = Watcher()
    world.register_plugin(watcher, "watcher")  # before the kernel binds its observers
    kernel = Kernel(world)

    def prog():
        yield sc.getpid()
        return 0

    task = kernel.spawn(prog)
    kernel.run()
    pid = task.process.host_pid
    assert (pid, nr.getpid, pid) in watcher.syscalls
    assert (pid, "created") in watcher.events and (pid, "exited") in watcher.events
    assert watcher.events.index((pid, "created")) < watcher.events.index((pid, "exited"))
