"""The x86-like ISA profile: registration, encodings, assembly round trip, behaviour in U and S mode."""

from __future__ import annotations

import json

import pytest

from virtlevels.machine.asm import assemble
from virtlevels.machine.csr import MSTATUS_SIE, MSTATUS_SPIE, MSTATUS_SPP
from virtlevels.machine.disasm import disassemble
from virtlevels.machine.hart import Hart
from virtlevels.machine.isa import x86like
from virtlevels.machine.isa.encodings import ENCODINGS
from virtlevels.machine.isa.table import InstructionTable
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.memmap import RAM_BASE
from virtlevels.world import World

U, S, M = 0, 1, 3
ROWS = ENCODINGS + x86like.ENCODINGS
NEW = ["popf", "pushf", "smsw", "sgdt", "sidt", "sldt", "str", "rdcs", "verr", "verw"]


@pytest.fixture(scope="module")
def world() -> World:
    return World(0, entry_points=False)


def machine(world: World) -> PhysicalMachine:
    return PhysicalMachine(world=world, isa_extensions=("x86-like",), with_clint=False)


# -- registration ----------------------------------------------------------------------------------
def test_the_builtin_plugin_registers_the_profile_through_the_hook(world: World) -> None:
    entry = world.registry.entries["isa_extension"]["x86-like"]
    assert entry.plugin == "builtin" and entry.value.profile
    assert "virtlevels_register_isa_extensions" in world.plugins.records["builtin"].hooks
    m = machine(world)
    assert m.table.profile == "x86-like"
    assert m.table.sensitive_unprivileged() == NEW


def test_plugins_command_shows_the_extension_under_builtin(run_cli) -> None:
    rows = {r["name"]: r for r in json.loads(run_cli("plugins", "--json").stdout)}
    assert "isa_extension:x86-like" in rows["builtin"]["provides"]
    assert "command:isa" in rows["builtin"]["provides"]
    text = run_cli("plugins").stdout
    builtin = text[text.index("builtin"):].split("\n\n")[0]
    assert "isa_extension:x86-like" in builtin


# -- encodings -------------------------------------------------------------------------------------
def test_encodings_use_the_custom_opcodes_and_collide_with_nothing() -> None:
    table = InstructionTable()
    x86like.apply(table)
    for enc in x86like.ENCODINGS:
        assert enc.match & 0x7F in (0x0B, 0x2B)
        assert not any(enc.match & std.mask == std.match for std in ENCODINGS)
        assert table.lookup(enc.match).name == enc.name  # type: ignore[union-attr]
    # fields that are not operands are fixed: a stray bit makes the word illegal
    popf_with_rd = x86like.ENCODINGS[0].match | 1 << 7
    assert table.lookup(popf_with_rd) is None
    assert table.lookup(0x0000000B | 1 << 15) is not None  # popf ra


SOURCE = """
    popf a0
    pushf a1
    smsw t0
    sgdt t1
    sidt t2
    sldt s0
    str s1
    rdcs a2
    verr a3, sscratch
    verw a4, 0x105
"""
TEXT = ["popf\ta0", "pushf\ta1", "smsw\tt0", "sgdt\tt1", "sidt\tt2", "sldt\ts0", "str\ts1", "rdcs\ta2",
        "verr\ta3,sscratch", "verw\ta4,stvec"]  # fmt: skip


def test_assembly_and_disassembly_round_trip() -> None:
    image = assemble(SOURCE, encodings=ROWS)
    data = image.segments[0].data
    words = [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)][: len(TEXT)]
    assert words[0] == 0x0B | 10 << 15  # popf a0: rs1 = x10
    assert words[1] == 0x0B | 1 << 12 | 11 << 7  # pushf a1: funct3 1, rd = x11
    assert words[8] == 0x2B | 13 << 7 | 0x140 << 20  # verr a3, sscratch
    assert [disassemble(w, encodings=ROWS) for w in words] == TEXT
    again = assemble("\n".join(t.replace("\t", " ") for t in TEXT), encodings=ROWS)
    assert again.segments[0].data[: 4 * len(TEXT)] == data[: 4 * len(TEXT)]
    # without the extension's rows the words are not instructions
    assert disassemble(words[0]) == f".4byte\t{words[0]:#x}"


# -- behaviour ---------------------------------------------------------------------------------------
def run_at(world: World, priv: int, source: str, regs: dict[int, int] | None = None,
           **csrs: int) -> Hart:  # fmt: skip
    m = machine(world)
    m.load(assemble(source, encodings=ROWS))
    h = m.harts[0]
    for name, value in csrs.items():
        setattr(h.csr, name, value)
    for r, v in (regs or {}).items():
        h.x[r] = v
    h.set_priv(priv)
    n = source.strip().count("\n") + 1
    result = m.run(max_instructions=n)
    assert result.traps == {}, result.traps  # none of them ever traps
    assert h.pc == RAM_BASE + 4 * n
    return h


