"""Classic BPF: every instruction, the kernel's checks, the disassembler."""

from __future__ import annotations

import struct

import pytest
import sandbox_util  # noqa: F401  (puts plugins/ on sys.path)
from virtlevels_sandbox import bpf
from virtlevels_sandbox.bpf import (
    BPF_A,
    BPF_ABS,
    BPF_ADD,
    BPF_ALU,
    BPF_AND,
    BPF_B,
    BPF_DIV,
    BPF_H,
    BPF_IMM,
    BPF_IND,
    BPF_JA,
    BPF_JEQ,
    BPF_JGE,
    BPF_JGT,
    BPF_JMP,
    BPF_JSET,
    BPF_K,
    BPF_LD,
    BPF_LDX,
    BPF_LEN,
    BPF_LSH,
    BPF_MEM,
    BPF_MISC,
    BPF_MOD,
    BPF_MSH,
    BPF_MUL,
    BPF_NEG,
    BPF_OR,
    BPF_RET,
    BPF_RSH,
    BPF_ST,
    BPF_STX,
    BPF_SUB,
    BPF_TAX,
    BPF_TXA,
    BPF_W,
    BPF_X,
    BPF_XOR,
    BpfError,
    Insn,
    jump,
    stmt,
)

RET_A = stmt(BPF_RET | BPF_A)


def alu(op: int, a: int, operand: int, via_x: bool) -> int:
    prog = [stmt(BPF_LD | BPF_IMM, a)]
    if via_x:
        prog += [stmt(BPF_LDX | BPF_IMM, operand), stmt(BPF_ALU | op | BPF_X)]
    else:
        prog += [stmt(BPF_ALU | op | BPF_K, operand)]
    prog.append(RET_A)
    bpf.check_classic(prog)
    return bpf.run(prog, b"")[0]


@pytest.mark.parametrize("via_x", [False, True])
@pytest.mark.parametrize(
    "op,a,b,want",
    [
        (BPF_ADD, 0xFFFFFFFF, 2, 1),
        (BPF_SUB, 1, 2, 0xFFFFFFFF),
        (BPF_MUL, 0x10000, 0x10001, 0x10000),
        (BPF_DIV, 7, 2, 3),
        (BPF_MOD, 7, 4, 3),
        (BPF_OR, 0xF0, 0x0F, 0xFF),
        (BPF_AND, 0xF0, 0x3C, 0x30),
        (BPF_XOR, 0xFF, 0x0F, 0xF0),
        (BPF_LSH, 0x80000001, 1, 2),
        (BPF_RSH, 0x80000000, 31, 1),
    ],
)
def test_alu_ops_with_k_and_x(op, a, b, want, via_x):
    assert alu(op, a, b, via_x) == want


def test_neg_tax_txa_and_scratch_memory():
    prog = [
        stmt(BPF_LD | BPF_IMM, 5),
        stmt(BPF_ALU | BPF_NEG),
        stmt(BPF_ST, 3),
        stmt(BPF_MISC | BPF_TAX),
        stmt(BPF_LD | BPF_IMM, 0),
        stmt(BPF_MISC | BPF_TXA),
        stmt(BPF_STX, 4),
        stmt(BPF_LDX | BPF_MEM, 3),
        stmt(BPF_LD | BPF_MEM, 4),
        stmt(BPF_ALU | BPF_ADD | BPF_X),
        RET_A,
    ]
    bpf.check_classic(prog)
    assert bpf.run(prog, b"") == ((-10) & 0xFFFFFFFF, len(prog))


def test_division_by_zero_x_returns_zero_at_run_time():
    prog = [
        stmt(BPF_LD | BPF_IMM, 9),
        stmt(BPF_LDX | BPF_IMM, 0),
        stmt(BPF_ALU | BPF_DIV | BPF_X),
        stmt(BPF_RET | BPF_K, 77),
    ]
    bpf.check_classic(prog)
    assert bpf.run(prog, b"")[0] == 0


