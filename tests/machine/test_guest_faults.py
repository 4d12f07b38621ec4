"""Guest faults are architectural (issue 3, item 13): jumping into nothing, executing garbage and
touching unmapped physical memory raise the trap the privileged spec defines - never a Python
exception - on every engine. Each program's handler records mcause, mtval and mepc in s1, s2
and s3 and passes through the test finisher; the test reads them from the hart.
"""

from __future__ import annotations

import random
import struct

import pytest

from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.image import Image, Segment
from virtlevels.machine.machine import PhysicalMachine, RunResult
from virtlevels.machine.memmap import RAM_BASE, RAM_SIZE_DEFAULT, UART_BASE


def _fast_engine_missing() -> str | None:
    try:
        import virtlevels.machine.engines.fast  # noqa: F401
    except ImportError as exc:
        return f"the fast engine is not available: {exc}"
    return None


ENGINES = [
    "interp",
    pytest.param(
        "fast",
        marks=pytest.mark.skipif(_fast_engine_missing() is not None, reason=str(_fast_engine_missing())),
    ),
]

# Causes (Priv 3.1.15, table 3.6).
MISALIGNED_FETCH, FETCH_ACCESS, ILLEGAL, LOAD_ACCESS, STORE_ACCESS = 0, 1, 2, 5, 7
NOTHING = 0x4000_0000  # no RAM and no device here
RAM_END = RAM_BASE + RAM_SIZE_DEFAULT

RECORDING_HANDLER = r"""
    .balign 4
handler:
    csrr s1, mcause
    csrr s2, mtval
    csrr s3, mepc
    li t0, 0x100000         # test finisher: pass
    li t1, 0x5555
    sw t1, 0(t0)
    j .
"""


def program(body: str) -> str:
    return f"""
    .equ NOTHING, {NOTHING}
    .globl _start
_start:
    la t0, handler
    csrw mtvec, t0
{body}
    j .
{RECORDING_HANDLER}"""


def run(source: str, engine: str, max_instructions: int = 10_000) -> tuple[PhysicalMachine, Image, RunResult]:
    image = assemble(source, "fault.S")
    machine = virt_machine()
    machine.load(image)
    return machine, image, machine.run(max_instructions, engine=engine)


def recorded(machine: PhysicalMachine) -> tuple[int, int, int]:
    x = machine.harts[0].x
    return x[9], x[18], x[19]  # s1, s2, s3


# body, cause, tval, epc: an int, or a label of the program ("fault" marks the faulting instruction)
CASES = {
    "jump to unmapped memory": ("    li t0, 0x40000000\n    jr t0", FETCH_ACCESS, NOTHING, NOTHING),
    "jump past the end of RAM": (f"    li t0, {RAM_END}\n    jr t0", FETCH_ACCESS, RAM_END, RAM_END),
    "jump to address 0": ("    jr zero", FETCH_ACCESS, 0, 0),
    "jump into a device": (f"    li t0, {UART_BASE}\n    jr t0", FETCH_ACCESS, UART_BASE, UART_BASE),
    "misaligned jump target": (
        "    la t0, target + 2\nfault:\n    jalr t0\ntarget:\n    nop",
        MISALIGNED_FETCH,
        "target+2",
        "fault",
    ),
    "all-zeros word": ("fault:\n    .word 0x00000000", ILLEGAL, 0, "fault"),
    "all-ones word": ("fault:\n    .word 0xffffffff", ILLEGAL, 0xFFFF_FFFF, "fault"),
    "load from unmapped memory": (
        "    li t0, NOTHING\nfault:\n    lw t1, 0(t0)",
        LOAD_ACCESS,
        NOTHING,
        "fault",
    ),
    "byte load at address 3": ("fault:\n    lbu t1, 3(zero)", LOAD_ACCESS, 3, "fault"),
    "load past the end of RAM": (
        f"    li t0, {RAM_END}\nfault:\n    lw t1, 0(t0)",
        LOAD_ACCESS,
        RAM_END,
        "fault",
    ),
    "store to unmapped memory": (
        "    li t0, NOTHING\nfault:\n    sw t0, 8(t0)",
        STORE_ACCESS,
        NOTHING + 8,
        "fault",
    ),
    "halfword store to unmapped memory": (
        "    li t0, 0x40000002\nfault:\n    sh t0, 0(t0)",
        STORE_ACCESS,
        NOTHING + 2,
        "fault",
    ),
    "AMO on unmapped memory": (
        "    li t0, NOTHING\nfault:\n    amoadd.w t1, t0, (t0)",
        STORE_ACCESS,
        NOTHING,
        "fault",
    ),
    "LR on unmapped memory": ("    li t0, NOTHING\nfault:\n    lr.w t1, (t0)", LOAD_ACCESS, NOTHING, "fault"),
}


