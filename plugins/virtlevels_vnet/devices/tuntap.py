"""TUN and TAP devices (Documentation/networking/tuntap.rst): the kernel side is an interface,
the user side a queue of frames (TAP, Ethernet) or IP packets (TUN) that a program reads and
writes. A hosted VMM's NIC back end is a TAP: it reads what the host sends the guest and writes
what the guest sends."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import attrs

from virtlevels.kernel.wait import WaitQueue
from virtlevels_vnet.devices.base import NetDev


@attrs.define(eq=False)
class TapDev(NetDev):
    kind: str = "tap"
    #: Frames the kernel sent, waiting for the user side (bounded like tx_queue_len).
    queue: deque[bytes] = attrs.field(factory=deque)
    qlen: int = 500
    readers: WaitQueue = attrs.field(factory=WaitQueue)
    #: If set, frames go to this callback instead of the queue (a VMM's back end).
    on_frame: Callable[[bytes], None] | None = None

    def _out(self, frame: bytes) -> None:
        if self.on_frame is not None:
            self.on_frame(frame)
            return
        if len(self.queue) >= self.qlen:
            self.tx_dropped += 1
            return
        self.queue.append(frame)
        self.readers.wake_all()

    def read(self) -> bytes | None:
        """The user side reads one frame (None when empty)."""
        return self.queue.popleft() if self.queue else None

    def write(self, frame: bytes) -> None:
        """The user side writes one frame: it arrives at the kernel as if from a wire."""
        self.deliver(bytes(frame))


@attrs.define(eq=False)
class TunDev(TapDev):
    kind: str = "tun"
    l3: bool = True
