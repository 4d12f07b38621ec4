"""RV32I instructions, one at a time, with their edge cases (Unpriv chapter 2)."""

from __future__ import annotations

import pytest
from encode import enc, machine_with, step

from virtlevels.machine.hart import Hart
from virtlevels.machine.isa.encodings import ENCODINGS
from virtlevels.machine.isa.semantics import SEMANTICS
from virtlevels.machine.isa.table import InstructionTable
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.memmap import RAM_BASE

M32 = 0xFFFFFFFF
DATA = RAM_BASE + 0x1000


def run1(word: int, **regs: int) -> tuple[PhysicalMachine, Hart]:
    m = machine_with([word])
    h = m.harts[0]
    for name, value in regs.items():
        h.x[int(name[1:])] = value & M32
    h.csr.mtvec = RAM_BASE + 0x800  # a trap lands somewhere harmless
    step(m)
    return m, h


def test_every_encoding_has_semantics_and_decodes_to_itself() -> None:
    table = InstructionTable()
    for e in ENCODINGS:
        assert e.name in SEMANTICS
        assert table.lookup(e.match).name == e.name, e.name  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "a", "imm", "want"),
    [
        ("addi", 5, -6, M32),  # sign-extended immediate, wraps
        ("addi", 0x7FFFFFFF, 1, 0x80000000),  # signed overflow is ignored
        ("slti", 0xFFFFFFFF, 0, 1),  # -1 < 0
        ("slti", 1, -1, 0),
        ("sltiu", 5, -1, 1),  # imm sign-extends to 0xFFFFFFFF, then unsigned compare
        ("sltiu", 0, 1, 1),  # seqz
        ("sltiu", 7, 1, 0),
        ("xori", 0x0F0F0F0F, -1, 0xF0F0F0F0),  # not
        ("ori", 0x10, -2048, 0xFFFFF810),
        ("andi", 0xFFFFFFFF, 0x7FF, 0x7FF),
        ("slli", 1, 31, 0x80000000),
        ("srli", 0x80000000, 31, 1),
        ("srai", 0x80000000, 31, M32),
        ("srai", 0x40000000, 30, 1),
    ],
)
def test_register_immediate(name: str, a: int, imm: int, want: int) -> None:
    _, h = run1(enc(name, rd=3, rs1=1, imm=imm), x1=a)
    assert h.x[3] == want


@pytest.mark.parametrize(
    ("name", "a", "b", "want"),
    [
        ("add", 0xFFFFFFFF, 1, 0),
        ("sub", 0, 1, M32),
        ("sll", 1, 63, 0x80000000),  # only rs2[4:0] counts
        ("srl", 0x80000000, 31, 1),
        ("sra", 0x80000000, 31 + 32, M32),
        ("slt", 0x80000000, 0, 1),
        ("sltu", 0x80000000, 0, 0),
        ("sltu", 0, 5, 1),  # snez
        ("xor", 0xFF00, 0x0FF0, 0xF0F0),
        ("or", 0xFF00, 0x0FF0, 0xFFF0),
        ("and", 0xFF00, 0x0FF0, 0x0F00),
    ],
)
def test_register_register(name: str, a: int, b: int, want: int) -> None:
    _, h = run1(enc(name, rd=3, rs1=1, rs2=2), x1=a, x2=b)
    assert h.x[3] == want


@pytest.mark.parametrize("word", [enc("addi", rd=0, rs1=1, imm=5), enc("lui", rd=0, imm=0x12345000),
                                  enc("add", rd=0, rs1=1, rs2=1), enc("jal", rd=0, imm=8)])  # fmt: skip
def test_writes_to_x0_are_discarded(word: int) -> None:
    _, h = run1(word, x1=7)
    assert h.x[0] == 0


def test_lui_and_auipc() -> None:
    _, h = run1(enc("lui", rd=1, imm=0xFFFFF000))
    assert h.x[1] == 0xFFFFF000
    _, h = run1(enc("auipc", rd=1, imm=0x1000))
    assert h.x[1] == RAM_BASE + 0x1000


def test_jal_links_and_jumps() -> None:
    _, h = run1(enc("jal", rd=1, imm=-4))
    assert h.x[1] == RAM_BASE + 4
    assert h.pc == RAM_BASE - 4


def test_jalr_clears_low_bit_and_allows_rd_equal_rs1() -> None:
    _, h = run1(enc("jalr", rd=5, rs1=5, imm=1), x5=RAM_BASE + 0x100)
    assert h.pc == RAM_BASE + 0x100  # 0x101 with bit 0 cleared
    assert h.x[5] == RAM_BASE + 4


def test_jalr_to_misaligned_target_traps_on_the_jump() -> None:
    _, h = run1(enc("jalr", rd=1, rs1=5, imm=2), x5=RAM_BASE)
    assert h.csr.mcause == 0 and h.csr.mtval == RAM_BASE + 2 and h.csr.mepc == RAM_BASE
    assert h.x[1] == 0  # the jump did not happen, so no link


@pytest.mark.parametrize(
    ("name", "a", "b", "taken"),
    [
        ("beq", 3, 3, True), ("beq", 3, 4, False), ("bne", 3, 4, True), ("bne", 3, 3, False),
        ("blt", M32, 0, True), ("blt", 0, M32, False), ("bge", 0, M32, True), ("bge", M32, M32, True),
        ("bltu", 0, M32, True), ("bltu", M32, 0, False), ("bgeu", M32, 0, True), ("bgeu", 0, 1, False),
    ],
)  # fmt: skip
def test_branches(name: str, a: int, b: int, taken: bool) -> None:
    _, h = run1(enc(name, rs1=1, rs2=2, imm=-16), x1=a, x2=b)
    assert h.pc == (RAM_BASE - 16 if taken else RAM_BASE + 4)


