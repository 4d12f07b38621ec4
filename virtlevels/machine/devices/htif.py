"""HTIF ``tohost``/``fromhost``: the host-target interface Spike and the riscv-tests use.

Mapped at the ELF symbol ``tohost``; ``fromhost`` is ``fromhost_offset`` bytes further (8 by
default, as libgloss lays them out; riscv-tests' env/p aligns ``fromhost`` to 64 bytes, so the
machine passes the distance between the two ELF symbols when both exist)::

    +0                tohost    64-bit command written by the guest
    +fromhost_offset  fromhost  64-bit response written by the host, cleared by the guest

Bytes between the two read as 0 and ignore writes.

A command is ``device << 56 | cmd << 48 | payload`` (payload 48 bits), as in riscv-isa-sim
fesvr/device.h ``command_t``. Spike's front end polls ``tohost``; when it is non-zero it takes
the command and writes ``tohost`` back to 0, which the guest waits for. Here the command is
taken at once, on the guest write that stores the top byte of ``tohost`` (offset 7): on RV32
the guest writes the 64-bit value as two words, low then high, and the high-word write at
offset 4 completes it (riscv-tests env/p/riscv_test.h; libgloss htif). A write of the low word
alone does nothing yet.

Commands (fesvr/htif.cc, fesvr/device.cc):

* device 0 (syscall proxy), cmd 0, payload bit 0 = 1: exit with code ``payload >> 1``.
  riscv-tests pass with 1 (code 0); a failing test ``n`` writes ``n << 1 | 1`` (code ``n``).
  The device calls ``host.request_exit(code)`` and records :attr:`exit_code`.
* device 1 (bcd console), cmd 1: putchar ``payload & 0xFF`` to ``console``; the response
  ``1 << 56 | 1 << 48 | 0x100 | ch`` goes to ``fromhost`` (newer fesvr acknowledges writes so
  riscv-pk can wait on them).
* device 1, cmd 0: getchar. The request waits until :meth:`feed` supplies a byte, then responds
  ``1 << 56 | 0 << 48 | 0x100 | ch``.
* Anything else -- the device-0 syscall proxy (even payload: a pointer to a syscall struct this
  machine does not emulate), identify (cmd 255), unknown devices -- is ignored and acknowledged
  with a response of payload 0 (``device << 56 | cmd << 48``), so a guest waiting on
  ``fromhost`` does not hang. :attr:`ignored` counts them.

Responses queue (Spike's ``fromhost_queue``): one is placed in ``fromhost`` whenever it is 0;
the guest clears ``fromhost`` (both words on RV32) to receive the next.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.machine.devices.regs import WIDTH_MASKS

if TYPE_CHECKING:
    from virtlevels.machine.bus import DeviceHost

DEV_SYSCALL, DEV_BCD = 0, 1
BCD_GETCHAR, BCD_PUTCHAR = 0, 1
PAYLOAD_MASK = (1 << 48) - 1
MASK64 = (1 << 64) - 1


def htif_command(device: int, cmd: int, payload: int) -> int:
    """Encode a tohost/fromhost value (fesvr command_t layout)."""
    return (device & 0xFF) << 56 | (cmd & 0xFF) << 48 | (payload & PAYLOAD_MASK)


@attrs.define(eq=False)
class Htif:
    """The tohost/fromhost pair; ``console`` receives putchar bytes (e.g. a UART's ``emit``)."""

    console: Callable[[bytes], object] | None = None
    fromhost_offset: int = 8
    name: str = "htif"
    size: int = attrs.field(init=False)

    _host: DeviceHost | None = attrs.field(default=None, init=False)
    _tohost: int = attrs.field(default=0, init=False)
    _fromhost: int = attrs.field(default=0, init=False)
    _responses: deque[int] = attrs.field(factory=deque, init=False)
    _pending_reads: int = attrs.field(default=0, init=False)
    _input: deque[int] = attrs.field(factory=deque, init=False)
    _out: bytearray = attrs.field(factory=bytearray, init=False)
    exit_code: int | None = attrs.field(default=None, init=False)
    ignored: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        if self.fromhost_offset < 8 or self.fromhost_offset % 8:
            raise ValueError(
                f"fromhost_offset must be a multiple of 8 and at least 8, got {self.fromhost_offset}"
            )
        self.size = self.fromhost_offset + 8

    def attach(self, host: DeviceHost) -> None:
        self._host = host

    @property
    def output(self) -> bytes:
        """Every byte written through the bcd console."""
        return bytes(self._out)

    @property
    def tohost(self) -> int:
        return self._tohost

    @property
    def fromhost(self) -> int:
        return self._fromhost

    def feed(self, data: bytes) -> None:
        """Console input for bcd getchar requests."""
        self._input.extend(data)
        self._serve_reads()

    # -- MMIO --------------------------------------------------------------------------------
    def read(self, offset: int, width: int) -> int:
        if offset + width <= 8:
            return (self._tohost >> (offset * 8)) & WIDTH_MASKS[width]
        base = self.fromhost_offset
        if base <= offset and offset + width <= base + 8:
            return (self._fromhost >> ((offset - base) * 8)) & WIDTH_MASKS[width]
        return 0

    def write(self, offset: int, width: int, value: int) -> None:
        if offset + width <= 8:
            shift = offset * 8
            mask = WIDTH_MASKS[width] << shift
            self._tohost = (self._tohost & ~mask | (value << shift) & mask) & MASK64
            if offset + width == 8 and self._tohost:
                # The store of the top byte (the RV32 high word) completes the command.
                command, self._tohost = self._tohost, 0
                self._execute(command)
            return
        base = self.fromhost_offset
        if base <= offset and offset + width <= base + 8:
            shift = (offset - base) * 8
            mask = WIDTH_MASKS[width] << shift
            self._fromhost = (self._fromhost & ~mask | (value << shift) & mask) & MASK64
            self._deliver()

    # -- commands ----------------------------------------------------------------------------
    def _execute(self, command: int) -> None:
        device, cmd, payload = command >> 56, (command >> 48) & 0xFF, command & PAYLOAD_MASK
        if device == DEV_SYSCALL and cmd == 0 and payload & 1:
            self.exit_code = payload >> 1
            if self._host is not None:
                self._host.request_exit(self.exit_code)
        elif device == DEV_BCD and cmd == BCD_PUTCHAR:
            ch = payload & 0xFF
            self._out.append(ch)
            if self.console is not None:
                self.console(bytes((ch,)))
            self._respond(htif_command(DEV_BCD, BCD_PUTCHAR, 0x100 | ch))
        elif device == DEV_BCD and cmd == BCD_GETCHAR:
            self._pending_reads += 1
            self._serve_reads()
        else:
            self.ignored += 1
            self._respond(htif_command(device, cmd, 0))

    def _serve_reads(self) -> None:
        while self._pending_reads and self._input:
            self._pending_reads -= 1
            self._respond(htif_command(DEV_BCD, BCD_GETCHAR, 0x100 | self._input.popleft()))

    def _respond(self, value: int) -> None:
        self._responses.append(value)
        self._deliver()

    def _deliver(self) -> None:
        if self._fromhost == 0 and self._responses:
            self._fromhost = self._responses.popleft()

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        self._tohost = self._fromhost = self._pending_reads = 0
        self._responses.clear()
        self.exit_code = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "tohost": self._tohost,
            "fromhost": self._fromhost,
            "responses": list(self._responses),
            "pending_reads": self._pending_reads,
            "input": bytes(self._input),
            "output": bytes(self._out),
            "exit_code": self.exit_code,
            "ignored": self.ignored,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._tohost = int(state["tohost"])
        self._fromhost = int(state["fromhost"])
        self._responses = deque(int(r) for r in state["responses"])
        self._pending_reads = int(state["pending_reads"])
        self._input = deque(state["input"])
        self._out = bytearray(state["output"])
        self.exit_code = None if state["exit_code"] is None else int(state["exit_code"])
        self.ignored = int(state["ignored"])
