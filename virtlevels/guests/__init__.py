"""Guest software for the simulated machine: an SBI firmware and teachos, a teaching kernel.

Both are RV32 assembly shipped as package data and assembled when an image is built::

    from virtlevels.guests import build_teachos, boot_teachos
    from virtlevels.machine.board import virt_machine

    image = build_teachos(["hello", "counter", "counter"], paravirt=False)
    machine = virt_machine()
    boot_teachos(machine, image)
    result = machine.run(5_000_000)     # result.uart, result.status, result.traps

docs/guests.md describes the boot flow, memory layout, SBI calls, the VLP paravirtual ABI and
the system calls.
"""

from __future__ import annotations

from .builder import (
    DEFAULT_PROGRAMS,
    UserProgram,
    boot_teachos,
    build_firmware,
    build_teachos,
    link_user_program,
    program_names,
    user_program,
)
from .layout import VLP_EID

__all__ = [
    "DEFAULT_PROGRAMS",
    "VLP_EID",
    "UserProgram",
    "boot_teachos",
    "build_firmware",
    "build_teachos",
    "link_user_program",
    "program_names",
    "user_program",
]