def test_misaligned_branch_traps_only_when_taken() -> None:
    _, h = run1(enc("beq", rs1=1, rs2=2, imm=6), x1=1, x2=2)
    assert h.pc == RAM_BASE + 4 and h.trap_count == 0
    _, h = run1(enc("beq", rs1=1, rs2=2, imm=6), x1=1, x2=1)
    assert h.csr.mcause == 0 and h.csr.mtval == RAM_BASE + 6


@pytest.mark.parametrize(
    ("name", "offset", "want"),
    [("lb", 0, 0xFFFFFF80), ("lbu", 0, 0x80), ("lh", 0, 0xFFFF8180), ("lhu", 0, 0x8180),
     ("lw", 0, 0x7F828180), ("lb", 3, 0x7F), ("lh", 2, 0x7F82)],
)  # fmt: skip
def test_loads_extend_correctly(name: str, offset: int, want: int) -> None:
    m = machine_with([enc(name, rd=3, rs1=1, imm=offset)])
    m.memory.write(DATA, 4, 0x7F828180)
    m.harts[0].x[1] = DATA
    step(m)
    assert m.harts[0].x[3] == want


def test_load_to_x0_still_reads() -> None:
    m = machine_with([enc("lw", rd=0, rs1=1)])
    m.harts[0].x[1] = 0x1000  # unmapped: the load must still fault
    step(m)
    assert m.harts[0].csr.mcause == 5


@pytest.mark.parametrize(("name", "width"), [("sb", 1), ("sh", 2), ("sw", 4)])
def test_stores_write_only_their_width(name: str, width: int) -> None:
    m = machine_with([enc(name, rs1=1, rs2=2, imm=-4)])
    m.memory.write(DATA, 4, 0xAAAAAAAA)
    m.harts[0].x[1] = DATA + 4
    m.harts[0].x[2] = 0x11223344
    step(m)
    mask = (1 << (8 * width)) - 1
    assert m.memory.read(DATA, 4) == (0xAAAAAAAA & ~mask) | (0x11223344 & mask)


@pytest.mark.parametrize(
    ("word", "addr", "cause", "tval"),
    [
        (enc("lw", rd=1, rs1=2, imm=2), DATA, 4, DATA + 2),  # misaligned load
        (enc("lh", rd=1, rs1=2, imm=1), DATA, 4, DATA + 1),
        (enc("sw", rs1=2, rs2=1, imm=1), DATA, 6, DATA + 1),  # misaligned store
        (enc("lw", rd=1, rs1=2), 0x2000_0000, 5, 0x2000_0000),  # nothing there: load access fault
        (enc("sw", rs1=2, rs2=1), 0x2000_0000, 7, 0x2000_0000),  # store access fault
        (enc("lw", rd=1, rs1=2), 0x7FFF_FFFC, 5, 0x7FFF_FFFC),  # just below RAM
    ],
)
def test_memory_faults_are_traps_with_the_address(word: int, addr: int, cause: int, tval: int) -> None:
    m = machine_with([word])
    h = m.harts[0]
    h.x[2] = addr
    step(m)
    assert (h.csr.mcause, h.csr.mtval, h.csr.mepc) == (cause, tval, RAM_BASE)


def test_fetch_from_nowhere_is_an_instruction_access_fault() -> None:
    _, h = run1(enc("jalr", rs1=1), x1=0x4000_0000)
    step(h.machine)
    assert h.csr.mcause == 1 and h.csr.mtval == 0x4000_0000 and h.csr.mepc == 0x4000_0000


@pytest.mark.parametrize("word", [0x00000000, 0xFFFFFFFF, 0x0000707F, enc("add", rd=1) | (1 << 26)])
def test_illegal_instruction_reports_its_bits(word: int) -> None:
    _, h = run1(word)
    assert h.csr.mcause == 2 and h.csr.mtval == word


def test_shift_immediate_with_bit_5_is_illegal_on_rv32() -> None:
    word = enc("slli", rd=1, rs1=1, imm=1) | (1 << 25)  # shamt[5] = 1 is reserved on RV32
    _, h = run1(word)
    assert h.csr.mcause == 2


def test_ecall_and_ebreak() -> None:
    _, h = run1(enc("ecall"))
    assert h.csr.mcause == 11 and h.csr.mtval == 0  # from M-mode
    _, h = run1(enc("ebreak"))
    assert h.csr.mcause == 3 and h.csr.mtval == RAM_BASE


def test_fence_and_fence_i_are_no_ops_for_the_interpreter() -> None:
    m = machine_with([enc("fence", imm=0xFF), enc("fence.i"), enc("addi", rd=1, imm=1)])
    m.run(max_instructions=3)
    assert m.harts[0].x[1] == 1 and m.harts[0].trap_count == 0


def test_self_modifying_code_runs_the_new_instruction() -> None:
    # sw x2, 8(x1) overwrites the third instruction with "addi x3, x0, 42" before it runs.
    m = machine_with([enc("sw", rs1=1, rs2=2, imm=8), enc("fence.i"), enc("addi", rd=3, imm=1)])
    h = m.harts[0]
    h.x[1] = RAM_BASE
    h.x[2] = enc("addi", rd=3, imm=42)
    m.run(max_instructions=3)
    assert h.x[3] == 42
