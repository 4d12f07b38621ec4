"""The machine as a whole: loading, running to an exit, determinism, devices, the World, extensions."""

from __future__ import annotations

import random

import pytest
from encode import enc, flatten, image, li, machine_with, program

import virtlevels
from virtlevels.errors import ConfigError
from virtlevels.machine.bus import DeviceHost, InterruptHost
from virtlevels.machine.image import Image, Segment
from virtlevels.machine.isa.encodings import Encoding
from virtlevels.machine.isa.semantics import Fields, Op
from virtlevels.machine.isa.table import Instruction, PgClass
from virtlevels.machine.machine import MachineHost, PhysicalMachine
from virtlevels.machine.memmap import RAM_BASE, TEST_FINISHER_BASE, UART_BASE
from virtlevels.world import World

TOHOST = RAM_BASE + 0x1000


def htif_exit(code: int) -> list[int]:
    """Write (code << 1) | 1 to tohost as two words, low then high (RV32 HTIF)."""
    return flatten(li(1, TOHOST), li(2, (code << 1) | 1), enc("sw", rs1=1, rs2=2),
                   enc("sw", rs1=1, rs2=0, imm=4), enc("jal", rd=0, imm=0))  # fmt: skip


@pytest.mark.parametrize(("code", "status"), [(0, "pass"), (3, "fail")])
def test_tohost_ends_the_run(code: int, status: str) -> None:
    m = PhysicalMachine()
    m.load(program(htif_exit(code), symbols={"tohost": TOHOST, "fromhost": TOHOST + 64}))
    r = m.run(max_instructions=10_000)
    assert (r.status, r.exit_code) == (status, code)
    assert r.instructions == len(htif_exit(code)) - 1  # the run stops right after the completing store


def test_test_finisher_and_uart() -> None:
    from virtlevels.machine.devices import TestFinisher, Uart16550

    m = PhysicalMachine()
    m.add_device(UART_BASE, Uart16550())
    m.add_device(TEST_FINISHER_BASE, TestFinisher())
    code = flatten(li(1, UART_BASE), enc("addi", rd=2, imm=ord("h")), enc("sb", rs1=1, rs2=2),
                   enc("addi", rd=2, imm=ord("i")), enc("sb", rs1=1, rs2=2),
                   li(1, TEST_FINISHER_BASE), li(2, 0x5555), enc("sw", rs1=1, rs2=2),
                   enc("jal", imm=0))  # fmt: skip
    m.load(program(code))
    r = m.run(max_instructions=1000)
    assert (r.status, r.exit_code, r.uart) == ("pass", 0, "hi")
    assert r.cycles_by_category["mmio"] == 3 * m.cost.mmio_access


def test_running_out_of_instructions_is_limit() -> None:
    m = machine_with([enc("jal", imm=0)])
    r = m.run(max_instructions=250)
    assert (r.status, r.exit_code, r.instructions) == ("limit", None, 250)
    assert r.cycles == 250 * m.cost.instruction["jump"]


def test_garbage_and_wild_jumps_are_traps_not_exceptions() -> None:
    rng = random.Random(7)
    words = [rng.getrandbits(32) for _ in range(512)]
    m = machine_with(words)
    m.harts[0].csr.mtvec = RAM_BASE + 4 * rng.randrange(512)
    r = m.run(max_instructions=5000)
    assert r.status in ("limit", "wfi-deadlock") and sum(r.traps.values()) > 0


def test_same_program_same_cycles() -> None:
    prog = flatten(li(1, 300), enc("mul", rd=2, rs1=1, rs2=1), enc("sw", rs1=0, rs2=2, imm=0),
                   enc("addi", rd=1, rs1=1, imm=-1), enc("bne", rs1=1, rs2=0, imm=-12))  # fmt: skip
    results = []
    for _ in range(2):
        m = machine_with(prog, num_harts=2)
        results.append(m.run(max_instructions=3000))
    assert results[0] == results[1]


