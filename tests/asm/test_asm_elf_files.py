"""ELF writer and loader: round trips, what other tools read, and malformed input."""

from __future__ import annotations

import struct

import pytest
from elftools.elf.elffile import ELFFile

from virtlevels.errors import ElfError
from virtlevels.machine.asm import assemble
from virtlevels.machine.elf import load_elf, load_elf_file, write_elf
from virtlevels.machine.elf.format import EHDR, PHDR
from virtlevels.machine.image import PF_R, PF_X, Image, Segment

SOURCE = """
.globl _start
_start: la a0, msg
        lw a1, 0(a0)
        j _start
.rodata
msg:    .asciz "hi"
.data
.align 3
tohost: .dword 0
.bss
stack:  .space 256
"""


@pytest.fixture
def image() -> Image:
    return assemble(SOURCE, "prog.S")


def test_round_trip_gives_the_same_image(image):
    back = load_elf(write_elf(image), "prog.elf")
    assert back.segments == image.segments
    assert back.entry == image.entry
    assert back.symbols == image.symbols
    assert back.source == "prog.elf"


def test_writer_is_deterministic(image):
    assert write_elf(image) == write_elf(assemble(SOURCE, "prog.S"))


def test_written_file_has_the_headers_other_tools_need(image, tmp_path):
    path = tmp_path / "p.elf"
    path.write_bytes(write_elf(image))
    with path.open("rb") as f:
        ef = ELFFile(f)
        assert (ef.elfclass, ef.little_endian, ef["e_machine"], ef["e_type"]) == (
            32,
            True,
            "EM_RISCV",
            "ET_EXEC",
        )
        assert ef["e_flags"] == 0 and ef["e_entry"] == image.entry
        loads = [s for s in ef.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert len(loads) == len(image.segments)
        for ph in loads:
            assert ph["p_offset"] % 0x1000 == ph["p_vaddr"] % 0x1000
        names = {s.name: s for s in ef.iter_sections()}
        assert names[".text"]["sh_flags"] == 6 and names[".bss"]["sh_type"] == "SHT_NOBITS"
        syms = {s.name: s["st_value"] for s in names[".symtab"].iter_symbols() if s.name}
        assert syms == image.symbols
    assert load_elf_file(path).symbols["tohost"] == image.symbols["tohost"]


def test_loader_names_segments_and_skips_headers_mapped_below_text():
    # A file whose only PT_LOAD starts at offset 0 (headers included), as ld often makes it.
    text = (0x00000013).to_bytes(4, "little") * 4
    img = Image(
        (Segment(0x8000_0000, text, len(text), PF_R | PF_X, ".text"),), 0x8000_0000, {"_start": 0x8000_0000}
    )
    raw = bytearray(write_elf(img))
    _, _, _, _, _, phoff = EHDR.unpack_from(raw, 0)[:6]
    p = list(PHDR.unpack_from(raw, phoff))
    header_bytes = p[1]  # grow the segment backwards to cover the headers
    p[1], p[2], p[3] = 0, p[2] - header_bytes, p[3] - header_bytes
    p[4] += header_bytes
    p[5] += header_bytes
    PHDR.pack_into(raw, phoff, *p)
    loaded = load_elf(bytes(raw))
    assert loaded.segments == img.segments


def _header(**fields: int) -> bytearray:
    raw = bytearray(
        write_elf(Image((Segment(0x8000_0000, b"\x13\0\0\0", 4, PF_R | PF_X, ".text"),), 0x8000_0000))
    )
    for offset, value, fmt in fields.values():  # type: ignore[misc]
        struct.pack_into(fmt, raw, offset, value)
    return raw


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"x\.elf: not an ELF file"),
        (b"#!/bin/sh\n", r"not an ELF file"),
        (b"\x7fELF\x01\x01", r"truncated ELF header"),
        (b"\x7fELF\x02\x01\x01" + bytes(60), r"not a 32-bit ELF file \(EI_CLASS is ELFCLASS64\)"),
        (b"\x7fELF\x01\x02\x01" + bytes(60), r"not a little-endian ELF file"),
        (b"\x7fELF\x01\x01\x01" + bytes(20), r"truncated ELF header \(27 bytes, need 52\)"),
    ],
)
def test_malformed_headers_are_rejected(data, message):
    with pytest.raises(ElfError, match=message):
        load_elf(data, "x.elf")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"machine": (18, 62, "<H")}, r"not a RISC-V ELF file \(x86-64\)"),
        ({"type": (16, 1, "<H")}, r"not an executable \(a relocatable object; link it first\)"),
        ({"type": (16, 3, "<H")}, r"not an executable \(a shared object or PIE"),
        ({"phnum": (44, 0, "<H")}, r"no program headers"),
        ({"phentsize": (42, 16, "<H")}, r"bad program header size 16"),
        ({"phoff": (28, 0xFFFF0, "<I")}, r"truncated program header table"),
        ({"p_offset": (52 + 4, 0xFFFFF, "<I")}, r"truncated segment 0"),
        ({"p_filesz": (52 + 16, 0x100, "<I")}, r"segment 0: file size 0x100 larger than memory size 0x4"),
        ({"p_type": (52, 6, "<I")}, r"no loadable \(PT_LOAD\) segments"),
        ({"shoff": (32, 0xFFFFFF, "<I")}, r"truncated section header table"),
    ],
)
def test_malformed_executables_are_rejected(patch, message):
    with pytest.raises(ElfError, match="f.elf: " + message):
        load_elf(bytes(_header(**patch)), "f.elf")


def test_truncated_file_is_an_elf_error_not_a_traceback(image):
    data = write_elf(image)
    for cut in range(0, len(data), 7):
        try:
            load_elf(data[:cut], "cut.elf")
        except ElfError:
            pass


def test_missing_file_is_an_elf_error(tmp_path):
    with pytest.raises(ElfError, match=r"nope\.elf: cannot read"):
        load_elf_file(tmp_path / "nope.elf")
