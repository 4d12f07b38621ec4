"""Directives, sections, symbols and expressions."""

from __future__ import annotations

import pytest
from asm_util import seg, words

from virtlevels.errors import AssemblyError
from virtlevels.machine.asm import assemble, assemble_file
from virtlevels.machine.image import PF_R, PF_W, PF_X


def test_sections_follow_text_in_order_aligned_and_entry_is_start():
    img = assemble(
        ".data\nd: .byte 1\n.bss\nb: .space 8\n.rodata\nr: .byte 2\n.text\nnop\n_start: nop\n",
        base=0x1000,
    )
    assert [s.name for s in img.segments] == [".text", ".rodata", ".data", ".bss"]
    text, ro, data, bss = img.segments
    assert (text.addr, ro.addr, data.addr, bss.addr) == (0x1000, 0x1010, 0x1020, 0x1030)
    assert (text.flags, ro.flags, data.flags, bss.flags) == (PF_R | PF_X, PF_R, PF_R | PF_W, PF_R | PF_W)
    assert bss.data == b"" and bss.memsize == 8
    assert img.entry == 0x1004
    assert img.symbols == {"_start": 0x1004, "r": 0x1010, "d": 0x1020, "b": 0x1030}


def test_entry_defaults_to_base_and_origins_place_groups():
    img = assemble("nop\n.data\nx: .word 1\n", origins={".data": 0x9000_0000})
    assert img.entry == 0x8000_0000
    assert seg(img, ".data").addr == 0x9000_0000 and img.symbols["x"] == 0x9000_0000


def test_named_sections_join_groups_by_name_and_flags():
    img = assemble(
        '.section .text.init, "ax"\n_start: nop\n.section .tohost, "aw", @progbits\ntohost: .dword 0\n'
        '.section .sbss\nz: .space 4\n.section .mydata, "a"\nk: .byte 9\n'
    )
    assert img.symbols["tohost"] == seg(img, ".data").addr
    assert img.symbols["k"] == seg(img, ".rodata").addr
    assert seg(img, ".bss").memsize == 4


def test_data_directives_are_little_endian_and_resolve_labels():
    img = assemble(
        ".data\na: .byte 1, -1, 'A'\n.half 0x1234, -2\n.short 7\n.2byte 8\n.word a, b - a\n"
        ".long 3\n.int 4\n.4byte 5\n.dword -2\n.quad 1\n.8byte 2\nb:\n"
    )
    d = seg(img, ".data").data
    base = img.symbols["a"]
    assert d[:3] == b"\x01\xff\x41"
    assert d[3:11] == bytes.fromhex("3412feff07000800")
    assert int.from_bytes(d[11:15], "little") == base
    assert int.from_bytes(d[15:19], "little") == len(d)
    assert d[19:31] == bytes.fromhex("030000000400000005000000")
    assert d[31:] == bytes.fromhex("feffffffffffffff01000000000000000200000000000000")


def test_strings_decode_c_escapes():
    d = seg(
        assemble(r".data" "\n" r'.ascii "a\tb\n", "\x41\101\"\\"' "\n" r'.asciz "z"' "\n" r'.string ""'),
        ".data",
    )
    assert d.data == b'a\tb\nAA"\\z\0\0'


def test_space_zero_skip_fill_and_org():
    d = seg(
        assemble(".data\n.space 3, 0xaa\n.zero 2\n.skip 1\n.fill 2, 2, 0x0102\n.org 16, 0xee\n.byte 9\n"),
        ".data",
    )
    assert d.data == bytes.fromhex("aaaaaa00000002010201eeeeeeeeeeee09")


def test_align_pads_data_with_zeros_and_code_with_nops():
    d = seg(
        assemble(".data\n.byte 1\n.align 2\n.byte 2\n.balign 8\n.byte 3\n.p2align 1, 0x55\n.byte 4"), ".data"
    )
    assert d.data == b"\x01\0\0\0\x02\0\0\0\x03\x55\x04"
    assert words("nop\n.align 4\nebreak") == [0x13, 0x13, 0x13, 0x13, 0x00100073, 0x13, 0x13, 0x13]


def test_equ_set_and_assignment_take_the_value_at_each_use():
    w = words(
        ".equ N, 3\n.set C, 1\naddi a0, a0, C\n.set C, C + 1\naddi a0, a0, C\nX = N * 2\naddi a0, a0, X\n"
    )
    assert [x >> 20 for x in w] == [1, 2, 6]