def test_loads_abs_ind_len_msh_in_each_size():
    data = bytes(range(16))
    cases = [
        (stmt(BPF_LD | BPF_W | BPF_ABS, 4), int.from_bytes(data[4:8], "little")),
        (stmt(BPF_LD | BPF_H | BPF_ABS, 2), int.from_bytes(data[2:4], "little")),
        (stmt(BPF_LD | BPF_B | BPF_ABS, 9), 9),
        (stmt(BPF_LD | BPF_W | BPF_LEN), 16),
    ]
    for ins, want in cases:
        assert bpf.run([ins, RET_A], data)[0] == want
    ind = [stmt(BPF_LDX | BPF_IMM, 3), stmt(BPF_LD | BPF_B | BPF_IND, 2), RET_A]
    assert bpf.run(ind, data)[0] == 5
    ind_h = [stmt(BPF_LDX | BPF_IMM, 3), stmt(BPF_LD | BPF_H | BPF_IND, 1), RET_A]
    assert bpf.run(ind_h, data)[0] == int.from_bytes(data[4:6], "little")
    ind_w = [stmt(BPF_LDX | BPF_IMM, 4), stmt(BPF_LD | BPF_W | BPF_IND, 4), RET_A]
    assert bpf.run(ind_w, data)[0] == int.from_bytes(data[8:12], "little")
    msh = [stmt(BPF_LDX | BPF_B | BPF_MSH, 7), stmt(BPF_MISC | BPF_TXA), RET_A]
    assert bpf.run(msh, data)[0] == (7 & 0xF) * 4
    ldx_len = [stmt(BPF_LDX | BPF_W | BPF_LEN), stmt(BPF_MISC | BPF_TXA), RET_A]
    assert bpf.run(ldx_len, data)[0] == 16
    # Out of the data: the program returns 0.
    assert bpf.run([stmt(BPF_LD | BPF_W | BPF_ABS, 14), stmt(BPF_RET | BPF_K, 1)], data)[0] == 0


@pytest.mark.parametrize("via_x", [False, True])
def test_conditional_jumps_and_ja(via_x):
    def branch(op: int, a: int, k: int) -> int:
        src = BPF_X if via_x else BPF_K
        prog = [
            stmt(BPF_LD | BPF_IMM, a),
            stmt(BPF_LDX | BPF_IMM, k),
            jump(BPF_JMP | op | src, k, 1, 0),
            stmt(BPF_RET | BPF_K, 0),
            stmt(BPF_RET | BPF_K, 1),
        ]
        bpf.check_classic(prog)
        return bpf.run(prog, b"")[0]

    assert branch(BPF_JEQ, 5, 5) == 1 and branch(BPF_JEQ, 5, 6) == 0
    assert branch(BPF_JGT, 6, 5) == 1 and branch(BPF_JGT, 5, 5) == 0
    assert branch(BPF_JGE, 5, 5) == 1 and branch(BPF_JGE, 4, 5) == 0
    assert branch(BPF_JSET, 6, 2) == 1 and branch(BPF_JSET, 4, 2) == 0
    # Unsigned comparisons: 0xffffffff is greater than 1.
    assert branch(BPF_JGT, 0xFFFFFFFF, 1) == 1
    ja = [stmt(BPF_JMP | BPF_JA, 1), stmt(BPF_RET | BPF_K, 0), stmt(BPF_RET | BPF_K, 9)]
    assert bpf.run(ja, b"") == (9, 2)


