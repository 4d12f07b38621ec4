"""Image -> ELF32 little-endian RISC-V executable.

One PT_LOAD per segment, a section header per segment (so ``objdump -d`` finds .text), and a
.symtab/.strtab holding the image's symbols (so ``nm`` and ``objdump`` show labels). e_flags is 0:
soft-float ABI, no RVC (RISC-V ELF psABI, "e_flags").
"""

from __future__ import annotations

from virtlevels.machine.image import PF_W, PF_X, Image, Segment

from .format import (
    EHDR,
    ELF_MAGIC,
    ELFCLASS32,
    ELFDATA2LSB,
    EM_RISCV,
    ET_EXEC,
    EV_CURRENT,
    PHDR,
    PT_LOAD,
    SHDR,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHN_ABS,
    SHT_NOBITS,
    SHT_PROGBITS,
    SHT_STRTAB,
    SHT_SYMTAB,
    STB_GLOBAL,
    STT_NOTYPE,
    SYM,
)  # fmt: skip

PAGE = 0x1000  # p_align: file offsets congruent to addresses modulo a page, as ld does
SHT_RISCV_ATTRIBUTES = 0x70000003
ARCH = "rv32i2p1_m2p0_a2p1_zicsr2p0_zifencei2p0"


def riscv_attributes(arch: str = ARCH) -> bytes:
    """A .riscv.attributes section (RISC-V ELF psABI, "Attributes"): tells objdump the ISA, so it
    decodes no compressed instructions, and the privileged spec version (1.12 = 20211203)."""
    # Tag_RISCV_arch (5) NTBS, Tag_RISCV_priv_spec (8) = 1, Tag_RISCV_priv_spec_minor (10) = 12
    attrs_ = b"\x05" + arch.encode() + b"\0" + b"\x08\x01" + b"\x0a\x0c"
    file_sub = b"\x01" + (len(attrs_) + 5).to_bytes(4, "little") + attrs_  # Tag_File
    vendor = b"riscv\0" + file_sub
    return b"A" + (len(vendor) + 4).to_bytes(4, "little") + vendor


class _StrTab:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.index: dict[str, int] = {"": 0}

    def add(self, s: str) -> int:
        off = self.index.get(s)
        if off is None:
            off = len(self.data)
            self.data += s.encode() + b"\0"
            self.index[s] = off
        return off


def _section_name(seg: Segment, i: int) -> str:
    return seg.name if seg.name.startswith(".") else f".seg{i}"


def _section_flags(seg: Segment) -> int:
    flags = SHF_ALLOC
    if seg.flags & PF_X:
        flags |= SHF_EXECINSTR
    if seg.flags & PF_W:
        flags |= SHF_WRITE
    return flags


def write_elf(image: Image) -> bytes:
    """The bytes of an ELF32 executable holding ``image`` (deterministic for a given image)."""
    segs = sorted(image.segments, key=lambda s: s.addr)
    nph = len(segs)
    out = bytearray(EHDR.size + PHDR.size * nph)

    # Segment contents, each at an offset congruent to its address modulo PAGE.
    offsets: list[int] = []
    for seg in segs:
        pad = (seg.addr - len(out)) % PAGE
        out += bytes(pad)
        offsets.append(len(out))
        out += seg.data
    phdrs = b"".join(
        PHDR.pack(
            PT_LOAD, off, seg.addr, seg.addr, len(seg.data), max(seg.memsize, len(seg.data)), seg.flags, PAGE
        )
        for seg, off in zip(segs, offsets, strict=True)
    )
    out[EHDR.size : EHDR.size + len(phdrs)] = phdrs

    shstr = _StrTab()
    strtab = _StrTab()
    sections: list[bytes] = [bytes(SHDR.size)]  # index 0: SHN_UNDEF
    spans: list[tuple[int, int, int]] = []  # (start, end, section index) for st_shndx
    for i, (seg, off) in enumerate(zip(segs, offsets, strict=True)):
        name = shstr.add(_section_name(seg, i))
        if seg.data:
            sections.append(
                SHDR.pack(name, SHT_PROGBITS, _section_flags(seg), seg.addr, off, len(seg.data), 0, 0, 4, 0)
            )
        else:
            sections.append(
                SHDR.pack(name, SHT_NOBITS, _section_flags(seg), seg.addr, off, seg.memsize, 0, 0, 4, 0)
            )
        spans.append((seg.addr, seg.addr + max(seg.memsize, len(seg.data)), len(sections) - 1))

    symtab = bytearray(SYM.size)  # index 0: the null symbol
    for sym_name, value in sorted(image.symbols.items(), key=lambda kv: (kv[1], kv[0])):
        shndx = SHN_ABS
        for start, end, idx in spans:
            if start <= value < end:
                shndx = idx
                break
        info = (STB_GLOBAL << 4) | STT_NOTYPE
        symtab += SYM.pack(strtab.add(sym_name), value & 0xFFFFFFFF, 0, info, 0, shndx)

    attributes = riscv_attributes()
    attr_off = len(out)
    out += attributes
    sections.append(
        SHDR.pack(
            shstr.add(".riscv.attributes"), SHT_RISCV_ATTRIBUTES, 0, 0, attr_off, len(attributes), 0, 0, 1, 0
        )
    )
    while len(out) % 4:
        out.append(0)
    symtab_off = len(out)
    out += symtab
    strtab_off = len(out)
    out += strtab.data
    symtab_idx = len(sections)
    strtab_idx = symtab_idx + 1
    sections.append(
        SHDR.pack(shstr.add(".symtab"), SHT_SYMTAB, 0, 0, symtab_off, len(symtab), strtab_idx, 1, 4, SYM.size)
    )
    sections.append(
        SHDR.pack(shstr.add(".strtab"), SHT_STRTAB, 0, 0, strtab_off, len(strtab.data), 0, 0, 1, 0)
    )
    shstr_name = shstr.add(".shstrtab")
    shstr_off = len(out)
    out += shstr.data
    sections.append(SHDR.pack(shstr_name, SHT_STRTAB, 0, 0, shstr_off, len(shstr.data), 0, 0, 1, 0))
    while len(out) % 4:
        out.append(0)
    shoff = len(out)
    for sh in sections:
        out += sh

    ident = ELF_MAGIC + bytes([ELFCLASS32, ELFDATA2LSB, EV_CURRENT]) + bytes(9)
    out[: EHDR.size] = EHDR.pack(
        ident,
        ET_EXEC,
        EM_RISCV,
        EV_CURRENT,
        image.entry & 0xFFFFFFFF,
        EHDR.size if nph else 0,
        shoff,
        0,
        EHDR.size,
        PHDR.size,
        nph,
        SHDR.size,
        len(sections),
        len(sections) - 1,
    )
    return bytes(out)
