"""Classic BPF as seccomp uses it: instructions, the kernel's checks, an interpreter, a disassembler.

The encoding is ``struct sock_filter`` (include/uapi/linux/filter.h): ``u16 code; u8 jt; u8 jf;
u32 k`` (8 bytes, little-endian here). Jumps are *relative and forward only* by construction:
``jt``/``jf`` are unsigned bytes and ``JA``'s ``k`` an unsigned word, all counted from the next
instruction, so a program always terminates after at most ``len`` instructions.

Two checkers, as in the kernel: :func:`check_classic` is ``bpf_check_classic`` (net/core/filter.c:
1..4096 instructions, known opcodes, jumps inside the program, no constant division by zero, shift
counts below 32, scratch memory slots 0..15 written before they are read, a RET at the end) and
:func:`check_seccomp` adds ``seccomp_check_filter`` (kernel/seccomp.c): only 32-bit absolute loads,
aligned, inside ``struct seccomp_data``; no packet-relative (IND/MSH) or byte/half-word loads.

The interpreter (:func:`run`) implements every classic instruction (``___bpf_prog_run``'s
classic subset / ``bpf_convert_filter``'s semantics): loads out of the data are "return 0", a
division by a zero X register returns 0 as in the kernel.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import attrs

from virtlevels.errors import VirtlevelsError

# -- opcodes (include/uapi/linux/bpf_common.h) --------------------------------------------------------
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_RET, BPF_MISC = range(8)
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
BPF_IMM, BPF_ABS, BPF_IND, BPF_MEM, BPF_LEN, BPF_MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH = (
    0x00,
    0x10,
    0x20,
    0x30,
    0x40,
    0x50,
    0x60,
    0x70,
)
BPF_NEG, BPF_MOD, BPF_XOR = 0x80, 0x90, 0xA0
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET = 0x00, 0x10, 0x20, 0x30, 0x40
BPF_K, BPF_X = 0x00, 0x08
BPF_A = 0x10  # BPF_RET | BPF_A
BPF_TAX, BPF_TXA = 0x00, 0x80

BPF_MAXINSNS = 4096  # include/uapi/linux/bpf_common.h
BPF_MEMWORDS = 16  # include/uapi/linux/filter.h
M32 = 0xFFFFFFFF

#: sizeof(struct seccomp_data): int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
SECCOMP_DATA_SIZE = 64
SECCOMP_DATA_FIELDS = {0: "nr", 4: "arch", 8: "instruction_pointer", 12: "instruction_pointer+4"} | {
    16 + 8 * i + h: f"args[{i}]" + ("+4" if h else "") for i in range(6) for h in (0, 4)
}

_ALU_OPS = {
    BPF_ADD: "add",
    BPF_SUB: "sub",
    BPF_MUL: "mul",
    BPF_DIV: "div",
    BPF_OR: "or",
    BPF_AND: "and",
    BPF_LSH: "lsh",
    BPF_RSH: "rsh",
    BPF_NEG: "neg",
    BPF_MOD: "mod",
    BPF_XOR: "xor",
}
_JMP_OPS = {BPF_JA: "ja", BPF_JEQ: "jeq", BPF_JGT: "jgt", BPF_JGE: "jge", BPF_JSET: "jset"}
_SIZES = {BPF_W: 4, BPF_H: 2, BPF_B: 1}
_SIZE_NAMES = {BPF_W: "", BPF_H: "h", BPF_B: "b"}


class BpfError(VirtlevelsError):
    """A program the kernel's checker rejects (the system call fails with EINVAL)."""


@attrs.frozen
class Insn:
    """One ``struct sock_filter``."""

    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0

    def pack(self) -> bytes:
        return struct.pack("<HBBI", self.code, self.jt, self.jf, self.k & M32)


def stmt(code: int, k: int = 0) -> Insn:
    """BPF_STMT(code, k)."""
    return Insn(code, 0, 0, k & M32)


def jump(code: int, k: int, jt: int, jf: int) -> Insn:
    """BPF_JUMP(code, k, jt, jf)."""
    return Insn(code, jt, jf, k & M32)


def pack(prog: Iterable[Insn]) -> bytes:
    return b"".join(i.pack() for i in prog)


