"""ELF32 RISC-V files: write an Image as an executable, load static executables built by gcc."""

from __future__ import annotations

from .loader import load_elf, load_elf_file
from .writer import write_elf

__all__ = ["load_elf", "load_elf_file", "write_elf"]
