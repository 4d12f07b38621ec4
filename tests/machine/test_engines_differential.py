"""Differential tests: the fast engine (block translator) and the interpreter give identical results.

Each program runs on a fresh machine with each engine; the final state must match exactly:
registers, pc, privilege, every CSR, retired-instruction counts by privilege and class, traps,
cycles and their breakdown, TLB misses and walks, memory, and the RunResult. (The TLB's *hit*
counter is left out: it counts slow-path lookups, and the fast engine's code-page watches send
some stores to the slow path; shipped profiles charge 0 cycles per hit, see docs/engines.md.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtlevels.machine.asm import assemble
from virtlevels.machine.image import Image
from virtlevels.machine.machine import PhysicalMachine

DATA = 0x8001_0000  # .data (with tohost) on its own page, away from the code

PASS = """
pass:
    la t0, tohost
    li t1, 1
    sw t1, 0(t0)
    sw zero, 4(t0)        # RV32 HTIF: writing the high word completes the command
1:  j 1b
"""

DATA_SECTION = """
.data
.align 6
tohost: .word 0, 0
fromhost: .word 0, 0
.align 12
buf: .space 256
"""

# An M-mode handler that counts exceptions in s11 and skips the faulting instruction; interrupts
# count in s10 and push mtimecmp forward.
HANDLER = """
.align 4
trap:
    csrr t6, mcause
    bltz t6, 2f
    addi s11, s11, 1
    csrr t5, mepc
    addi t5, t5, 4
    csrw mepc, t5
    mret
2:  addi s10, s10, 1
    li t5, 0x2004000
    lw t4, 0(t5)
    addi t4, t4, 7
    sw t4, 0(t5)
    sw zero, 4(t5)
    mret
"""


def machine_state(m: PhysicalMachine) -> dict[str, Any]:
    harts = []
    for h in m.harts:
        tlb = h.mmu.snapshot_counters()
        tlb.pop("hits")
        harts.append({
            "x": list(h.x), "pc": h.pc, "priv": h.priv, "csr": h.csr.snapshot(), "wfi": h.wfi,
            "reservation": h.reservation, "counts": {p: list(c) for p, c in h.counts_by_priv.items()},
            "traps": dict(h.traps), "trap_count": h.trap_count, "xret_count": h.xret_count,
            "mmio_count": h.mmio_count, "charges": dict(h.charges), "tlb": tlb,
            "cycles": h.cycles_by_category(), "retired": h.retired(),
        })  # fmt: skip
    return {
        "harts": harts,
        "memory": m.memory.snapshot(),
        "now": m.now,
        "exit": (m.exit_requested, m.exit_code),
        "idle": m.idle_cycles,
    }


Setup = Callable[[PhysicalMachine], None]


def run_on(
    engine: str,
    image: Image,
    *,
    harts: int = 1,
    limit: int | None = 200_000,
    setup: Setup | None = None,
    chunks: tuple[int, ...] = (),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``image`` on a fresh machine; ``chunks`` splits the run into several ``run`` calls."""
    m = PhysicalMachine(num_harts=harts)
    m.load(image)
    if setup is not None:
        setup(m)
    results = []
    for n in chunks:
        results.append(m.run(max_instructions=n, engine=engine).to_dict())
    results.append(m.run(max_instructions=limit, engine=engine).to_dict())
    return machine_state(m), results