def _value(image: Image, spec: int | str) -> int:
    if isinstance(spec, int):
        return spec
    name, _, offset = spec.partition("+")
    return image.symbols[name] + int(offset or 0)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", list(CASES))
def test_fault_is_the_architectural_trap(case: str, engine: str) -> None:
    body, cause, tval, epc = CASES[case]
    machine, image, result = run(program(body), engine)
    assert (result.status, result.exit_code) == ("pass", 0), f"the handler did not run: {result}"
    assert recorded(machine) == (cause, _value(image, tval), _value(image, epc))
    assert machine.harts[0].priv == 3  # M-mode took it


SV32_FAULTS = (
    r"""
    .equ ROOT, 0x80010000
    .globl _start
_start:
    la t0, handler
    csrw mtvec, t0
    li t0, ROOT
    li t1, (0x80000 << 10) | 0xcf           # identity megapage for the code: V R W X A D
    li t2, ROOT + 0x200 * 4
    sw t1, 0(t2)
    li t1, (0x40000 << 10) | 0xcf           # VA 0x00000000: a megapage onto nothing, V R W X A D
    sw t1, 0(t0)
    li t1, (0x40000 << 10) | 0x01           # VA 0x00400000: next level table in nothing
    sw t1, 4(t0)
    li t0, (1 << 31) | (ROOT >> 12)
    csrw satp, t0
    li t0, 0x1800
    csrc mstatus, t0
    li t0, 0x0800                           # to S
    csrs mstatus, t0
    la t0, s_code
    csrw mepc, t0
    mret
s_code:
    li t0, {va}
fault:
    {insn}
    j .
"""
    + RECORDING_HANDLER
)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("insn", "va", "cause"),
    [
        ("lw t1, 0(t0)", 0x0000_1000, LOAD_ACCESS),  # the leaf maps to no memory
        ("sw t1, 0(t0)", 0x0000_1000, STORE_ACCESS),
        ("lw t1, 0(t0)", 0x0040_0000, LOAD_ACCESS),  # Priv 4.3.2 step 2: the PTE itself is in nothing
        ("sw t1, 0(t0)", 0x0040_0000, STORE_ACCESS),
    ],
)
def test_sv32_access_faults_carry_the_virtual_address(insn: str, va: int, cause: int, engine: str) -> None:
    machine, image, result = run(SV32_FAULTS.format(insn=insn, va=va), engine)
    assert result.status == "pass"
    assert recorded(machine) == (cause, va, image.symbols["fault"])


@pytest.mark.parametrize("engine", ENGINES)
def test_fetch_from_a_page_of_nothing_under_sv32(engine: str) -> None:
    machine, _image, result = run(SV32_FAULTS.format(insn="jr t0", va=0x0000_2000), engine)
    assert result.status == "pass"
    assert recorded(machine) == (FETCH_ACCESS, 0x2000, 0x2000)


def _garbage_image(seed: int, n: int = 1024) -> tuple[Image, list[int]]:
    rng = random.Random(seed)
    words = [rng.choice((0, 0xFFFF_FFFF, rng.getrandbits(32))) for _ in range(n)]
    return Image((Segment(RAM_BASE, struct.pack(f"<{n}I", *words), 4 * n),), RAM_BASE), words


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_words_trap_and_never_raise(seed: int, engine: str) -> None:
    # Random code with a trap vector somewhere inside it: whatever happens is a RunResult.
    image, _words = _garbage_image(seed)
    machine = virt_machine()
    machine.load(image)
    machine.harts[0].csr.mtvec = RAM_BASE + 4 * random.Random(seed).randrange(1024)
    result = machine.run(20_000, engine=engine)
    assert result.status in ("limit", "wfi-deadlock", "pass", "fail", "halt")
    assert sum(result.traps.values()) > 0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "body",
    [".word 0xffffffff", "li t0, 0x40000000\n    lw t1, 0(t0)", "li t0, 0x40000000\n    jr t0"],
    ids=["illegal", "load", "fetch"],
)
def test_no_handler_loops_trapping_until_the_limit(body: str, engine: str) -> None:
    # mtvec = 0 (reset value): the first trap jumps to address 0, where fetching is itself an
    # access fault, forever. The run ends as "limit" with the fault counted, not with an exception.
    image = assemble(f"_start:\n    {body}\n    j .\n", "noh.S")
    machine = virt_machine()
    machine.load(image)
    assert machine.harts[0].csr.mtvec == 0
    result = machine.run(5_000, engine=engine)
    assert (result.status, result.exit_code) == ("limit", None)
    assert result.traps.get("instruction_access_fault", 0) > 1000
    csr = machine.harts[0].csr
    assert (csr.mcause, csr.mtval, csr.mepc, machine.harts[0].pc) == (FETCH_ACCESS, 0, 0, 0)
