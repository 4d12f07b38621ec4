"""ELF32 constants and record layouts (System V gABI, "Object Files"; RISC-V ELF psABI 1.0)."""

from __future__ import annotations

import struct

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFDATA2LSB, EV_CURRENT = 1, 1, 1
ET_REL, ET_EXEC, ET_DYN = 1, 2, 3
EM_RISCV = 243
PT_LOAD = 1
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 0, 1, 2, 3, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
SHN_UNDEF, SHN_ABS = 0, 0xFFF1
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 0, 1, 2, 3, 4

# e_ident (16 bytes) then the rest of the ELF32 header.
EHDR = struct.Struct("<16sHHIIIIIHHHHHH")
PHDR = struct.Struct("<IIIIIIII")  # type, offset, vaddr, paddr, filesz, memsz, flags, align
SHDR = struct.Struct("<IIIIIIIIII")  # name, type, flags, addr, offset, size, link, info, addralign, entsize
SYM = struct.Struct("<IIIBBH")  # name, value, size, info, other, shndx
