"""``startup``: the smallest useful process — its first instructions write ``startup`` and exit 0.

What it measures is the time until its first user instruction, which the level's runner takes
(spawn of a process, creation of a container, boot of a VM); the program itself costs a handful
of instructions and two system calls. The entry point is ``_start`` at the ELF's ``e_entry``
(0x10000): a runner can watch for that pc, or for the process's first system call (write, four
instructions later).
"""

from __future__ import annotations

from typing import Any

from virtlevels.workloads.asmlib import EXIT_0, build_elf
from virtlevels.workloads.image import IntParam, WorkloadImage, check_params

LINE = b"startup\n"
PARAMS: dict[str, IntParam] = {}


def source() -> str:
    return f"""
_start:
    li    a0, 1
    la    a1, msg
    li    a2, {len(LINE)}
    li    a7, SYS_write
    ecall
{EXIT_0}
    .rodata
msg: .ascii "startup\\n"
"""


def build(**params: Any) -> WorkloadImage:
    p = check_params("startup", PARAMS, params, {"small": {}, "large": {}})
    return WorkloadImage(
        name="startup", elf=build_elf("startup", source()), argv=("/bin/startup",), files={},
        expected_stdout=LINE, needs=frozenset(), params=p,
    )  # fmt: skip
