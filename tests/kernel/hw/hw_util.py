from __future__ import annotations

from typing import Any

from virtlevels.kernel.kernel import Kernel
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.elf.writer import write_elf
from virtlevels.world import World

# Linux asm-generic syscall numbers used by the test programs.
SYS = {"write": 64, "exit": 93, "exit_group": 94, "getpid": 172, "brk": 214, "munmap": 215,
       "clone": 220, "execve": 221, "mmap": 222, "wait4": 260}  # fmt: skip


def program(body: str, data: str = "") -> bytes:
    """An ELF user program at 0x10000 from assembly (``SYS_name`` symbols are defined)."""
    equs = "".join(f"    .equ SYS_{n}, {v}\n" for n, v in SYS.items())
    src = f"{equs}    .text\n    .globl _start\n_start:\n{body}\n    .data\n{data}\n"
    return write_elf(assemble(src, base=0x10000))


def make_kernel(engine: str = "interp", **kw: Any) -> Kernel:
    world = World(entry_points=False)
    machine = virt_machine(world=world, num_harts=kw.pop("harts", 1))
    return Kernel(world, machine=machine, engine=engine, **kw)
