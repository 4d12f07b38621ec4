"""A GNU-as-compatible assembler for RV32IMA + Zicsr + Zifencei + the privileged instructions.

``assemble(source)`` turns assembly text into an :class:`~virtlevels.machine.image.Image`;
``virtlevels.machine.elf.writer.write_elf`` turns that into an ELF file. Instruction encodings
come only from :mod:`virtlevels.machine.isa.encodings` (or the rows passed in ``encodings``,
so ISA extensions assemble too). See docs/assembler.md for what differs from GNU as.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from virtlevels.errors import AssemblyError
from virtlevels.machine.image import Image
from virtlevels.machine.isa.encodings import Encoding

from .directives import DIRECTIVES, code_padding
from .encoder import InsnSet, default_insn_set
from .layout import link
from .program import Assembler
from .pseudo import PSEUDOS

__all__ = ["assemble", "assemble_file"]

DEFAULT_BASE = 0x8000_0000  # RAM base of the machine (QEMU virt / Spike layout)


def assemble(
    source: str,
    filename: str = "<string>",
    *,
    base: int = DEFAULT_BASE,
    origins: Mapping[str, int] | None = None,
    encodings: Iterable[Encoding] | None = None,
) -> Image:
    """Assemble ``source``; .text starts at ``base`` unless ``origins`` (keys ".text", ".rodata",
    ".data", ".bss") places output groups, as a linker script's addresses would.

    ``encodings`` replaces the instruction table (pass the base rows plus an extension's rows).
    Raises AssemblyError naming ``filename:line``, the problem and the offending statement.
    """
    if origins:
        unknown = set(origins) - {".text", ".rodata", ".data", ".bss"}
        if unknown:
            raise AssemblyError(f"{filename}: unknown output section(s) in origins: {sorted(unknown)}")
    isa = default_insn_set() if encodings is None else InsnSet(encodings)
    asm = Assembler(source, filename, isa)
    asm.run(DIRECTIVES, PSEUDOS)
    for sec in asm.sections.values():
        if sec.group == ".text" and len(sec.data) % sec.align:
            # GNU as rounds a code section up to its alignment with NOPs.
            sec.data += code_padding(-len(sec.data) % sec.align)
    return link(asm, base, origins)


def assemble_file(
    path: str | Path,
    *,
    base: int = DEFAULT_BASE,
    origins: Mapping[str, int] | None = None,
    encodings: Iterable[Encoding] | None = None,
) -> Image:
    """Assemble the file at ``path`` (UTF-8 text)."""
    p = Path(path)
    try:
        source = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise AssemblyError(f"{p}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise AssemblyError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return assemble(source, str(p), base=base, origins=origins, encodings=encodings)