def unpack(raw: bytes) -> tuple[Insn, ...]:
    if len(raw) % 8:
        raise BpfError(f"a BPF program is a multiple of 8 bytes, got {len(raw)}")
    return tuple(Insn(*struct.unpack_from("<HBBI", raw, off)) for off in range(0, len(raw), 8))


# -- checks ----------------------------------------------------------------------------------------
def _valid_codes() -> frozenset[int]:
    codes = {
        BPF_RET | BPF_K,
        BPF_RET | BPF_A,
        BPF_MISC | BPF_TAX,
        BPF_MISC | BPF_TXA,
        BPF_LD | BPF_W | BPF_LEN,
        BPF_LDX | BPF_W | BPF_LEN,
        BPF_LDX | BPF_B | BPF_MSH,
        BPF_LD | BPF_IMM,
        BPF_LDX | BPF_IMM,
        BPF_LD | BPF_MEM,
        BPF_LDX | BPF_MEM,
        BPF_ST,
        BPF_STX,
        BPF_JMP | BPF_JA,
        BPF_ALU | BPF_NEG,
    }
    for size in _SIZES:
        codes |= {BPF_LD | size | BPF_ABS, BPF_LD | size | BPF_IND}
    for op in _ALU_OPS:
        if op != BPF_NEG:
            codes |= {BPF_ALU | op | BPF_K, BPF_ALU | op | BPF_X}
    for op in (BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET):
        codes |= {BPF_JMP | op | BPF_K, BPF_JMP | op | BPF_X}
    return frozenset(codes)


VALID_CODES = _valid_codes()


def check_classic(prog: Sequence[Insn]) -> None:
    """bpf_check_classic (net/core/filter.c); raises BpfError naming the instruction."""
    n = len(prog)
    if n == 0 or n > BPF_MAXINSNS:
        raise BpfError(f"a program has 1..{BPF_MAXINSNS} instructions, got {n}")
    for pc, ins in enumerate(prog):
        if not (0 <= ins.code <= 0xFFFF and 0 <= ins.jt <= 255 and 0 <= ins.jf <= 255 and 0 <= ins.k <= M32):
            raise BpfError(f"insn {pc}: field out of range ({ins})")
        c = ins.code
        if c not in VALID_CODES:
            raise BpfError(f"insn {pc}: unknown opcode {c:#06x}")
        cls = c & 0x07
        if cls == BPF_ALU and c & 0xF0 in (BPF_DIV, BPF_MOD) and c & BPF_X == BPF_K and ins.k == 0:
            raise BpfError(f"insn {pc}: division by constant zero")
        if cls == BPF_ALU and c & 0xF0 in (BPF_LSH, BPF_RSH) and c & BPF_X == BPF_K and ins.k >= 32:
            raise BpfError(f"insn {pc}: shift by {ins.k} (must be below 32)")
        if (c in (BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM, BPF_ST, BPF_STX)) and ins.k >= BPF_MEMWORDS:
            raise BpfError(f"insn {pc}: scratch memory slot {ins.k} (0..{BPF_MEMWORDS - 1})")
        if cls == BPF_JMP:
            left = n - pc - 1  # instructions after this one: every target must be one of them
            if c == BPF_JMP | BPF_JA:
                if ins.k >= left:
                    raise BpfError(f"insn {pc}: ja +{ins.k} leaves the program")
            elif ins.jt >= left or ins.jf >= left:
                raise BpfError(f"insn {pc}: jump +{max(ins.jt, ins.jf)} leaves the program")
    if prog[-1].code & 0x07 != BPF_RET:
        raise BpfError(f"insn {n - 1}: the last instruction must be a RET")
    _check_memory(prog)


def _check_memory(prog: Sequence[Insn]) -> None:
    """check_load_and_stores: a scratch slot is read only on paths where it was written."""
    n = len(prog)
    full = (1 << BPF_MEMWORDS) - 1
    valid = [full] * n  # slots certainly written on every path reaching pc
    valid[0] = 0
    for pc, ins in enumerate(prog):
        mem = valid[pc]
        c = ins.code
        if c in (BPF_ST, BPF_STX):
            mem |= 1 << ins.k
        elif c in (BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM) and not mem >> ins.k & 1:
            raise BpfError(f"insn {pc}: scratch memory slot {ins.k} read before it is written")
        if c & 0x07 == BPF_JMP:
            if c == BPF_JMP | BPF_JA:
                valid[pc + 1 + ins.k] &= mem
            else:
                valid[pc + 1 + ins.jt] &= mem
                valid[pc + 1 + ins.jf] &= mem
        elif c & 0x07 != BPF_RET and pc + 1 < n:
            valid[pc + 1] &= mem


