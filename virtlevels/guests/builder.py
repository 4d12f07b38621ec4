"""Build a bootable teachos image: SBI firmware + kernel (native or PV) + user programs.

Everything is assembled from the ``.S`` sources shipped in this package each time an image is
built (the assembler takes a few milliseconds per file). The pieces are assembled separately
and merged into one :class:`~virtlevels.machine.image.Image`, as a linker would with a
linker script:

* the firmware at 0x8000_0000 (the reset address, the image's entry point);
* the kernel at 0x8020_0000 (``FW_JUMP_ADDR``), from its shared files plus one arch file;
* each user program linked at the user base 0x1_0000 (its own virtual address space) and
  placed in its own physical region at 0x8040_0000 + i MiB; the kernel learns where from a
  generated table (``proc_table``) and builds the page tables at boot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import attrs

from virtlevels.errors import AssemblyError, ConfigError, VirtlevelsError
from virtlevels.machine.asm import assemble
from virtlevels.machine.image import PF_R, PF_W, PF_X, Image, Segment
from virtlevels.machine.isa.encodings import Encoding

from . import layout as L

KERNEL_FILES = ("boot.S", "trap.S", "syscall.S", "sched.S", "vm.S", "console.S")
ARCH_FILES = {False: "arch_native.S", True: "arch_pv.S"}
DEFAULT_PROGRAMS = ("hello", "counter", "counter")
PTE_R, PTE_W, PTE_X = 0x2, 0x4, 0x8


@attrs.frozen
class UserProgram:
    """A user program's assembly source and the name it is reported under."""

    name: str
    source: str
    filename: str = ""

    @property
    def label(self) -> str:
        return self.filename or f"{self.name}.S"


@attrs.frozen
class LinkedProgram:
    """A user program linked at :data:`layout.USER_BASE` and placed in its physical region."""

    program: UserProgram
    entry: int
    heap_start: int
    mappings: tuple[tuple[int, int, int, int], ...]  # (vaddr, paddr, pages, R/W/X PTE bits)
    segments: tuple[Segment, ...]
    symbols: dict[str, int] = attrs.field(hash=False)