def assert_same(image: Image, **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    fast = run_on("fast", image, **kw)
    interp = run_on("interp", image, **kw)
    assert fast[1] == interp[1]
    assert fast[0] == interp[0]
    return interp


def program(body: str, *, data: str = DATA_SECTION, data_at: int | None = DATA) -> Image:
    src = ".text\n.globl _start\n_start:\n" + body + PASS + HANDLER + data
    return assemble(src, origins={".data": data_at} if data_at is not None else None)


EVERY_CLASS = """
    la t0, trap
    csrw mtvec, t0
    li a0, 0x7ffffff0
    li a1, -7
    addi a2, a0, 100
    slti a3, a1, -6
    sltiu a4, a1, 5
    xori a5, a1, 0x555
    ori a6, a0, -16
    andi a7, a1, 0x7f
    slli s2, a1, 31
    srli s3, a1, 1
    srai s4, a1, 2
    add s5, a0, a0
    sub s6, a1, a0
    sll s7, a1, a1
    slt s8, a1, a0
    sltu s9, a1, a0
    xor t1, a0, a1
    srl t2, a1, a1
    sra t3, a1, a1
    or t4, a0, a1
    and t5, a0, a1
    mul t6, a0, a1
    mulh s2, a0, a1
    mulhsu s3, a1, a0
    mulhu s4, a1, a1
    li s5, 0x80000000
    li s6, -1
    div s7, s5, s6
    rem s8, s5, s6
    div s9, a0, zero
    divu t1, a1, zero
    rem t2, a1, zero
    remu t3, a1, a0
    divu t4, a1, a0
    lui t5, 0xabcde
    auipc t6, 0x12
    la s0, buf
    li s1, 0x8badf00d
    sw s1, 0(s0)
    sh s1, 6(s0)
    sb s1, 9(s0)
    lw a2, 0(s0)
    lh a3, 6(s0)
    lhu a4, 6(s0)
    lb a5, 9(s0)
    lbu a6, 9(s0)
    lb a7, 0(s0)
    lw zero, 0(s0)
    amoadd.w a2, s1, (s0)
    amoswap.w a3, a1, (s0)
    amoxor.w a4, a0, (s0)
    amoand.w a5, a0, (s0)
    amoor.w a6, a1, (s0)
    amomin.w a7, a1, (s0)
    amomax.w a2, a1, (s0)
    amominu.w a3, a1, (s0)
    amomaxu.w a4, a1, (s0)
    lr.w a5, (s0)
    sc.w a6, a0, (s0)
    sc.w a7, a0, (s0)
    csrr s2, mscratch
    csrw mscratch, a1
    csrrs s3, mscratch, a0
    csrrci s4, mscratch, 3
    rdcycle s5
    rdinstret s6
    csrr s7, minstret
    fence
    fence.i
    beq a0, a1, 1f
    bne a0, a1, 1f
    nop
1:  blt a1, a0, 1f
    nop
1:  bge a1, a0, 1f
    bltu a1, a0, 1f
    bgeu a1, a0, 1f
    nop
1:  jal ra, 1f
    nop
1:  la t0, 2f
    jalr s8, 0(t0)
    nop
2:  ecall
    ebreak
    addi x0, x0, 5
"""


def test_every_instruction_class() -> None:
    state, results = assert_same(program(EVERY_CLASS))
    assert results[-1]["status"] == "pass"
    assert state["harts"][0]["traps"] == {"ecall_from_m": 1, "breakpoint": 1}


def test_every_instruction_class_with_tohost_on_the_code_page() -> None:
    # The page shared with HTIF has no fetch fast path: the fast engine interprets it.
    _state, results = assert_same(program(EVERY_CLASS, data_at=None))
    assert results[-1]["status"] == "pass"


TRAPS_MID_BLOCK = """
    la t0, trap
    csrw mtvec, t0
    li s0, 20
    la s1, buf
loop:
    addi a0, a0, 3
    lw a1, 2(s1)          # misaligned load
    addi a0, a0, 5
    sw a0, 1(s1)          # misaligned store
    addi a2, a2, 1
    lw a3, 0(zero)        # access fault
    .word 0               # illegal instruction
    addi a4, a4, 7
    ecall
    la t0, 1f
    addi t0, t0, 2
    jalr ra, 0(t0)        # misaligned jump target: traps on the jalr, handler skips it
1:  sw a0, 0(s1)
    addi s0, s0, -1
    bnez s0, loop
"""


def test_traps_in_the_middle_of_blocks_are_precise() -> None:
    state, results = assert_same(program(TRAPS_MID_BLOCK))
    assert results[-1]["status"] == "pass"
    h = state["harts"][0]
    assert h["x"][27] == 20 * 6  # s11: six exceptions per iteration, each resumed
    assert h["traps"]["illegal_instruction"] == 20 and h["traps"]["instruction_address_misaligned"] == 20


def test_every_budget_gives_the_same_state() -> None:
    image = program(TRAPS_MID_BLOCK)
    for n in [*range(0, 40), 57, 99, 100, 101, 150, 233, 499]:
        assert_same(image, limit=n)
    # and in pieces: several run() calls whose budgets end inside blocks and loops
    assert_same(image, chunks=(1, 7, 13, 99, 3), limit=2000)


SELF_MODIFYING = """
    la t0, trap
    csrw mtvec, t0
    li s0, 30
    la s1, patch
    lw s2, 0(s1)          # "addi a0, a0, 1"
    la s3, alt
    lw s3, 0(s3)          # "addi a0, a0, 100"
loop:
    mv t0, s2
    andi t1, s0, 1
    beqz t1, 1f
    mv t0, s3
1:  sw t0, 0(s1)          # rewrite the next instruction of this very loop
    {fence}
patch:
    addi a0, a0, 1
    addi s0, s0, -1
    bnez s0, loop
    j pass
alt:
    addi a0, a0, 100
"""


@pytest.mark.parametrize("fence", ["fence.i", "nop"])
def test_self_modifying_code_is_seen_at_once(fence: str) -> None:
    # Both engines see a store to code at once, with or without FENCE.I (the interpreter re-reads
    # every word; the translator drops blocks that a store overlaps and stops the current one).
    state, results = assert_same(program(SELF_MODIFYING.replace("{fence}", fence)))
    assert results[-1]["status"] == "pass"
    assert state["harts"][0]["x"][10] == 15 * 100 + 15 * 1


TIMER = """
    la t0, trap
    csrw mtvec, t0
    li t5, 0x2004000
    li t4, 50
    sw t4, 0(t5)
    sw zero, 4(t5)
    li t0, 0x80
    csrw mie, t0
    csrsi mstatus, 8
    li s0, 3000
loop:
    addi a0, a0, 1
    add a1, a1, a0
    xor a2, a2, a1
    addi s0, s0, -1
    bnez s0, loop
"""


def test_timer_interrupts_arrive_at_the_same_points() -> None:
    state, results = assert_same(program(TIMER))
    assert results[-1]["status"] == "pass"
    assert state["harts"][0]["x"][26] > 10  # s10: timer interrupts taken


TWO_HARTS = """
    la t0, trap
    csrw mtvec, t0
    la s0, buf
    addi s2, s0, 4
    li s1, 200
    bnez a0, hart1
loop0:                    # hart 0: atomic adds, then an LR/SC increment
    li t0, 1
    amoadd.w zero, t0, (s0)
2:  lr.w t1, (s2)
    addi t1, t1, 1
    sc.w t2, t1, (s2)
    bnez t2, 2b
    addi s1, s1, -1
    bnez s1, loop0
    li t0, 0x2000004      # wake hart 1 (msip) and wait for it to finish
    li t1, 1
    sw t1, 0(t0)
3:  lw t1, 8(s0)
    beqz t1, 3b
    j pass
hart1:
    li t0, 8
    csrw mie, t0
1:  li t0, 2
    amoadd.w zero, t0, (s0)
2:  lr.w t1, (s2)
    addi t1, t1, 3
    sc.w t2, t1, (s2)
    bnez t2, 2b
    addi s1, s1, -1
    bnez s1, 1b
    wfi
    li t0, 1
    sw t0, 8(s0)
4:  j 4b
"""


def test_two_harts_with_atomics_and_an_ipi() -> None:
    state, results = assert_same(program(TWO_HARTS), harts=2)
    assert results[-1]["status"] == "pass"
    words = state["memory"][(DATA >> 12) + 1]  # buf
    assert int.from_bytes(words[0:4], "little") == 200 * 1 + 200 * 2
    assert int.from_bytes(words[4:8], "little") == 200 * 1 + 200 * 3


# Sv32: two address spaces map the same virtual page (0x4000_0000) to different code; an S-mode
# kernel switches between them with satp writes and sfence.vma, entering U-mode each time.
SV32 = """
    la t0, mtrap
    csrw mtvec, t0
    la s0, root1
    la t1, kcode
    srli t1, t1, 22
    slli t1, t1, 2        # megapage index of the kernel (identity map, RWX, not U)
    li t2, 0x200000CF     # ppn 0x80000 << 10 | D A X W R V
    add t3, s0, t1
    sw t2, 0(t3)
    la s1, root2
    add t3, s1, t1
    sw t2, 0(t3)
    la t0, l0a            # VA 0x40000000 -> l0a / l0b level-0 tables
    srli t0, t0, 12
    slli t0, t0, 10
    ori t0, t0, 1
    sw t0, 0x400(s0)
    la t0, l0b
    srli t0, t0, 12
    slli t0, t0, 10
    ori t0, t0, 1
    sw t0, 0x400(s1)
    la t0, ucode1         # leaf PTEs: U X R W A D V
    srli t0, t0, 12
    slli t0, t0, 10
    ori t0, t0, 0xDF
    la t1, l0a
    sw t0, 0(t1)
    la t0, ucode2
    srli t0, t0, 12
    slli t0, t0, 10
    ori t0, t0, 0xDF
    la t1, l0b
    sw t0, 0(t1)
    li t0, 0x100          # delegate ecall from U to S
    csrw medeleg, t0
    la t0, strap
    csrw stvec, t0
    la t0, kcode
    csrw mepc, t0
    li t0, 0x800          # MPP = S
    csrw mstatus, t0
    mret
mtrap:
    j pass                # anything reaching M ends the test (the checks compare state)
.align 12
kcode:
    li s2, 40             # rounds
    li s5, 0
1:  andi t0, s2, 1
    la t1, root1
    beqz t0, 2f
    la t1, root2
2:  srli t1, t1, 12
    li t2, 0x80000000
    or t1, t1, t2
    csrw satp, t1
    sfence.vma
    li t0, 0x40000000
    csrw sepc, t0
    li t0, 0x100
    csrc sstatus, t0      # SPP = U
    sret
strap:
    add s5, s5, a0        # U code left its number in a0
    addi s2, s2, -1
    bnez s2, 1b
    ecall                 # to M: done
.align 12
ucode1:
    li a0, 1
    li t3, 10
3:  addi a0, a0, 2
    addi t3, t3, -1
    bnez t3, 3b
    ecall
.align 12
ucode2:
    li a0, 1000
    ecall
.align 12
root1: .space 4096
root2: .space 4096
l0a: .space 4096
l0b: .space 4096
"""


def test_sv32_address_space_switches_run_the_right_code() -> None:
    state, results = assert_same(program(SV32))
    assert results[-1]["status"] == "pass"
    assert state["harts"][0]["x"][21] == 20 * 21 + 20 * 1000  # s5: both spaces' code ran


LOADSTORE_SV32 = SV32.replace(
    """ucode1:
    li a0, 1
    li t3, 10
3:  addi a0, a0, 2
    addi t3, t3, -1
    bnez t3, 3b
    ecall""",
    """ucode1:
    li a0, 1
    li t3, 100
    li t4, 0x40000800
3:  lw t5, 0(t4)
    addi t5, t5, 3
    sw t5, 4(t4)
    lh t6, 6(t4)
    sb t6, 9(t4)
    add a0, a0, t6
    addi t3, t3, -1
    bnez t3, 3b
    ecall""",
)


def test_sv32_loads_and_stores_in_user_mode() -> None:
    _state, results = assert_same(program(LOADSTORE_SV32))
    assert results[-1]["status"] == "pass"
    for n in (37, 200, 1001, 5003):
        assert_same(program(LOADSTORE_SV32), limit=n)


# -- random programs ---------------------------------------------------------------------------
_ALU = ["add", "sub", "xor", "or", "and", "sll", "srl", "sra", "slt", "sltu", "mul", "mulh", "mulhu",
        "mulhsu", "div", "divu", "rem", "remu"]  # fmt: skip
_ALUI = ["addi", "xori", "ori", "andi", "slti", "sltiu"]
_SHI = ["slli", "srli", "srai"]
_LD = [("lw", 4), ("lh", 2), ("lhu", 2), ("lb", 1), ("lbu", 1)]
_ST = [("sw", 4), ("sh", 2), ("sb", 1)]
_BR = ["beq", "bne", "blt", "bge", "bltu", "bgeu"]
_REGS = ["a0", "a1", "a2", "a3", "a4", "a5", "zero"]

_reg = st.sampled_from(_REGS)
_dst = st.sampled_from(_REGS[:-1] + ["zero"])
_insn = st.one_of(
    st.builds(lambda o, d, a, b: f"{o} {d}, {a}, {b}", st.sampled_from(_ALU), _dst, _reg, _reg),
    st.builds(lambda o, d, a, i: f"{o} {d}, {a}, {i}", st.sampled_from(_ALUI), _dst, _reg,
              st.integers(-2048, 2047)),
    st.builds(lambda o, d, a, i: f"{o} {d}, {a}, {i}", st.sampled_from(_SHI), _dst, _reg, st.integers(0, 31)),
    st.builds(lambda o, d, i: f"{o[0]} {d}, {i * o[1] + (1 if o[1] > 1 and i % 7 == 0 else 0)}(s0)",
              st.sampled_from(_LD), _dst, st.integers(0, 60)),
    st.builds(lambda o, s, i: f"{o[0]} {s}, {i * o[1] + (1 if o[1] > 1 and i % 7 == 0 else 0)}(s0)",
              st.sampled_from(_ST), _reg, st.integers(0, 60)),
    st.builds(lambda o, a, b, n: f"{o} {a}, {b}, {n}f", st.sampled_from(_BR), _reg, _reg, st.integers(1, 3)),
    st.builds(lambda d, i: f"lui {d}, {i}", _dst, st.integers(0, 0xFFFFF)),
)  # fmt: skip


def _random_program(body: list[str], loops: int, seeds: list[int]) -> Image:
    lines = ["    la t0, trap", "    csrw mtvec, t0", "    la s0, buf"]
    lines += [f"    li {r}, {v}" for r, v in zip(_REGS[:-1], seeds, strict=False)]
    lines += [f"    li s1, {loops}", "loop:"]
    for i, insn in enumerate(body):
        lines.append(f"{i + 1}:  {insn}" if i < 9 else f"    {insn}")
    lines += ["1:", "2:", "3:", "    addi s1, s1, -1", "    bnez s1, loop"]
    return program("\n".join(lines) + "\n")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.lists(_insn, min_size=1, max_size=24),
    loops=st.integers(1, 12),
    seeds=st.lists(st.integers(0, 0xFFFFFFFF), min_size=6, max_size=6),
    limit=st.integers(1, 400),
)
def test_random_programs_match_the_interpreter(
    body: list[str], loops: int, seeds: list[int], limit: int
) -> None:
    image = _random_program(body, loops, seeds)
    assert_same(image, limit=limit)
    assert_same(image, limit=5000)
