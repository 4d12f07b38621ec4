"""Build the microbenchmark image: the SBI firmware + the tiny S-mode kernel in ``mbkernel.S``.

The image boots exactly as teachos does (virtlevels/guests/builder.py): the firmware at
0x8000_0000 is the entry point and enters the kernel at ``KERNEL_BASE`` in S-mode. A VMM that acts
as the SBI firmware loads only the segments at or above ``KERNEL_BASE``.

The kernel is assembled once per process (a few milliseconds); which benchmark runs and how many
iterations are two data words, ``mb_bench`` and ``mb_iters``, patched into a copy of the image by
:func:`build_microbench`.
"""

from __future__ import annotations

import functools
import re
import struct
from importlib import resources
from typing import Literal

import attrs

from virtlevels.errors import AssemblyError, ConfigError
from virtlevels.guests import build_firmware
from virtlevels.guests.layout import KERNEL_BASE, RAM_BASE, USER_REGION_BASE
from virtlevels.machine.asm import assemble
from virtlevels.machine.image import Image, Segment
from virtlevels.machine.memmap import UART_BASE

# User virtual addresses the kernel maps (all in the first 4 MiB: one level-0 table).
USER_CODE_VA = 0x0001_0000
FAULT_VA0 = 0x0002_0000  # its level-0 index must be even (the handler finds the other page by xor)
FAULT_VA1 = 0x0002_1000
PTEMOD_VA = 0x0003_0000
MAX_ITERATIONS = 0x7FFF_FFFF

Mode = Literal["kernel", "user"]


@attrs.frozen
class Benchmark:
    """One microbenchmark: what it does in our kernel and which x86 operation it stands for."""

    name: str
    number: int  # the value patched into mb_bench (mbkernel.S bench_table order)
    mode: Mode  # the privilege mode the measured loop runs in
    x86: str  # Adams & Agesen's operation
    what: str  # the RISC-V operation per iteration


#: The measured benchmarks, in the paper's order (out added beside in).
BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("syscall", 2, "user", "a native system call", "ecall getpid() from U; the kernel returns"),
        Benchmark("in", 3, "kernel", "in: an I/O port read", "lbu of the UART's LSR (an MMIO load)"),
        Benchmark("out", 4, "kernel", "out: an I/O port write", "sb to the UART's scratch register"),
        Benchmark("cr8wr", 5, "kernel", "mov to %cr8 (the TPR)", "csrw sie (the interrupt-enable mask)"),
        Benchmark("call/ret", 6, "kernel", "call and ret", "jal to a leaf that does ret"),
        Benchmark("pgfault", 7, "user", "a page fault the kernel handles",
                  "U load from an unmapped page; the kernel maps it, unmaps the other, retries"),
        Benchmark("divzero", 8, "user", "a divide-by-zero fault", "ebreak from U; the kernel skips it"),
        Benchmark("ptemod", 9, "kernel", "a PTE write (+ invlpg)", "sw to a live level-0 PTE + sfence.vma"),
    )
}

#: The empty loops, one per mode: their per-iteration cost is the loop overhead to subtract.
NULL_BENCHMARKS: dict[Mode, Benchmark] = {
    "kernel": Benchmark("null-kernel", 0, "kernel", "(loop overhead)", "the loop alone, in S-mode"),
    "user": Benchmark("null-user", 1, "user", "(loop overhead)", "the loop alone, in U-mode"),
}

ALIASES = {"callret": "call/ret", "call-ret": "call/ret"}

_ALL: dict[str, Benchmark] = {**BENCHMARKS, **{b.name: b for b in NULL_BENCHMARKS.values()}}


def benchmark(name: str) -> Benchmark:
    """A benchmark by name (``callret`` is accepted for ``call/ret``)."""
    found = _ALL.get(ALIASES.get(name, name))
    if found is None:
        raise ConfigError(f"unknown microbenchmark {name!r} (known: {', '.join(_ALL)})")
    return found


