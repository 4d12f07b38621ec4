"""Helpers for the sandbox tests: kernels with seccomp, an init, and scripted probes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(ROOT / "plugins"))

from virtlevels_sandbox import seccomp as sec  # noqa: E402

from virtlevels.kernel import scripted as sc  # noqa: E402
from virtlevels.kernel.kernel import Kernel  # noqa: E402
from virtlevels.world import World  # noqa: E402


def init_prog() -> Any:
    while True:
        r = yield sc.wait4(-1)
        if not isinstance(r, tuple):
            return 0


def kernel(**kw: Any) -> Kernel:
    k = Kernel(World(entry_points=False), **kw)
    sec.install(k)
    k.spawn(init_prog, name="init")
    return k


def run_prog(k: Kernel, prog: Any, *args: Any, **spawn: Any) -> Any:
    """Spawn a scripted program, run the World, return its task."""
    t = k.spawn(prog, list(args), **spawn) if args else k.spawn(prog, **spawn)
    k.run()
    return t


def rv32_program(body: str, data: str = "") -> bytes:
    """An RV32 ELF user program at 0x10000 from assembly; ``SYS_name`` symbols give the riscv32
    numbers of the calls the sandbox tests make."""
    from virtlevels.machine.asm import assemble
    from virtlevels.machine.elf.writer import write_elf

    numbers = {"write": 64, "exit_group": 94, "getpid": 172, "getppid": 173, "getuid": 174, "gettid": 178,
               "clone": 220, "prctl": 167, "seccomp": 277}  # fmt: skip
    equs = "".join(f"    .equ SYS_{n}, {v}\n" for n, v in numbers.items())
    src = f"{equs}    .text\n    .globl _start\n_start:\n{body}\n    .data\n{data}\n"
    return write_elf(assemble(src, base=0x10000))


def isa_kernel(**kw: Any) -> Kernel:
    """A kernel on a one-hart RISC-V machine, with seccomp and an init."""
    from virtlevels.machine.board import virt_machine

    world = World(entry_points=False)
    k = Kernel(world, machine=virt_machine(world=world), **kw)
    sec.install(k)
    k.spawn(init_prog, name="init")
    return k


def bytes_directive(raw: bytes) -> str:
    return "    .byte " + ", ".join(str(b) for b in raw) + "\n"
