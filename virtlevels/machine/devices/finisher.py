"""The SiFive test finisher QEMU's virt machine has at 0x0010_0000 (QEMU hw/misc/sifive_test.c).

Register map (one 32-bit register at offset 0; the region is 0x1000 bytes)::

    write  (code << 16) | 0x3333   FAIL: exit with ``code`` (bits 31:16)
    write  0x5555                  PASS: exit with code 0
    write  0x7777                  RESET
    read                           0

As in QEMU, the status is the low 16 bits of a 2- or 4-byte write at offset 0, other values are
ignored, and a FAIL with code 0 exits with status 0 (QEMU calls ``exit(code)``). Byte writes are
ignored (QEMU only accepts 2- and 4-byte accesses).

RESET: this machine has no reboot path, so a reset request halts the run with
``reset_exit_code`` (default 0, as ``qemu -no-reboot`` makes a guest reboot end QEMU cleanly).
:attr:`last_status` records which of "pass", "fail" or "reset" ended the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.machine.memmap import TEST_FINISHER_SIZE

if TYPE_CHECKING:
    from virtlevels.machine.bus import DeviceHost

FINISHER_FAIL, FINISHER_PASS, FINISHER_RESET = 0x3333, 0x5555, 0x7777


@attrs.define(eq=False)
class TestFinisher:
    """Ends the run with the guest's exit code through ``host.request_exit``."""

    __test__ = False  # a device, not a pytest test class

    name: str = "test-finisher"
    size: int = TEST_FINISHER_SIZE
    reset_exit_code: int = 0

    _host: DeviceHost | None = attrs.field(default=None, init=False)
    exit_code: int | None = attrs.field(default=None, init=False)
    last_status: str | None = attrs.field(default=None, init=False)

    def attach(self, host: DeviceHost) -> None:
        self._host = host

    def read(self, offset: int, width: int) -> int:
        return 0

    def write(self, offset: int, width: int, value: int) -> None:
        if offset != 0 or width == 1:
            return
        status, code = value & 0xFFFF, (value >> 16) & 0xFFFF
        if status == FINISHER_PASS:
            self._finish("pass", 0)
        elif status == FINISHER_FAIL:
            self._finish("fail", code)
        elif status == FINISHER_RESET:
            self._finish("reset", self.reset_exit_code)

    def _finish(self, status: str, code: int) -> None:
        self.last_status, self.exit_code = status, code
        if self._host is not None:
            self._host.request_exit(code)

    def reset(self) -> None:
        self.exit_code = self.last_status = None

    def snapshot(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "last_status": self.last_status}

    def restore(self, state: dict[str, Any]) -> None:
        self.exit_code = state["exit_code"]
        self.last_status = state["last_status"]