def check_seccomp(prog: Sequence[Insn]) -> None:
    """bpf_check_classic then seccomp_check_filter (kernel/seccomp.c)."""
    check_classic(prog)
    for pc, ins in enumerate(prog):
        c = ins.code
        if c == BPF_LD | BPF_W | BPF_ABS:
            if ins.k >= SECCOMP_DATA_SIZE or ins.k & 3:
                raise BpfError(
                    f"insn {pc}: ld [{ins.k}] is not an aligned 32-bit word of struct seccomp_data "
                    f"(0..{SECCOMP_DATA_SIZE - 4}, multiple of 4)"
                )
        elif c & 0x07 in (BPF_LD, BPF_LDX) and c & 0xE0 in (BPF_ABS, BPF_IND, BPF_MSH):
            raise BpfError(
                f"insn {pc}: {disassemble_one(ins, pc)!r}: seccomp allows only 32-bit absolute loads"
            )
        elif c & 0x07 == BPF_ALU and c & 0xF0 == BPF_MOD:
            raise BpfError(f"insn {pc}: BPF_MOD is not allowed in seccomp filters")


# -- the interpreter -------------------------------------------------------------------------------
def run(prog: Sequence[Insn], data: bytes) -> tuple[int, int]:
    """Run a checked program over ``data``: (return value, instructions executed)."""
    a = x = 0
    mem = [0] * BPF_MEMWORDS
    pc = 0
    count = 0
    n = len(data)
    while True:
        ins = prog[pc]
        count += 1
        pc += 1
        c = ins.code
        cls = c & 0x07
        k = ins.k
        if cls == BPF_LD or cls == BPF_LDX:
            mode = c & 0xE0
            if mode == BPF_ABS or mode == BPF_IND:
                size = _SIZES[c & 0x18]
                off = k if mode == BPF_ABS else (x + k) & M32
                if off + size > n:
                    return 0, count  # out of bounds: the program returns 0
                # seccomp_data is in host order (little-endian RISC-V); only seccomp runs here.
                v = int.from_bytes(data[off : off + size], "little")
            elif mode == BPF_MSH:
                if k >= n:
                    return 0, count
                x = (data[k] & 0x0F) << 2
                continue
            elif mode == BPF_IMM:
                v = k
            elif mode == BPF_MEM:
                v = mem[k]
            else:  # BPF_LEN
                v = n
            if cls == BPF_LD:
                a = v
            else:
                x = v
        elif cls == BPF_ST:
            mem[k] = a
        elif cls == BPF_STX:
            mem[k] = x
        elif cls == BPF_ALU:
            op = c & 0xF0
            if op == BPF_NEG:
                a = -a & M32
                continue
            b = x if c & BPF_X else k
            if op == BPF_ADD:
                a = (a + b) & M32
            elif op == BPF_SUB:
                a = (a - b) & M32
            elif op == BPF_MUL:
                a = (a * b) & M32
            elif op == BPF_DIV or op == BPF_MOD:
                if b == 0:
                    return 0, count  # division by a zero X: the program returns 0
                a = a // b if op == BPF_DIV else a % b
            elif op == BPF_OR:
                a |= b
            elif op == BPF_AND:
                a &= b
            elif op == BPF_XOR:
                a ^= b
            elif op == BPF_LSH:
                a = (a << (b & 31)) & M32 if b < 32 else 0
            else:
                a = a >> b if b < 32 else 0
        elif cls == BPF_JMP:
            op = c & 0xF0
            if op == BPF_JA:
                pc += k
                continue
            b = x if c & BPF_X else k
            if op == BPF_JEQ:
                taken = a == b
            elif op == BPF_JGT:
                taken = a > b
            elif op == BPF_JGE:
                taken = a >= b
            else:
                taken = bool(a & b)
            pc += ins.jt if taken else ins.jf
        elif cls == BPF_RET:
            return (a if c & 0x18 == BPF_A else k), count
        else:  # BPF_MISC
            if c & 0xF8 == BPF_TXA:
                a = x
            else:
                x = a