def test_equ_may_refer_forward_and_globl_exports_it():
    img = assemble(".globl SIZE\n.equ SIZE, end - start\nstart: nop\nnop\nend:\n")
    assert img.symbols["SIZE"] == 8


def test_expressions_follow_gnu_precedence_and_number_forms():
    d = seg(
        assemble(
            ".data\n.word 1 + 2 & 3, 2 * 3 + 4, (1 << 4) | 1, -7 / 2, -7 % 2, 010, 0b11, 0x1F"
            "\n.word '\\n', ~0 >> 60\n.word 1 == 1, 2 < 1, !5, 10 - 2 - 3"
        ),
        ".data",
    ).data
    vals = [int.from_bytes(d[i : i + 4], "little", signed=True) for i in range(0, len(d), 4)]
    assert vals == [3, 10, 17, -3, -1, 8, 3, 31, 10, 15, -1, 0, 0, 5]


def test_hi_lo_and_pcrel_relocation_operators():
    img = assemble(
        "_start: lui a0, %hi(v)\naddi a0, a0, %lo(v)\n1: auipc a1, %pcrel_hi(v)\nlw a1, %pcrel_lo(1b)(a1)\n"
        ".data\n.space 0x800\nv: .word 1\n",
        origins={".data": 0x8000_2000},
    )
    w = [int.from_bytes(img.segments[0].data[i : i + 4], "little") for i in range(0, 16, 4)]
    v = img.symbols["v"]
    assert v == 0x8000_2800
    assert w[0] >> 12 == (v >> 12) + 1  # rounded up because the low part (0x800) is negative
    assert (((w[0] >> 12) << 12) + _sext12(w[1] >> 20)) & 0xFFFFFFFF == v
    auipc_pc = 0x8000_0008
    assert ((w[2] >> 12) << 12) + _sext12(w[3] >> 20) == v - auipc_pc


def _sext12(v: int) -> int:
    return v - 4096 if v & 0x800 else v


def test_numeric_local_labels_resolve_to_nearest_definition():
    w = words("1: nop\n1: beqz a0, 1b\nbnez a0, 1f\nj 1b\n1: nop\n")
    assert w[1] == 0x00050063  # beqz to itself (1b is the label on the same line)
    assert w[2] == 0x00051463  # bnez +8
    assert w[3] == 0xFF9FF06F  # j -8


def test_comments_separators_and_ignored_directives():
    w = words(
        '.file "x.c"\n.option push\n.option norvc\n.attribute arch, "rv32ima"\n.ident "gcc"\n'
        "/* block\n comment */ nop # trailing\nnop; nop // also a comment\n.type f, @function\n"
        ".size f, 4\n.option pop\n"
    )
    assert w == [0x13, 0x13, 0x13]


def test_registers_accept_abi_and_numeric_names_and_csr_numbers():
    assert words("add x10, x11, fp\nadd a0, a1, s0\ncsrr t0, 0x300\ncsrr t0, mstatus\n") == [
        0x00858533, 0x00858533, 0x300022F3, 0x300022F3,
    ]  # fmt: skip


def test_bss_holds_no_data():
    with pytest.raises(AssemblyError, match=r"t\.S:2: non-zero data in \.bss"):
        assemble(".bss\n.word 5\n", "t.S")
    with pytest.raises(AssemblyError, match=r"t\.S:2: instructions in \.bss"):
        assemble(".bss\nnop\n", "t.S")


def test_assemble_file_names_the_file(tmp_path):
    p = tmp_path / "prog.S"
    p.write_text("_start: nop\nbogus a0\n")
    with pytest.raises(AssemblyError, match=r"prog\.S:2: unknown instruction `bogus`: bogus a0"):
        assemble_file(p)
    p.write_text(".globl _start\n_start: j _start\n")
    img = assemble_file(p)
    assert img.source == str(p) and img.entry == 0x8000_0000


def test_ten_thousand_lines_assemble():
    src = "_start:\n" + "".join(
        f"l{i}: addi a0, a0, {i % 2000}\n bnez a0, l{i}\n li a1, {i * 4099}\n" for i in range(3400)
    )
    img = assemble(src)
    assert len(img.segments[0].data) > 10_000 * 4 * 0.9
