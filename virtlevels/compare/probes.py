"""Small RV32 programs of the harness itself: a fallback when no workload is registered, and the
x86-like probe that shows trap-and-emulate losing equivalence (Popek & Goldberg 1974, Theorem 1).

``sensitive`` runs two of the x86-like profile's sensitive-but-unprivileged instructions in user
mode (``pushf``: sstatus.SIE/SPIE/SPP and the privilege, as x86 PUSHF; ``sgdt``: satp, as x86
SGDT; see virtlevels/machine/isa/x86like.py) and writes the 8 raw bytes. Natively and under full
emulation they read the guest kernel's state; under trap-and-emulate the hart's real state is the
VMM's (shadow page tables, the VMM's sstatus), and nothing traps to substitute the virtual one.
"""

from __future__ import annotations

from virtlevels.machine.asm import assemble
from virtlevels.machine.elf.writer import write_elf
from virtlevels.registry import Workload
from virtlevels.workloads.image import WorkloadImage

# custom-0 (opcode 0x0B) rows of the x86-like profile: pushf = funct3 1, sgdt = funct3 3; rd = a0/a1.
PUSHF_A0 = 0x0B | 10 << 7 | 1 << 12
SGDT_A1 = 0x0B | 11 << 7 | 3 << 12

_HELLO = """
    .text
    .globl _start
_start:
    li s0, {n}
1:  li a7, 172          # getpid
    ecall
    addi s0, s0, -1
    bnez s0, 1b
    li a0, 1
    la a1, msg
    li a2, 6
    li a7, 64           # write(1, msg, 6)
    ecall
    li a0, 0
    li a7, 93           # exit(0)
    ecall
    .data
msg: .ascii "hello\\n"
"""

_SENSITIVE = f"""
    .text
    .globl _start
_start:
    .word {PUSHF_A0}
    .word {SGDT_A1}
    la t0, buf
    sw a0, 0(t0)
    sw a1, 4(t0)
    li a0, 1
    mv a1, t0
    li a2, 8
    li a7, 64
    ecall
    li a0, 0
    li a7, 93
    ecall
    .data
buf: .word 0, 0
"""


def build_hello(n: int = 50) -> WorkloadImage:
    elf = write_elf(assemble(_HELLO.format(n=int(n)), base=0x10000))
    return WorkloadImage("hello", elf, ("/bin/hello",), expected_stdout=b"hello\n", params={"n": int(n)})


def build_sensitive() -> WorkloadImage:
    elf = write_elf(assemble(_SENSITIVE, base=0x10000))
    return WorkloadImage("sensitive", elf, ("/bin/sensitive",))


HELLO = Workload("hello", "getpid loop then hello (the harness's fallback)", build_hello, ("probe",))
SENSITIVE = Workload(
    "sensitive", "x86-like pushf/sgdt in user mode (needs --isa x86-like)", build_sensitive, ("probe",)
)
PROBES: dict[str, Workload] = {w.name: w for w in (HELLO, SENSITIVE)}
