"""Random S-mode guest programs for the equivalence harness (hypothesis strategies).

A guest is the SBI firmware plus a short S-mode program at KERNEL_BASE: it loads random values
into registers, runs random ALU, M-extension, load/store and CSR instructions on them (the CSR
ones — ``sscratch``, ``sstatus`` — are privileged, so a VMM must trap, translate or forward
them), stores the registers into a result area and shuts down through SBI SRST. The result area
is the architectural state the run defines; every level must leave the same bytes there.
"""

from __future__ import annotations

from hypothesis import strategies as st

from virtlevels.guests.builder import build_firmware
from virtlevels.guests.layout import KERNEL_BASE
from virtlevels.machine.asm import assemble
from virtlevels.machine.image import Image

REGS = ["t0", "t1", "t2", "s0", "s1", "a2", "a3", "a4", "a5", "a6"]
RESULT = KERNEL_BASE + 0x8000
RESULT_SIZE = 4 * len(REGS) + 64  # the registers, then a 64-byte scratch area
R_OPS = ["add", "sub", "xor", "or", "and", "sll", "srl", "sra", "slt", "sltu",
         "mul", "mulh", "mulhu", "mulhsu", "div", "divu", "rem", "remu"]  # fmt: skip
I_OPS = ["addi", "xori", "ori", "andi", "slti", "sltiu"]
SHIFTS = ["slli", "srli", "srai"]

reg = st.sampled_from(REGS)
imm12 = st.integers(-2048, 2047)
u32 = st.integers(0, 0xFFFF_FFFF)

instruction = st.one_of(
    st.builds(lambda op, d, a, b: f"{op} {d}, {a}, {b}", st.sampled_from(R_OPS), reg, reg, reg),
    st.builds(lambda op, d, a, i: f"{op} {d}, {a}, {i}", st.sampled_from(I_OPS), reg, reg, imm12),
    st.builds(lambda op, d, a, i: f"{op} {d}, {a}, {i}", st.sampled_from(SHIFTS), reg, reg,
              st.integers(0, 31)),
    st.builds(lambda d, i: f"lui {d}, {i}", reg, st.integers(0, 0xFFFFF)),
    st.builds(lambda s, o: f"sw {s}, {o}(s11)", reg, st.integers(0, 15).map(lambda i: 4 * len(REGS) + 4 * i)),
    st.builds(lambda s, o: f"sb {s}, {o}(s11)", reg, st.integers(4 * len(REGS), 4 * len(REGS) + 63)),
    st.builds(lambda op, d, o: f"{op} {d}, {o}(s11)", st.sampled_from(["lw"]), reg,
              st.integers(0, 15).map(lambda i: 4 * len(REGS) + 4 * i)),
    st.builds(lambda op, d, o: f"{op} {d}, {o}(s11)", st.sampled_from(["lb", "lbu"]), reg,
              st.integers(4 * len(REGS), 4 * len(REGS) + 63)),
    st.builds(lambda d, s: f"csrrw {d}, sscratch, {s}", reg, reg),
    st.builds(lambda d: f"csrr {d}, sscratch", reg),
    st.builds(lambda d: f"csrr {d}, sstatus", reg),
)


def guest_source(inits: list[int], body: list[str]) -> str:
    lines = ["    .text", "    .globl _start", "_start:", f"    li s11, {RESULT}"]
    lines += [f"    li {r}, {v}" for r, v in zip(REGS, inits, strict=False)]
    lines += [f"    {i}" for i in body]
    lines += [f"    sw {r}, {4 * i}(s11)" for i, r in enumerate(REGS)]
    lines += ["    li a7, 0x53525354", "    li a6, 0", "    li a0, 0", "    li a1, 0", "    ecall"]
    lines.append("1:  j 1b")
    return "\n".join(lines) + "\n"


def build_guest(inits: list[int], body: list[str]) -> Image:
    """Firmware + the S-mode program (entered by the firmware at KERNEL_BASE, or by a VMM)."""
    fw = build_firmware()
    kernel = assemble(guest_source(inits, body), base=KERNEL_BASE)
    symbols = {**fw.symbols, **kernel.symbols}
    return Image(fw.segments + kernel.segments, fw.entry, symbols, source="hv-guestgen")


guests = st.builds(build_guest, st.lists(u32, min_size=len(REGS), max_size=len(REGS)),
                   st.lists(instruction, min_size=1, max_size=40))