def constant_result(prog: Sequence[Insn], nr: int, arch: int) -> tuple[int, int] | None:
    """(result, instructions) if the program's verdict for ``nr``/``arch`` does not depend on the
    arguments or the instruction pointer, else None.

    This is the kernel's seccomp action cache analysis (kernel/seccomp.c seccomp_is_const_allow,
    Linux 5.11) generalised to any constant result: emulate with only ``nr`` and ``arch`` known,
    giving up at the first instruction that reads anything else.
    """
    a = 0
    pc = 0
    count = 0
    while True:
        ins = prog[pc]
        count += 1
        pc += 1
        c = ins.code
        if c == BPF_LD | BPF_W | BPF_ABS:
            if ins.k == 0:
                a = nr & M32
            elif ins.k == 4:
                a = arch
            else:
                return None
        elif c == BPF_LD | BPF_IMM:
            a = ins.k
        elif c == BPF_JMP | BPF_JA:
            pc += ins.k
        elif c & 0x07 == BPF_JMP and c & BPF_X == BPF_K:
            op = c & 0xF0
            k = ins.k
            taken = (
                a == k
                if op == BPF_JEQ
                else a > k
                if op == BPF_JGT
                else a >= k
                if op == BPF_JGE
                else bool(a & k)
            )
            pc += ins.jt if taken else ins.jf
        elif c == BPF_ALU | BPF_AND | BPF_K:
            a &= ins.k
        elif c == BPF_RET | BPF_K:
            return ins.k, count
        else:
            return None


# -- disassembler ----------------------------------------------------------------------------------
def _src(c: int, k: int) -> str:
    return "x" if c & BPF_X else f"#{k:#x}"


def disassemble_one(ins: Insn, pc: int = 0, seccomp: bool = True) -> str:
    """One instruction in bpf_dbg / ``bpf_asm`` syntax; jump targets as absolute lines."""
    c, k = ins.code, ins.k
    cls = c & 0x07
    if cls in (BPF_LD, BPF_LDX):
        reg = "ld" if cls == BPF_LD else "ldx"
        mode = c & 0xE0
        sz = _SIZE_NAMES.get(c & 0x18, "?")
        if mode == BPF_ABS:
            field = SECCOMP_DATA_FIELDS.get(k) if seccomp and c & 0x18 == BPF_W else None
            return f"{reg}{sz} [{k}]" + (f"    ; {field}" if field else "")
        if mode == BPF_IND:
            return f"{reg}{sz} [x + {k}]"
        if mode == BPF_MSH:
            return f"ldxb 4*([{k}]&0xf)"
        if mode == BPF_IMM:
            return f"{reg} #{k:#x}"
        if mode == BPF_MEM:
            return f"{reg} M[{k}]"
        return f"{reg} #len"
    if cls == BPF_ST:
        return f"st M[{k}]"
    if cls == BPF_STX:
        return f"stx M[{k}]"
    if cls == BPF_ALU:
        op = c & 0xF0
        if op == BPF_NEG:
            return "neg"
        return f"{_ALU_OPS.get(op, '?')} {_src(c, k)}"
    if cls == BPF_JMP:
        op = c & 0xF0
        if op == BPF_JA:
            return f"ja {pc + 1 + k}"
        return f"{_JMP_OPS.get(op, '?')} {_src(c, k)}, {pc + 1 + ins.jt}, {pc + 1 + ins.jf}"
    if cls == BPF_RET:
        if c & 0x18 == BPF_A:
            return "ret a"
        return f"ret #{k:#x}" + (f"    ; {_ret_name(k)}" if seccomp else "")
    return "txa" if c & 0xF8 == BPF_TXA else "tax"


def _ret_name(k: int) -> str:
    from virtlevels_sandbox.seccomp import describe_action

    return describe_action(k)


def disassemble(prog: Sequence[Insn], seccomp: bool = True) -> str:
    """The whole program, one numbered line per instruction."""
    width = len(str(len(prog) - 1))
    return "\n".join(f"{pc:>{width}}: {disassemble_one(ins, pc, seccomp)}" for pc, ins in enumerate(prog))
