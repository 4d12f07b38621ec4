"""Load static RISC-V ELF32 executables (as built by gcc -march=rv32ima_zicsr_zifencei -mabi=ilp32
-nostdlib -static, or by our writer) into an Image: PT_LOAD segments, entry point and symbols.

Every malformed input raises ElfError saying what is wrong, never a struct or index error.
"""

from __future__ import annotations

from pathlib import Path

from virtlevels.errors import ElfError
from virtlevels.machine.image import Image, Segment

from .format import (
    EHDR,
    ELF_MAGIC,
    ELFCLASS32,
    ELFDATA2LSB,
    EM_RISCV,
    ET_DYN,
    ET_EXEC,
    ET_REL,
    PHDR,
    PT_LOAD,
    SHDR,
    SHN_UNDEF,
    SHT_NOBITS,
    SHT_SYMTAB,
    STB_GLOBAL,
    STB_LOCAL,
    STT_FILE,
    STT_SECTION,
    SYM,
)  # fmt: skip

_MACHINES = {3: "x86", 8: "MIPS", 20: "PowerPC", 40: "ARM", 62: "x86-64", 183: "AArch64"}


def _fail(source: str, msg: str) -> ElfError:
    return ElfError(f"{source}: {msg}" if source else msg)


def _cstr(table: bytes, off: int) -> str:
    if not 0 <= off < len(table):
        return ""
    end = table.find(b"\0", off)
    return table[off : end if end >= 0 else len(table)].decode("utf-8", "replace")


def load_elf(data: bytes, source: str = "") -> Image:
    """Parse an ELF32 little-endian RISC-V executable into an Image (addresses are p_paddr)."""
    src = source or "<elf>"
    if len(data) < 4 or data[:4] != ELF_MAGIC:
        raise _fail(src, "not an ELF file (no \\x7fELF magic)")
    if len(data) < 16:
        raise _fail(src, "truncated ELF header")
    if data[4] != ELFCLASS32:
        raise _fail(
            src,
            "not a 32-bit ELF file (EI_CLASS is ELFCLASS64)"
            if data[4] == 2
            else f"not a 32-bit ELF file (EI_CLASS={data[4]})",
        )
    if data[5] != ELFDATA2LSB:
        raise _fail(src, f"not a little-endian ELF file (EI_DATA={data[5]})")
    if len(data) < EHDR.size:
        raise _fail(src, f"truncated ELF header ({len(data)} bytes, need {EHDR.size})")
    (
        _,
        e_type,
        e_machine,
        _,
        e_entry,
        e_phoff,
        e_shoff,
        _,
        _,
        e_phentsize,
        e_phnum,
        e_shentsize,
        e_shnum,
        _,
    ) = EHDR.unpack_from(data, 0)
    if e_machine != EM_RISCV:
        name = _MACHINES.get(e_machine, f"e_machine={e_machine}")
        raise _fail(src, f"not a RISC-V ELF file ({name})")
    if e_type != ET_EXEC:
        what = {
            ET_REL: "a relocatable object; link it first",
            ET_DYN: "a shared object or PIE; link with -static",
        }
        raise _fail(src, f"not an executable ({what.get(e_type, f'e_type={e_type}')})")
    if e_phnum == 0:
        raise _fail(src, "no program headers")
    if e_phentsize != PHDR.size:
        raise _fail(src, f"bad program header size {e_phentsize} (expected {PHDR.size})")
    if e_phoff + e_phnum * PHDR.size > len(data):
        raise _fail(
            src,
            f"truncated program header table (needs {e_phoff + e_phnum * PHDR.size} bytes, "
            f"file has {len(data)})",
        )

    segments: list[Segment] = []
    vaddrs: list[int] = []  # section addresses are virtual; segments load at their physical address
    for i in range(e_phnum):
        p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, _ = PHDR.unpack_from(
            data, e_phoff + i * PHDR.size
        )
        if p_type != PT_LOAD or p_memsz == 0:
            continue
        if p_filesz > p_memsz:
            raise _fail(src, f"segment {i}: file size {p_filesz:#x} larger than memory size {p_memsz:#x}")
        if p_offset + p_filesz > len(data):
            raise _fail(
                src,
                f"truncated segment {i} (bytes {p_offset:#x}..{p_offset + p_filesz:#x}, "
                f"file has {len(data):#x})",
            )
        segments.append(Segment(p_paddr, bytes(data[p_offset : p_offset + p_filesz]), p_memsz, p_flags))
        vaddrs.append(p_vaddr)
    if not segments:
        raise _fail(src, "no loadable (PT_LOAD) segments")

    names, symbols = _sections(data, src, e_shoff, e_shnum, e_shentsize)
    named = []
    for seg, vaddr in zip(segments, vaddrs, strict=True):
        inside = [(addr, n) for addr, n in names if vaddr <= addr < vaddr + seg.memsize]
        if inside and inside[0][0] > vaddr:
            # ld often maps the ELF and program headers into the first segment, below .text
            # (e.g. at 0x7ffff000 with -Ttext=0x80000000); they are not part of the program.
            cut = inside[0][0] - vaddr
            seg = Segment(seg.addr + cut, seg.data[cut:], seg.memsize - cut, seg.flags)
        named.append(Segment(seg.addr, seg.data, seg.memsize, seg.flags, inside[0][1] if inside else ""))
    return Image(segments=tuple(named), entry=e_entry, symbols=symbols, source=source)


