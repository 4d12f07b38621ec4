"""Pipes and FIFOs (fs/pipe.c; pipe(7), fifo(7)).

A pipe is a byte buffer of 65536 bytes with counts of open read and write ends. Reading an empty
pipe with writers blocks (``WouldBlock``; EAGAIN with O_NONBLOCK); with no writers it is end of
file. Writing with no readers fails with EPIPE and the kernel sends SIGPIPE (the error carries
``sigpipe=True``). Writes of at most PIPE_BUF bytes are atomic.
"""

from __future__ import annotations

import attrs

from virtlevels.kernel.errno import EAGAIN, EPIPE, KernelError
from virtlevels.kernel.vfs.constants import PIPE_BUF, PIPE_DEF_BUFFERS_BYTES
from virtlevels.kernel.wait import WaitQueue, WouldBlock


class BrokenPipe(KernelError):
    """EPIPE from a write with no readers; the kernel core turns ``sigpipe`` into SIGPIPE."""

    sigpipe = True

    def __init__(self) -> None:
        super().__init__(EPIPE, "no readers on the pipe")


@attrs.define(eq=False)
class Pipe:
    capacity: int = PIPE_DEF_BUFFERS_BYTES
    buf: bytearray = attrs.field(factory=bytearray)
    readers: int = 0
    writers: int = 0
    #: Bumped on each writer open: a FIFO reader opened before any writer waits for the first one.
    w_counter: int = 0
    #: Readers sleep here for data or writers; writers for room or readers; FIFO opens for a peer.
    rq: WaitQueue = attrs.field(factory=WaitQueue)
    wq: WaitQueue = attrs.field(factory=WaitQueue)

    def open_end(self, read: bool, write: bool) -> None:
        if read:
            self.readers += 1
        if write:
            self.writers += 1
            self.w_counter += 1
        # fifo(7): opening one end wakes those waiting for a peer.
        self.rq.wake_all()
        self.wq.wake_all()

    def close_end(self, read: bool, write: bool) -> None:
        if read:
            self.readers -= 1
        if write:
            self.writers -= 1
        # Last writer gone: readers see EOF. Last reader gone: writers get EPIPE.
        self.rq.wake_all()
        self.wq.wake_all()

    def read(self, size: int, nonblock: bool, wait_first_writer: int | None = None) -> bytes:
        """Read up to ``size`` bytes. ``wait_first_writer`` is the w_counter seen when a blocking
        FIFO reader opened with no writer: until a writer comes, the reader waits instead of EOF."""
        if size == 0:
            return b""
        if not self.buf:
            waiting_for_open = wait_first_writer is not None and self.w_counter == wait_first_writer
            if self.writers == 0 and not waiting_for_open:
                return b""  # pipe(7): all write ends closed -> end of file
            if nonblock:
                raise KernelError(EAGAIN, "pipe empty")
            raise WouldBlock(self.rq)
        out = bytes(self.buf[:size])
        del self.buf[:size]
        self.wq.wake_all()
        return out

    def write(self, data: bytes, nonblock: bool) -> int:
        if self.readers == 0:
            raise BrokenPipe()
        n = len(data)
        if n == 0:
            return 0
        room = self.capacity - len(self.buf)
        # pipe(7) "PIPE_BUF": writes of <= PIPE_BUF bytes are atomic -- all or nothing.
        need = n if n <= PIPE_BUF else 1
        if room < need:
            if nonblock:
                raise KernelError(EAGAIN, "pipe full")
            raise WouldBlock(self.wq)
        # A larger blocking write stores what fits and returns the short count; Linux would keep
        # sleeping until all is written, which the retry model cannot resume mid-call.
        chunk = data[:room]
        self.buf += chunk
        self.rq.wake_all()
        return len(chunk)
