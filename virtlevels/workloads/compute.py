"""``compute``: a CoreMark-like integer kernel (EEMBC CoreMark's three kernels, simplified).

Each iteration (1) reverses a linked list and folds its values into a hash, counting the nodes
that match the iteration (CoreMark's list find/reverse), (2) multiplies two small integer
matrices and sums the product (core_matrix.c), (3) runs a table-driven number-recognising state
machine over a text of digits, signs, dots, exponents and commas (core_state.c), and (4) folds
the three results into a CRC-16 (polynomial 0x8005, reflected, as core_util.c's crc16). Each
kernel also mutates its data, so every iteration differs. The program prints
``compute: iterations=N crc=0xHHHH``; :func:`reference` computes the same line in Python.
"""

from __future__ import annotations

from typing import Any

from virtlevels.workloads.asmlib import EXIT_0, asciz, build_elf
from virtlevels.workloads.image import IntParam, WorkloadImage, check_params

PARAMS = {
    "iterations": IntParam(20, 1, 1_000_000, "iterations of the three kernels"),
    "nodes": IntParam(16, 2, 4096, "linked-list length"),
    "matrix": IntParam(5, 1, 64, "matrix order N (N x N words)"),
    "text": IntParam(32, 1, 4096, "state-machine input bytes"),
    "lang": IntParam(0, 0, 1, "0 = the assembly program, 1 = the C program (needs riscv64-unknown-elf-gcc)"),
}
PRESETS = {"small": {}, "large": {"iterations": 2000, "nodes": 64, "matrix": 10, "text": 128}}

SEED = 0x5EED
ALPHABET = "0123456789+-.,eE"
#: Character classes: digit, sign, dot, exponent, other; the comma ends a token.
C_DIGIT, C_SIGN, C_DOT, C_EXP, C_OTHER, C_COMMA = range(6)
#: States: start, integer, float, exponent, invalid. NEXT[state][class] (class < 5).
NEXT = (
    (1, 1, 2, 4, 4),
    (1, 4, 2, 3, 4),
    (2, 4, 4, 3, 4),
    (3, 3, 4, 4, 4),
    (4, 4, 4, 4, 4),
)
M32 = 0xFFFF_FFFF


def char_class(c: int) -> int:
    ch = chr(c)
    if ch.isdigit():
        return C_DIGIT
    return {"+": C_SIGN, "-": C_SIGN, ".": C_DOT, "e": C_EXP, "E": C_EXP, ",": C_COMMA}.get(ch, C_OTHER)


def _lcg(x: int) -> int:
    return (x * 1103515245 + 12345) & M32


def _crc16(crc: int, word: int) -> int:
    for i in range(4):
        crc ^= (word >> (8 * i)) & 0xFF
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def reference(iterations: int, nodes: int, matrix: int, text: int) -> int:
    """The CRC the program computes, by the same algorithm in Python."""
    x = SEED
    vals = []
    for _ in range(nodes):
        x = _lcg(x)
        vals.append((x >> 16) & 0xFFFF)
    a, b = [], []
    for _ in range(matrix * matrix):
        x = _lcg(x)
        a.append((x >> 16) & 0xFF)
    for _ in range(matrix * matrix):
        x = _lcg(x)
        b.append((x >> 16) & 0xFF)
    buf = []
    for _ in range(text):
        x = _lcg(x)
        buf.append(ord(ALPHABET[(x >> 16) & 15]))
    order = list(range(nodes))  # list order, as node indices
    crc = 0
    n = matrix
    for it in range(iterations):
        order.reverse()
        h = cnt = 0
        for i in order:
            v = vals[i]
            h = (h * 31 + v) & M32
            if (v & 7) == (it & 7):
                cnt += 1
        vals[order[0]] = (vals[order[0]] + h) & 0xFFFF
        list_result = (h + cnt) & M32
        msum = 0
        for i in range(n):
            for j in range(n):
                s = 0
                for k in range(n):
                    s = (s + a[i * n + k] * b[k * n + j]) & M32
                msum = (msum + s) & M32
        a[it % n] = (a[it % n] + msum) & 0xFF
        buf[it % text] = ord(ALPHABET[(it * 7) & 15])
        counts = [0] * 5
        state = 0
        for c in buf:
            cls = char_class(c)
            if cls == C_COMMA:
                counts[state] += 1
                state = 0
            else:
                state = NEXT[state][cls]
        counts[state] += 1
        state_result = sum(c << (6 * s) for s, c in enumerate(counts)) & M32
        crc = _crc16(crc, list_result)
        crc = _crc16(crc, msum)
        crc = _crc16(crc, state_result)
    return crc