def _sections(
    data: bytes, src: str, shoff: int, shnum: int, shentsize: int
) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """(address, name) of allocated sections, and the symbol table; both optional in an executable."""
    if shoff == 0 or shnum == 0:
        return [], {}
    if shentsize != SHDR.size:
        raise _fail(src, f"bad section header size {shentsize} (expected {SHDR.size})")
    if shoff + shnum * SHDR.size > len(data):
        raise _fail(src, "truncated section header table")
    shdrs = [SHDR.unpack_from(data, shoff + i * SHDR.size) for i in range(shnum)]

    def body(i: int) -> bytes:
        sh = shdrs[i]
        if sh[1] == SHT_NOBITS:
            return b""
        if sh[4] + sh[5] > len(data):
            raise _fail(src, f"truncated section {i} (bytes {sh[4]:#x}..{sh[4] + sh[5]:#x})")
        return bytes(data[sh[4] : sh[4] + sh[5]])

    e_shstrndx = EHDR.unpack_from(data, 0)[13]
    shstr = body(e_shstrndx) if 0 < e_shstrndx < shnum else b""
    names = sorted((sh[3], _cstr(shstr, sh[0])) for sh in shdrs if sh[2] & 2 and sh[5])

    symbols: dict[str, int] = {}
    binding: dict[str, int] = {}
    for sh in shdrs:
        if sh[1] != SHT_SYMTAB:
            continue
        if sh[9] != SYM.size:
            raise _fail(src, f"bad symbol entry size {sh[9]}")
        if not 0 <= sh[6] < shnum:
            raise _fail(src, f"symbol table links to missing string table {sh[6]}")
        table = body(shdrs.index(sh))
        strs = body(sh[6])
        for off in range(SYM.size, len(table) - SYM.size + 1, SYM.size):
            st_name, st_value, _, st_info, _, st_shndx = SYM.unpack_from(table, off)
            bind, kind = st_info >> 4, st_info & 0xF
            name = _cstr(strs, st_name)
            if not name or kind in (STT_SECTION, STT_FILE) or st_shndx == SHN_UNDEF or name.startswith("$"):
                continue
            # A global definition wins over a local one of the same name.
            if name in symbols and not (bind == STB_GLOBAL and binding[name] == STB_LOCAL):
                continue
            symbols[name] = st_value
            binding[name] = bind
    return names, symbols


def load_elf_file(path: str | Path) -> Image:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ElfError(f"{p}: cannot read: {exc.strerror}") from None
    return load_elf(data, str(p))
