"""Wait queues: how a kernel subsystem says "this would block" without blocking Python.

An operation that would sleep in Linux raises :class:`WouldBlock` carrying the queue to sleep
on; the kernel core parks the task there and restarts the system call when the queue is woken
(as Linux restarts an interrupted or woken syscall). Waiters are one-shot callbacks.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs


@attrs.define(eq=False)
class WaitQueue:
    """A list of one-shot wake-up callbacks (include/linux/wait.h, wait_queue_head)."""

    _waiters: list[Callable[[], object]] = attrs.field(factory=list)

    def add(self, callback: Callable[[], object]) -> None:
        self._waiters.append(callback)

    def remove(self, callback: Callable[[], object]) -> None:
        if callback in self._waiters:
            self._waiters.remove(callback)

    def wake_all(self) -> None:
        """Call every waiter once, in the order they started waiting; they must re-queue to wait again."""
        waiters, self._waiters = self._waiters, []
        for cb in waiters:
            cb()

    def __len__(self) -> int:
        return len(self._waiters)


class WouldBlock(Exception):  # noqa: N818 - the name says what happened, as EWOULDBLOCK does
    """The operation must sleep on ``queue`` and be retried when it is woken."""

    def __init__(self, queue: WaitQueue) -> None:
        super().__init__("operation would block")
        self.queue = queue