def test_popf_in_user_mode_silently_drops_the_interrupt_enable_change(world: World) -> None:
    h = run_at(world, U, "popf a0", {10: MSTATUS_SIE})
    assert not h.csr.mstatus & MSTATUS_SIE  # the enable a deprivileged kernel asked for is lost
    h = run_at(world, U, "popf a0", {10: 0}, mstatus=MSTATUS_SIE)
    assert h.csr.mstatus & MSTATUS_SIE  # ...and so is a disable


@pytest.mark.parametrize("priv", [S, M])
def test_popf_in_supervisor_and_machine_mode_changes_sie(world: World, priv: int) -> None:
    h = run_at(world, priv, "popf a0", {10: MSTATUS_SIE | 0xFFFF0000})
    assert h.csr.mstatus == MSTATUS_SIE  # only SIE comes from the register
    h = run_at(world, priv, "popf a0", {10: 0}, mstatus=MSTATUS_SIE | MSTATUS_SPIE)
    assert h.csr.mstatus == MSTATUS_SPIE


def test_pushf_popf_round_trip_in_supervisor_mode(world: World) -> None:
    h = run_at(world, S, "pushf a1\ncsrci sstatus, 2\npopf a1", mstatus=MSTATUS_SIE)
    assert h.csr.mstatus & MSTATUS_SIE


@pytest.mark.parametrize("priv", [U, S, M])
def test_pushf_reports_the_flags_and_the_privilege(world: World, priv: int) -> None:
    h = run_at(world, priv, "pushf a1", mstatus=MSTATUS_SIE | MSTATUS_SPP | 1 << 3)
    assert h.x[11] == MSTATUS_SIE | MSTATUS_SPP | priv << 12  # MIE is not a flag


@pytest.mark.parametrize("priv", [U, S])
def test_state_reads_return_the_real_supervisor_state_in_every_mode(world: World, priv: int) -> None:
    h = run_at(world, priv, "smsw t0\nsgdt t1\nsidt t2\nsldt s0\nstr s1\nrdcs a2",
               mstatus=0x0001_1882, satp=0x0040_0123, stvec=0x8000_1000, sscratch=0xCAFE)  # fmt: skip
    assert h.x[5:10] == [0x1882, 0x0040_0123, 0x8000_1000, 1, 0xCAFE]  # t0 t1 t2 s0 s1
    assert h.x[12] == priv


def test_verr_verw_depend_on_the_privilege(world: World) -> None:
    src = "verr a3, sscratch\nverw a4, sscratch\nverr a5, mstatus\nverr a6, cycle\nverw a7, cycle"
    u, s, m = (run_at(world, p, src) for p in (U, S, M))
    assert u.x[13:18] == [0, 0, 0, 0, 0]
    assert s.x[13:18] == [1, 1, 0, 0, 0]  # cycle needs mcounteren in S; it is read-only everywhere
    assert m.x[13:18] == [1, 1, 1, 1, 0]


def test_rd_x0_is_a_hint(world: World) -> None:
    h = run_at(world, S, "sidt zero", stvec=0x8000_1000)
    assert h.x[0] == 0


@pytest.mark.parametrize("engine", ["interp", "fast"])
def test_a_user_program_runs_popf_without_the_kernel_seeing_it(world: World, engine: str) -> None:
    """M-mode drops to U-mode, which runs popf and sidt; no trap reaches M until the ecall."""
    src = """
    .globl _start
_start:
    la t0, trap
    csrw mtvec, t0
    la t0, 0x80001000
    csrw stvec, t0
    la t0, user
    csrw mepc, t0
    li t0, 0x1800
    csrc mstatus, t0          # MPP = U
    mret
user:
    li a0, 2
    popf a0                   # a deprivileged "cli/sti": silently ignored
    pushf a1
    sidt a2
    ecall
trap:
    csrr a3, mcause
    li t0, 1
    la t1, tohost
    sw t0, 0(t1)
    sw zero, 4(t1)            # RV32 HTIF: the high word completes the command
1:  j 1b
    .data
    .align 3
tohost: .word 0, 0
"""
    m = machine(world)
    m.load(assemble(src, encodings=ROWS))
    result = m.run(max_instructions=200, engine=engine)
    h = m.harts[0]
    assert result.status == "pass"
    assert result.traps == {"ecall_from_u": 1}
    assert h.x[13] == 8  # the only trap: ecall from U
    assert h.x[11] == 0 and h.x[12] == 0x8000_1000  # no SIE, privilege U; the real stvec