def kernel_constants() -> dict[str, int]:
    """The ``.equ`` values mbkernel.S is assembled with."""
    consts = {
        "RAM_BASE": RAM_BASE,
        "UART_BASE": UART_BASE,
        "USER_CODE_VA": USER_CODE_VA,
        "USER_CODE_PTE_OFF": ((USER_CODE_VA >> 12) & 0x3FF) * 4,
        "FAULT_VA0": FAULT_VA0,
        "FAULT_VA1": FAULT_VA1,
        "PTEMOD_VA": PTEMOD_VA,
        "PTEMOD_PTE_OFF": ((PTEMOD_VA >> 12) & 0x3FF) * 4,
        "BENCH_COUNT": len(_ALL),
    }
    for b in _ALL.values():
        consts["BENCH_" + b.name.upper().replace("-", "_").replace("/", "")] = b.number
    return consts


def kernel_source() -> str:
    package = resources.files("virtlevels_hypervisor.microbench")
    return package.joinpath("mbkernel.S").read_text(encoding="utf-8")


@functools.cache
def build_kernel() -> Image:
    """The microbenchmark kernel alone, at ``KERNEL_BASE`` (mb_bench = mb_iters = 0)."""
    header = "".join(f"    .equ {k}, {v:#x}\n" for k, v in kernel_constants().items())
    try:
        image = assemble(header + kernel_source(), "mbkernel.S", base=KERNEL_BASE)
    except AssemblyError as exc:  # report the line of mbkernel.S, not of header + source
        m = re.match(r"mbkernel\.S:(\d+):(.*)", str(exc), re.S)
        if m is None:
            raise
        raise AssemblyError(f"mbkernel.S:{int(m.group(1)) - header.count(chr(10))}:{m.group(2)}") from None
    end = max(s.addr + max(s.memsize, len(s.data)) for s in image.segments)
    if end > USER_REGION_BASE:
        raise ConfigError(f"mbkernel.S ends at 0x{end:08x}, past the kernel area (0x{USER_REGION_BASE:08x})")
    user, user_end = image.symbols["user_page"], image.symbols["user_page_end"]
    if user_end - user > 4096:
        raise ConfigError(f"mbkernel.S: the user page holds {user_end - user} bytes, more than one page")
    return image


@functools.cache
def base_image() -> Image:
    """Firmware + microbenchmark kernel, unpatched (the firmware's entry point)."""
    firmware = build_firmware()
    kernel = build_kernel()
    segments = [attrs.evolve(s, name=f"sbi{s.name}") for s in firmware.segments]
    segments += [attrs.evolve(s, name=f"mbkernel{s.name}") for s in kernel.segments]
    symbols = {f"sbi.{k}": v for k, v in firmware.symbols.items()}
    symbols.update(kernel.symbols)
    return Image(tuple(segments), firmware.entry, symbols, source="microbench")


def build_microbench(bench: str, iterations: int) -> Image:
    """The image that runs ``bench`` for one warm-up operation plus ``iterations`` more."""
    b = benchmark(bench)
    valid = isinstance(iterations, int) and not isinstance(iterations, bool)
    if not valid or not 0 <= iterations <= MAX_ITERATIONS:
        raise ConfigError(
            f"microbenchmark iterations must be an integer 0..{MAX_ITERATIONS}, got {iterations!r}"
        )
    values = {"mb_bench": b.number, "mb_iters": iterations}
    return patch_words(base_image(), values, f"microbench[{b.name} x{iterations}]")


def patch_words(image: Image, values: dict[str, int], source: str = "") -> Image:
    """A copy of ``image`` with the 32-bit little-endian words at the named symbols replaced."""
    segments = list(image.segments)
    for name, value in values.items():
        addr = image.symbols.get(name)
        if addr is None:
            raise ConfigError(f"{image.source or 'image'}: no symbol {name!r} to patch")
        for i, seg in enumerate(segments):
            if seg.addr <= addr and addr + 4 <= seg.addr + len(seg.data):
                off = addr - seg.addr
                data = seg.data[:off] + struct.pack("<I", value & 0xFFFF_FFFF) + seg.data[off + 4 :]
                segments[i] = Segment(seg.addr, data, seg.memsize, seg.flags, seg.name)
                break
        else:
            raise ConfigError(f"{image.source or 'image'}: symbol {name!r} is not in initialised data")
    return Image(tuple(segments), image.entry, image.symbols, source=source or image.source)