def test_harts_interleave_in_quanta() -> None:
    # Each hart appends its id to a shared log with amoadd-allocated slots.
    log = RAM_BASE + 0x8000
    code = flatten(li(1, log), li(2, 4),
                   enc("amoadd.w", rd=3, rs1=1, rs2=2),  # slot = fetch_add(&next, 4)
                   enc("add", rd=3, rs1=3, rs2=1), enc("sw", rs1=3, rs2=10, imm=4),
                   enc("jal", imm=-12))  # fmt: skip
    m = machine_with(code, num_harts=2)
    m.memory.write(log, 4, 0)
    m.run(max_instructions=4 * m.cost.quantum)
    ids = [m.memory.read(log + 4 + 4 * i, 4) for i in range(m.memory.read(log, 4) // 4)]
    assert set(ids) == {0, 1}
    assert ids[:5] == [0] * 5  # hart 0 runs a whole quantum first


def test_load_sets_entry_and_a0_and_rejects_segments_outside_ram() -> None:
    m = PhysicalMachine(num_harts=3)
    m.load(Image((Segment(RAM_BASE, b"\x13\x00\x00\x00", 16),), RAM_BASE + 4, {}, "x.elf"))
    assert [(h.pc, h.x[10]) for h in m.harts] == [(RAM_BASE + 4, 0), (RAM_BASE + 4, 1), (RAM_BASE + 4, 2)]
    with pytest.raises(ConfigError, match=r"x\.elf: \.data \(0x00001000-0x00001004\) is outside RAM"):
        m.load(Image((Segment(0x1000, b"abcd", 4, name=".data"),), 0x1000, {}, "x.elf"))


def test_device_host_protocols() -> None:
    m = PhysicalMachine()
    host = MachineHost(m, "x")
    assert isinstance(host, DeviceHost) and isinstance(host, InterruptHost)
    fired: list[int] = []
    host.schedule(10, lambda: fired.append(m.now))
    m.events.run()
    assert fired == [10]
    host.charge("widget", 5)
    assert m.machine_charges == {"widget": 5}
    with pytest.raises(ConfigError, match="already attached"):
        m.add_device(0x2000_0000, m.clint)


def test_world_graph_and_trap_observer() -> None:
    seen: list[tuple[int, int, int]] = []

    class Watcher:
        @virtlevels.hookimpl
        def virtlevels_on_trap(self, hart_id: int, cause: int, epc: int, interrupt: bool) -> None:
            seen.append((hart_id, cause, epc))

    world = World(0, entry_points=False)
    world.register_plugin(Watcher(), "watcher")
    m = PhysicalMachine(num_harts=2, world=world)
    m.load(program([enc("ecall")]))
    m.run(max_instructions=2 * m.cost.quantum)  # one quantum each: ecall, then faults at mtvec = 0
    assert seen[0] == (0, 11, RAM_BASE) and seen[1] == (0, 1, 0)
    assert seen[m.cost.quantum] == (1, 11, RAM_BASE)
    g = world.graph
    assert m.node_id == "machine:0"
    assert g.kind("machine:0/hart:1") == "hart" and g.kind("machine:0/memory:0") == "memory"
    assert {g.attrs(n)["name"] for n in g.nodes("device")} == {"clint"}
    assert "machine:0" in g.depends_on("machine:0/hart:0")


class _Popf:
    """An x86-like 'popf': writes MIE from rs1 in any mode, without trapping (sensitive, unprivileged)."""

    encoding = Encoding("popf", "I", 0x0000000B, 0x0000707F, "rs1", "alu", "x86-like")

    @staticmethod
    def semantics(f: Fields) -> Op:
        rs1 = f.rs1

        def op(h, x, pc):  # type: ignore[no-untyped-def]
            if h.priv == 3:  # silently ignored below M: the classic non-virtualizable behaviour
                h.csr.mstatus = (h.csr.mstatus & ~8) | (x[rs1] & 8)
            return pc + 4

        return op


def test_tables_can_be_extended_with_new_instructions_and_classes() -> None:
    from virtlevels.cost import load_profile, register_cost_keys

    m = PhysicalMachine(profile=load_profile("default"))
    m.table.extend([Instruction(_Popf.encoding, _Popf.semantics, PgClass(behaviour_sensitive=True,
                                                                         control_sensitive=True))],
                   profile="x86-like")  # fmt: skip
    assert m.table.sensitive_unprivileged() == ["popf"]
    m.load(program([0x0000000B | (1 << 15), enc("addi", rd=2, imm=1)]))
    m.harts[0].x[1] = 8
    m.run(max_instructions=2)
    assert m.harts[0].csr.mstatus & 8 and m.harts[0].x[2] == 1
    # a new cost class must have a cost
    m.table.extend([Instruction(Encoding("cpuid", "I", 0x0000100B, 0x0000707F, "", "x86", "x86-like"),
                                _Popf.semantics)])  # fmt: skip
    with pytest.raises(ConfigError, match="no cost for instruction class 'x86'"):
        m.run(max_instructions=1)
    register_cost_keys("instruction", {"x86": 7})
    try:
        m2 = PhysicalMachine()
        assert m2.cost.instruction["x86"] == 7
    finally:
        from virtlevels import cost

        del cost._SCHEMA["instruction"]["x86"]


def test_unknown_engine() -> None:
    with pytest.raises(ConfigError, match="unknown engine 'warp'"):
        machine_with([]).run(engine="warp")


def test_a_gigabyte_of_ram_costs_nothing_until_touched() -> None:
    m = PhysicalMachine(ram_size=1 << 30)
    m.load(image({RAM_BASE: [enc("sw", rs1=1, rs2=1)]}))
    m.harts[0].x[1] = RAM_BASE + (1 << 30) - 4
    m.run(max_instructions=1)
    assert len(m.memory.pages) == 2


def test_tracer_sees_every_instruction_and_trap() -> None:
    events: list[tuple[str, int]] = []

    class Recorder:
        def instruction(self, hart: object, pc: int, word: int) -> None:
            events.append(("insn", pc))

        def trap(self, hart: object, cause: int, tval: int, epc: int, from_priv: int, to_priv: int,
                 interrupt: bool) -> None:  # fmt: skip
            events.append(("trap", cause))

    m = machine_with([enc("addi", rd=1, rs1=1, imm=1), enc("ecall")])
    m.harts[0].csr.mtvec = RAM_BASE
    m.tracer = Recorder()
    r = m.run(max_instructions=3)
    assert events == [("insn", RAM_BASE), ("insn", RAM_BASE + 4), ("trap", 11), ("insn", RAM_BASE)]
    assert r.instructions == 2 and m.harts[0].x[1] == 2


def test_isa_extensions_come_from_the_world_registry() -> None:
    from virtlevels.registry import IsaExtension

    class X86Like:
        @virtlevels.hookimpl
        def virtlevels_register_isa_extensions(self, registry: object) -> None:
            registry.add_isa_extension(  # type: ignore[attr-defined]
                IsaExtension("popf-demo", "a sensitive unprivileged instruction",
                             lambda table: table.extend([Instruction(_Popf.encoding, _Popf.semantics,
                                                                     PgClass(control_sensitive=True))]),
                             profile=True)  # fmt: skip
            )

    world = World(0, entry_points=False)
    world.register_plugin(X86Like(), "x86like")
    m = PhysicalMachine(world=world, isa_extensions=("popf-demo",))
    assert m.table.profile == "popf-demo" and m.table.sensitive_unprivileged() == ["popf"]
    with pytest.raises(ConfigError, match="unknown ISA extension 'nope'"):
        PhysicalMachine(world=world, isa_extensions=("nope",))


def test_device_interrupt_lines_reach_the_hart_through_the_plic() -> None:
    from virtlevels.machine.csr import MEIP
    from virtlevels.machine.devices import Plic
    from virtlevels.machine.memmap import PLIC_BASE

    m = PhysicalMachine()
    plic = m.add_device(PLIC_BASE, Plic())
    plic.write(4 * 10, 4, 1)  # source 10 (the UART's line) priority 1
    plic.write(0x2000, 4, 1 << 10)  # enabled for context 0 (hart 0, M-mode)
    MachineHost(m, "uart0").raise_irq(10, True)
    assert m.harts[0].csr.mip_hw & MEIP