def _read(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def program_names() -> list[str]:
    """The user programs shipped in virtlevels/guests/programs/ (without the .S)."""
    root = resources.files("virtlevels.guests.programs")
    return sorted(p.name[:-2] for p in root.iterdir() if p.name.endswith(".S"))


def user_program(spec: str | Path | UserProgram) -> UserProgram:
    """A shipped program by name (``"hello"``), a path to a ``.S`` file, or a UserProgram."""
    if isinstance(spec, UserProgram):
        return spec
    text = str(spec)
    if isinstance(spec, str) and "/" not in text and not text.endswith(".S"):
        if text not in program_names():
            raise ConfigError(f"unknown user program {text!r} (shipped: {', '.join(program_names())})")
        return UserProgram(text, _read("virtlevels.guests.programs", f"{text}.S"), f"programs/{text}.S")
    path = Path(spec)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read user program: {exc.strerror}") from None
    return UserProgram(path.stem, source, str(path))


def _equ_header(values: Mapping[str, int]) -> str:
    return "".join(f"    .equ {name}, {value:#x}\n" for name, value in values.items())


@attrs.frozen
class _Part:
    filename: str
    first_line: int  # line of the concatenated source where this part starts (1-based)
    lines: int


def _assemble_parts(
    parts: Sequence[tuple[str, str]], name: str, base: int, encodings: Iterable[Encoding] | None = None
) -> Image:
    """Assemble concatenated files; errors name the original file and line."""
    index: list[_Part] = []
    chunks: list[str] = []
    line = 1
    for filename, text in parts:
        if not text.endswith("\n"):
            text += "\n"
        n = text.count("\n")
        index.append(_Part(filename, line, n))
        chunks.append(text)
        line += n
    try:
        return assemble("".join(chunks), name, base=base, encodings=encodings)
    except AssemblyError as exc:
        m = re.match(re.escape(name) + r":(\d+):(.*)", str(exc), re.S)
        if m:
            at = int(m.group(1))
            for part in index:
                if part.first_line <= at < part.first_line + part.lines:
                    raise AssemblyError(f"{part.filename}:{at - part.first_line + 1}:{m.group(2)}") from None
        raise


def build_firmware() -> Image:
    """The SBI firmware alone, at 0x8000_0000."""
    source = _read("virtlevels.guests.firmware", "sbi.S")
    return _assemble_parts(
        [("<firmware constants>", _equ_header(L.firmware_constants())), ("firmware/sbi.S", source)],
        "sbi.S", L.FW_BASE,
    )


def link_user_program(program: UserProgram, index: int) -> LinkedProgram:
    """Assemble a user program at the user base, each output group on its own pages, and place
    it in process ``index``'s physical region."""
    first = assemble(program.source, program.label, base=L.USER_BASE)
    # Second pass: start .rodata, .data and .bss on fresh pages so each page gets one set of
    # permissions (text R-X, rodata R--, data RW-), as a linker script's page alignment does.
    origins: dict[str, int] = {}
    end = L.USER_BASE
    for seg in sorted(first.segments, key=lambda s: s.addr):
        if seg.name == ".text":
            end = seg.addr + max(seg.memsize, len(seg.data))
            continue
        if seg.name in (".rodata", ".data", ".bss"):
            start = _page_up(end)
            origins[seg.name] = start
            end = start + max(seg.memsize, len(seg.data))
    image = assemble(program.source, program.label, base=L.USER_BASE, origins=origins) if origins else first
    region = L.USER_REGION_BASE + index * L.USER_REGION_SIZE
    pages: dict[int, int] = {}
    segments: list[Segment] = []
    top = L.USER_BASE
    for seg in image.segments:
        size = max(seg.memsize, len(seg.data))
        if seg.addr < L.USER_BASE or seg.addr + size > L.USER_IMAGE_LIMIT:
            raise ConfigError(
                f"{program.label}: {seg.name or 'a segment'} at 0x{seg.addr:x}-0x{seg.addr + size:x} "
                f"is outside the user image area 0x{L.USER_BASE:x}-0x{L.USER_IMAGE_LIMIT:x}"
            )
        if size == 0:
            continue
        perms = (PTE_R if seg.flags & PF_R else 0) | (PTE_X if seg.flags & PF_X else 0)
        if seg.flags & PF_W:
            perms |= PTE_W | PTE_R  # Priv 4.3.1: W without R is reserved
        for vpn in range(seg.addr // L.PAGE, (seg.addr + size - 1) // L.PAGE + 1):
            pages[vpn] = pages.get(vpn, 0) | perms
        name = f"{program.name}{seg.name}"
        segments.append(Segment(region + seg.addr, seg.data, seg.memsize, seg.flags, name))
        top = max(top, seg.addr + size)
    mappings: list[tuple[int, int, int, int]] = []
    for vpn in sorted(pages):
        va = vpn * L.PAGE
        last = mappings[-1] if mappings else None
        if last is not None and last[0] + last[2] * L.PAGE == va and last[3] == pages[vpn]:
            mappings[-1] = (last[0], last[1], last[2] + 1, last[3])
        else:
            mappings.append((va, region + va, 1, pages[vpn]))
    stack_va = L.USER_STACK_TOP - L.USER_STACK_PAGES * L.PAGE
    mappings.append((stack_va, region + L.USER_STACK_PHYS_OFFSET, L.USER_STACK_PAGES, PTE_R | PTE_W))
    symbols = {f"{program.name}[{index + 1}].{k}": region + v for k, v in image.symbols.items()
               if L.USER_BASE <= v < L.USER_IMAGE_LIMIT}
    return LinkedProgram(program, image.entry, _page_up(top), tuple(mappings), tuple(segments), symbols)


def _page_up(v: int) -> int:
    return (v + L.PAGE - 1) & ~(L.PAGE - 1)


def _proc_table(programs: Sequence[LinkedProgram]) -> str:
    """Assembly for the table proc_init reads: per process entry, heap start, mappings."""
    out = ["# Generated by virtlevels.guests.builder: the user programs of this image.",
           "    .rodata", "    .balign 4", f"nproc:\n    .word {len(programs)}", "proc_table:"]
    for i, p in enumerate(programs):
        out.append(f"    .word {p.entry:#x}, {p.heap_start:#x}, {len(p.mappings)}, proc_maps_{i}"
                   f"    # pid {i + 1}: {p.program.name}")
    for i, p in enumerate(programs):
        out.append(f"proc_maps_{i}:")
        for va, pa, n, perms in p.mappings:
            out.append(f"    .word {va:#x}, {pa:#x}, {n}, {perms:#x}")
    out += ["    .bss", "kernel_bss_end:", ""]
    return "\n".join(out)


def build_kernel(
    programs: Sequence[LinkedProgram],
    *,
    paravirt: bool = False,
    timer_interval: int = L.DEFAULT_TIMER_INTERVAL,
    timebase_hz: int = L.TIMEBASE_HZ,
    extra_symbols: Mapping[str, int] | None = None,
    arch_source: str | None = None,
    encodings: Iterable[Encoding] | None = None,
) -> Image:
    """The kernel alone, at 0x8020_0000, for already linked user programs.

    ``arch_source`` replaces the arch file (arch_native.S / arch_pv.S) with other code offering
    the same routines - e.g. one using an ISA profile's extra instructions, assembled with
    ``encodings`` (the base rows plus the extension's).
    """
    if not 1 <= len(programs) <= L.NPROC_MAX:
        raise ConfigError(f"teachos runs 1 to {L.NPROC_MAX} user programs, got {len(programs)}")
    if timer_interval < 1:
        raise ConfigError(f"timer_interval must be at least 1 tick, got {timer_interval}")
    constants = L.kernel_constants(timer_interval, timebase_hz)
    constants.update(extra_symbols or {})
    parts = [("<kernel constants>", _equ_header(constants))]
    for name in KERNEL_FILES:
        parts.append((f"teachos/{name}", _read("virtlevels.guests.teachos", name)))
    if arch_source is None:
        arch = ARCH_FILES[paravirt]
        parts.append((f"teachos/{arch}", _read("virtlevels.guests.teachos", arch)))
    else:
        parts.append(("<arch source>", arch_source))
    parts.append(("<proc table>", _proc_table(programs)))
    image = _assemble_parts(parts, "teachos.S", L.KERNEL_BASE, encodings)
    end = max(s.addr + max(s.memsize, len(s.data)) for s in image.segments)
    if end > L.USER_REGION_BASE:
        raise ConfigError(f"teachos kernel ends at 0x{end:08x}, past its area (0x{L.USER_REGION_BASE:08x})")
    return image


def build_teachos(
    user_programs: Iterable[str | Path | UserProgram] | None = None,
    *,
    paravirt: bool = False,
    timer_interval: int = L.DEFAULT_TIMER_INTERVAL,
    timebase_hz: int = L.TIMEBASE_HZ,
    extra_symbols: Mapping[str, int] | None = None,
    arch_source: str | None = None,
    encodings: Iterable[Encoding] | None = None,
) -> Image:
    """Firmware + teachos (native, or paravirtual with ``paravirt=True``) + user programs.

    ``user_programs``: shipped program names (see :func:`program_names`), paths of ``.S``
    files, or :class:`UserProgram` objects; one process each, pids 1, 2, ... in that order.
    Default: hello and two counters. ``timer_interval`` is in mtime ticks. ``extra_symbols``
    adds or overrides ``.equ`` constants of the kernel (keep layout constants consistent with
    :mod:`layout`). ``arch_source`` and ``encodings``: see :func:`build_kernel`. The entry point
    is the firmware's.
    """
    programs = [user_program(p) for p in (DEFAULT_PROGRAMS if user_programs is None else user_programs)]
    linked = [link_user_program(p, i) for i, p in enumerate(programs)]
    firmware = build_firmware()
    kernel = build_kernel(linked, paravirt=paravirt, timer_interval=timer_interval, timebase_hz=timebase_hz,
                          extra_symbols=extra_symbols, arch_source=arch_source, encodings=encodings)
    segments = [_named(s, "sbi") for s in firmware.segments]
    segments += [_named(s, "teachos") for s in kernel.segments]
    symbols = {f"sbi.{k}": v for k, v in firmware.symbols.items()}
    symbols.update(kernel.symbols)
    for p in linked:
        segments.extend(p.segments)
        symbols.update(p.symbols)
    variant = "custom" if arch_source is not None else "pv" if paravirt else "native"
    names = ",".join(p.program.name for p in linked)
    return Image(tuple(segments), firmware.entry, symbols, source=f"teachos-{variant}[{names}]")


def _named(seg: Segment, prefix: str) -> Segment:
    return attrs.evolve(seg, name=f"{prefix}{seg.name}")


def boot_teachos(machine: object, image: Image) -> None:
    """Load ``image`` into ``machine`` (a PhysicalMachine or anything with the same ``load``)
    after checking it has the RAM teachos uses; harts start at the firmware's reset vector."""
    ram_base = getattr(machine, "ram_base", L.RAM_BASE)
    ram_size = getattr(machine, "ram_size", None)
    if ram_base != L.RAM_BASE or (ram_size is not None and ram_size < L.RAM_NEEDED):
        raise ConfigError(
            f"teachos needs RAM at 0x{L.RAM_BASE:08x} of at least {L.RAM_NEEDED >> 20} MiB; "
            f"the machine has 0x{ram_base:08x} + {(ram_size or 0) >> 20} MiB"
        )
    load = getattr(machine, "load", None)
    if load is None:
        raise VirtlevelsError(f"{machine!r} cannot load an image")
    load(image)