@pytest.mark.parametrize(
    "prog,msg",
    [
        ([], "1..4096"),
        ([stmt(BPF_RET | BPF_K, 0)] * 4097, "1..4096"),
        ([stmt(BPF_LD | BPF_IMM, 1)], "last instruction"),
        ([jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0), stmt(BPF_RET | BPF_K, 0)], "leaves the program"),
        ([stmt(BPF_JMP | BPF_JA, 5), stmt(BPF_RET | BPF_K, 0)], "leaves the program"),
        ([stmt(BPF_ALU | BPF_DIV | BPF_K, 0), stmt(BPF_RET | BPF_K, 0)], "division by constant zero"),
        ([stmt(BPF_ALU | BPF_LSH | BPF_K, 32), stmt(BPF_RET | BPF_K, 0)], "shift"),
        ([stmt(BPF_LD | BPF_MEM, 2), stmt(BPF_RET | BPF_K, 0)], "before it is written"),
        ([stmt(BPF_ST, 16), stmt(BPF_RET | BPF_K, 0)], "slot 16"),
        ([Insn(0xFFFF), stmt(BPF_RET | BPF_K, 0)], "unknown opcode"),
        ([Insn(BPF_RET | BPF_K, 0, 0, -1)], "out of range"),
    ],
)
def test_classic_checker_rejects(prog, msg):
    with pytest.raises(BpfError, match=msg):
        bpf.check_classic(prog)


def test_scratch_slot_written_on_only_one_path_is_rejected():
    prog = [jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1), stmt(BPF_ST, 0), stmt(BPF_LD | BPF_MEM, 0), RET_A]
    with pytest.raises(BpfError, match="before it is written"):
        bpf.check_classic(prog)


@pytest.mark.parametrize(
    "ins,msg",
    [
        (stmt(BPF_LD | BPF_W | BPF_ABS, 2), "aligned"),
        (stmt(BPF_LD | BPF_W | BPF_ABS, 64), "aligned"),
        (stmt(BPF_LD | BPF_H | BPF_ABS, 0), "32-bit absolute"),
        (stmt(BPF_LD | BPF_B | BPF_ABS, 0), "32-bit absolute"),
        (stmt(BPF_LD | BPF_W | BPF_IND, 0), "32-bit absolute"),
        (stmt(BPF_LDX | BPF_B | BPF_MSH, 0), "32-bit absolute"),
        (stmt(BPF_ALU | BPF_MOD | BPF_K, 3), "BPF_MOD"),
    ],
)
def test_seccomp_checker_allows_only_aligned_word_loads_inside_seccomp_data(ins, msg):
    with pytest.raises(BpfError, match=msg):
        bpf.check_seccomp([ins, stmt(BPF_RET | BPF_K, 0)])
    for off in range(0, 64, 4):  # nr, arch, instruction_pointer, args[0..5]: every aligned word is fine
        bpf.check_seccomp([stmt(BPF_LD | BPF_W | BPF_ABS, off), RET_A])


def test_pack_unpack_roundtrip_and_disassembler():
    prog = (
        stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 63, 0, 1),
        stmt(BPF_RET | BPF_K, 0x7FFF0000),
        stmt(BPF_RET | BPF_K, 0x00050001),
    )
    raw = bpf.pack(prog)
    assert len(raw) == 32 and struct.unpack_from("<HBBI", raw, 8) == (0x15, 0, 1, 63)
    assert bpf.unpack(raw) == prog
    text = bpf.disassemble(prog).splitlines()
    assert text[0] == "0: ld [0]    ; nr"
    assert text[1] == "1: jeq #0x3f, 2, 3"
    assert text[2].endswith("; ALLOW") and text[3].endswith("; ERRNO(1)")
    with pytest.raises(BpfError):
        bpf.unpack(raw[:-1])


def test_constant_result_gives_up_on_argument_loads():
    prog = [
        stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        jump(BPF_JMP | BPF_JEQ | BPF_K, 5, 0, 1),
        stmt(BPF_LD | BPF_W | BPF_ABS, 16),
        stmt(BPF_RET | BPF_K, 1),
    ]
    assert bpf.constant_result(prog, 6, 0) == (1, 3)
    assert bpf.constant_result(prog, 5, 0) is None
