"""The disassembler: objdump's text, aliases, unknown words, extension rows, and a round trip
through the assembler for every row of the instruction table."""

from __future__ import annotations

import random

import pytest

from virtlevels.machine.asm import assemble
from virtlevels.machine.disasm import disassemble, disassemble_image
from virtlevels.machine.isa import encodings as E
from virtlevels.machine.isa.encodings import ENCODINGS, Encoding


@pytest.mark.parametrize(
    ("word", "pc", "aliases", "text"),
    [
        (0x00150513, 0, True, "add\ta0,a0,1"),
        (0x00150513, 0, False, "addi\ta0,a0,1"),
        (0xFFF00513, 0, True, "li\ta0,-1"),
        (0x00058513, 0, True, "mv\ta0,a1"),
        (0x00000013, 0, True, "nop"),
        (0x00008067, 0, True, "ret"),
        (0x00008067, 0, False, "jalr\tzero,0(ra)"),
        (0x0000006F, 0x8000_0000, True, "j\t80000000"),
        (0xFE051EE3, 0x8000_0018, True, "bnez\ta0,80000014"),
        (0x30002573, 0, True, "csrr\ta0,mstatus"),
        (0x30551073, 0, True, "csrw\tmtvec,a0"),
        (0x30002573, 0, False, "csrrs\ta0,mstatus,zero"),
        (0x7C002573, 0, True, "csrr\ta0,0x7c0"),
        (0xC0002573, 0, True, "rdcycle\ta0"),
        (0x80000537, 0, True, "lui\ta0,0x80000"),
        (0x01F59513, 0, True, "sll\ta0,a1,0x1f"),
        (0x06B6252F, 0, True, "amoadd.w.aqrl\ta0,a1,(a2)"),
        (0x1405A52F, 0, True, "lr.w.aq\ta0,(a1)"),
        (0x0FF0000F, 0, True, "fence"),
        (0x0310000F, 0, True, "fence\trw,w"),
        (0x8330000F, 0, False, "fence.tso"),
        (0x12000073, 0, True, "sfence.vma"),
        (0x12050073, 0, True, "sfence.vma\ta0"),
        (0xC0001073, 0, True, "unimp"),
        (0x10500073, 0, True, "wfi"),
        (0x0000100F, 0, True, "fence.i"),
        (0x0000A503, 0, True, "lw\ta0,0(ra)"),
        (0x00002503, 0, True, "lw\ta0,0(zero) # 0"),
        (0xFFFFFFFF, 0, True, ".4byte\t0xffffffff"),
        (0x4A50000F, 0, True, ".4byte\t0x4a50000f"),  # fence with reserved fields set
    ],
)
def test_objdump_text(word, pc, aliases, text):
    assert disassemble(word, pc, aliases=aliases) == text


def test_branch_targets_name_symbols():
    assert disassemble(0x0000006F, 0x8000_0008, symbols={"_start": 0x8000_0000}) == "j\t80000008 <_start+0x8>"


def test_rows_from_an_extension_disassemble():
    hfence = Encoding("hfence.gvma", E.SFENCE, 0x62000073, 0xFE007FFF, "rs1, rs2", "system", "H")
    rows = (*ENCODINGS, hfence)
    assert disassemble(0x62B50073, encodings=rows) == "hfence.gvma\ta0,a1"
    assert disassemble(0x62B50073).startswith(".4byte")
    image = assemble("hfence.gvma a0, a1\n", encodings=rows)
    assert image.segments[0].data == (0x62B50073).to_bytes(4, "little")


def test_listing_has_symbol_headers_and_objdump_columns():
    image = assemble("_start: li a0, 1\nloop: j loop\n")
    assert disassemble_image(image) == [
        "",
        "80000000 <_start>:",
        "80000000:\t00100513          \tli\ta0,1",
        "",
        "80000004 <loop>:",
        "80000004:\t0000006f          \tj\t80000004 <loop>",
    ]


def test_listing_tracks_lui_and_auipc_for_address_comments():
    image = assemble("_start: auipc a0, 0\naddi a0, a0, 12\nlw a1, 8(a0)\nv: .word 0\n")
    lines = disassemble_image(image)
    assert lines[3].endswith("add\ta0,a0,12 # 8000000c <v>")
    assert lines[4].endswith("lw\ta1,8(a0)")  # the auipc value was used up by the addi


def _assembler_line(text: str, row: Encoding) -> str:
    """objdump's no-aliases text as assembler input: branch targets are bare hex addresses."""
    line = text.split(" # ")[0].replace("\t", " ").replace("unknown", "0")  # objdump's empty fence set
    if row.fmt in (E.B, E.J):
        head, _, target = line.rpartition(",")
        line = f"{head},0x{target}"
    return line


@pytest.mark.parametrize("row", ENCODINGS, ids=lambda r: r.name)
def test_every_row_round_trips_through_the_assembler(row):
    rnd = random.Random(row.name)
    base = 0x8000_0000
    for _ in range(20):
        word = (rnd.getrandbits(32) & ~row.mask) | row.match
        if row.fmt == E.FENCE:
            word &= 0x0FF0707F  # objdump-valid fences only (fm, rs1, rd zero)
        if row.name == "fence.i":
            word = row.match
        text = disassemble(word, base, aliases=False)
        assert not text.startswith(".4byte"), hex(word)
        line = _assembler_line(text, row)
        got = assemble(line, base=base).segments[0].data
        assert int.from_bytes(got, "little") == word, f"{text!r} -> {line!r}"