def expected_line(iterations: int, nodes: int, matrix: int, text: int) -> bytes:
    crc = reference(iterations, nodes, matrix, text)
    return f"compute: iterations={iterations} crc=0x{crc:04x}\n".encode()


def source(iterations: int, nodes: int, matrix: int, text: int) -> str:
    classes = ", ".join(str(char_class(c)) for c in range(128))
    nxt = ", ".join(str(s) for row in NEXT for s in row)
    return f"""
    .equ ITER, {iterations}
    .equ NODES, {nodes}
    .equ N, {matrix}
    .equ TEXT, {text}
_start:
    # -- set-up: seeded data (LCG x = x * 1103515245 + 12345) -----------------------------------
    li    s0, {SEED}
    li    s1, 1103515245
    li    s2, 12345
    la    t0, nodes                    # node i = {{next, value}}; next = &node[i+1], last 0
    li    t1, 0
1:  mul   s0, s0, s1
    add   s0, s0, s2
    srli  t2, s0, 16
    slli  t3, t1, 3
    add   t3, t0, t3
    addi  t4, t3, 8
    sw    t4, 0(t3)
    sw    t2, 4(t3)
    addi  t1, t1, 1
    li    t5, NODES
    bltu  t1, t5, 1b
    sw    zero, -8(t4)                 # the last node ends the list
    la    t0, mat_a                    # A then B are contiguous: 2 * N * N bytes of 0..255
    li    t1, 2 * N * N
2:  mul   s0, s0, s1
    add   s0, s0, s2
    srli  t2, s0, 16
    andi  t2, t2, 255
    sw    t2, 0(t0)
    addi  t0, t0, 4
    addi  t1, t1, -1
    bnez  t1, 2b
    la    t0, buf
    la    t3, alphabet
    li    t1, TEXT
3:  mul   s0, s0, s1
    add   s0, s0, s2
    srli  t2, s0, 16
    andi  t2, t2, 15
    add   t2, t3, t2
    lbu   t2, 0(t2)
    sb    t2, 0(t0)
    addi  t0, t0, 1
    addi  t1, t1, -1
    bnez  t1, 3b

    la    s3, nodes                    # s3 = list head
    li    s4, 0                        # s4 = iteration
    li    s5, 0                        # s5 = crc
iter:
    # -- (1) list: reverse, then hash the values and count matches ------------------------------
    li    t0, 0                        # prev
    mv    t1, s3                       # cur
1:  beqz  t1, 2f
    lw    t2, 0(t1)
    sw    t0, 0(t1)
    mv    t0, t1
    mv    t1, t2
    j     1b
2:  mv    s3, t0
    li    t3, 0                        # h
    li    t4, 0                        # cnt
    andi  t5, s4, 7
    li    t6, 31
    mv    t1, s3
3:  beqz  t1, 4f
    lw    t2, 4(t1)
    mul   t3, t3, t6
    add   t3, t3, t2
    andi  t2, t2, 7
    bne   t2, t5, 5f
    addi  t4, t4, 1
5:  lw    t1, 0(t1)
    j     3b
4:  lw    t2, 4(s3)                    # mutate the head's value
    add   t2, t2, t3
    slli  t2, t2, 16
    srli  t2, t2, 16
    sw    t2, 4(s3)
    add   a0, t3, t4
    call  crc_word

    # -- (2) matrix: C = A x B, msum = sum of C; A[it % N] += msum (mod 256) -------------------
    li    s6, 0                        # msum
    la    s7, mat_a                    # row i of A
    la    s8, mat_c
    li    t0, 0                        # i
1:  li    t1, 0                        # j
2:  la    t2, mat_b
    slli  t3, t1, 2
    add   t2, t2, t3                   # &B[0][j]
    mv    t3, s7                       # &A[i][0]
    li    t4, 0                        # sum
    li    t5, N
3:  lw    a1, 0(t3)
    lw    a2, 0(t2)
    mul   a1, a1, a2
    add   t4, t4, a1
    addi  t3, t3, 4
    addi  t2, t2, 4 * N
    addi  t5, t5, -1
    bnez  t5, 3b
    sw    t4, 0(s8)
    addi  s8, s8, 4
    add   s6, s6, t4
    addi  t1, t1, 1
    li    t5, N
    bltu  t1, t5, 2b
    addi  s7, s7, 4 * N
    addi  t0, t0, 1
    bltu  t0, t5, 1b
    li    t5, N
    remu  t0, s4, t5
    slli  t0, t0, 2
    la    t1, mat_a
    add   t0, t0, t1
    lw    t1, 0(t0)
    add   t1, t1, s6
    andi  t1, t1, 255
    sw    t1, 0(t0)
    mv    a0, s6
    call  crc_word

    # -- (3) state machine over the text --------------------------------------------------------
    li    t5, TEXT
    remu  t0, s4, t5
    la    t1, buf
    add   t0, t1, t0
    slli  t2, s4, 3
    sub   t2, t2, s4                   # it * 7
    andi  t2, t2, 15
    la    t3, alphabet
    add   t2, t3, t2
    lbu   t2, 0(t2)
    sb    t2, 0(t0)                    # buf[it % TEXT] = alphabet[(it * 7) & 15]
    la    s9, counts
    sw    zero, 0(s9)
    sw    zero, 4(s9)
    sw    zero, 8(s9)
    sw    zero, 12(s9)
    sw    zero, 16(s9)
    la    a1, classes
    la    a2, next_state
    li    t0, 0                        # state
    li    t6, {C_COMMA}
    mv    t2, t1                       # p = buf
    add   t3, t1, t5                   # end
1:  lbu   t4, 0(t2)
    add   t4, a1, t4
    lbu   t4, 0(t4)                    # class
    bne   t4, t6, 2f
    slli  t5, t0, 2                    # a comma: count the token's final state
    add   t5, s9, t5
    lw    a0, 0(t5)
    addi  a0, a0, 1
    sw    a0, 0(t5)
    li    t0, 0
    j     3f
2:  slli  t5, t0, 2
    add   t5, t5, t0                   # state * 5
    add   t5, t5, t4
    add   t5, a2, t5
    lbu   t0, 0(t5)
3:  addi  t2, t2, 1
    bltu  t2, t3, 1b
    slli  t5, t0, 2                    # the last token
    add   t5, s9, t5
    lw    a0, 0(t5)
    addi  a0, a0, 1
    sw    a0, 0(t5)
    li    a0, 0                        # counts[s] << 6s
    li    t0, 0
    li    t1, 0
4:  slli  t5, t0, 2
    add   t5, s9, t5
    lw    t2, 0(t5)
    sll   t2, t2, t1
    add   a0, a0, t2
    addi  t1, t1, 6
    addi  t0, t0, 1
    li    t5, 5
    bltu  t0, t5, 4b
    call  crc_word

    addi  s4, s4, 1
    li    t0, ITER
    bltu  s4, t0, iter

    la    a0, msg_iter
    call  vl_cat
    mv    a0, s4
    call  vl_dec
    la    a0, msg_crc
    call  vl_cat
    mv    a0, s5
    li    a1, 4
    call  vl_hex
    la    a0, msg_nl
    call  vl_cat
    call  vl_flush
{EXIT_0}

# crc_word(a0): s5 = crc16 of s5 and the 4 bytes of a0 (little-endian), reflected poly 0xA001
crc_word:
    li    t0, 4
    li    t2, 0xA001
1:  andi  t1, a0, 255
    xor   s5, s5, t1
    li    t3, 8
2:  andi  t4, s5, 1
    srli  s5, s5, 1
    beqz  t4, 3f
    xor   s5, s5, t2
3:  addi  t3, t3, -1
    bnez  t3, 2b
    srli  a0, a0, 8
    addi  t0, t0, -1
    bnez  t0, 1b
    ret

    .rodata
{asciz("msg_iter", "compute: iterations=")}
{asciz("msg_crc", " crc=0x")}
{asciz("msg_nl", chr(10))}
{asciz("alphabet", ALPHABET)}
classes:    .byte {classes}
next_state: .byte {nxt}
    .bss
    .balign 4
nodes:  .space 8 * NODES
mat_a:  .space 4 * N * N
mat_b:  .space 4 * N * N
mat_c:  .space 4 * N * N
counts: .space 20
buf:    .space TEXT
"""


def build(**params: Any) -> WorkloadImage:
    p = check_params("compute", PARAMS, params, PRESETS)
    sizes = {k: p[k] for k in ("iterations", "nodes", "matrix", "text")}
    if p["lang"] == 1:
        from virtlevels.workloads.compute_c import build_c_elf

        elf = build_c_elf(**sizes)
    else:
        elf = build_elf("compute", source(**sizes))
    return WorkloadImage(
        name="compute", elf=elf, argv=("/bin/compute",), files={},
        expected_stdout=expected_line(**sizes), needs=frozenset(), params=p,
    )  # fmt: skip
