"""Snapshot and restore of a whole machine: a byte-exact round trip, and identical futures."""

from __future__ import annotations

import pytest
from encode import enc, flatten, image, li

from virtlevels.errors import ConfigError
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.memmap import CLINT_BASE, RAM_BASE
from virtlevels.machine.snapshot import decode, encode

DATA = RAM_BASE + 0x4000
HANDLER = RAM_BASE + 0x800


def busy_machine() -> PhysicalMachine:
    """Two harts storing to memory in a loop, a timer armed, an ecall now and then."""
    code = flatten(
        li(1, CLINT_BASE + 0x4000), li(2, 40), enc("sw", rs1=1, rs2=2), enc("sw", rs1=1, rs2=0, imm=4),
        li(3, DATA), enc("slli", rd=4, rs1=10, imm=8), enc("add", rd=3, rs1=3, rs2=4),
        enc("addi", rd=5, rs1=5, imm=3),  # loop:
        enc("sw", rs1=3, rs2=5), enc("amoadd.w", rd=6, rs1=3, rs2=5),
        enc("andi", rd=7, rs1=5, imm=63), enc("bne", rs1=7, rs2=0, imm=8), enc("ecall"),
        enc("jal", rd=0, imm=-24),
    )  # fmt: skip
    handler = [enc("csrrs", rd=8, csr="mepc"), enc("addi", rd=8, rs1=8, imm=4),
               enc("csrrw", rs1=8, csr="mepc"), enc("addi", rd=9, rs1=9, imm=1), enc("mret")]  # fmt: skip
    m = PhysicalMachine(num_harts=2)
    m.load(image({RAM_BASE: code, HANDLER: handler}))
    for h in m.harts:
        h.csr.mtvec = HANDLER
    return m


def test_round_trip_is_byte_exact() -> None:
    m = busy_machine()
    m.run(max_instructions=777)
    blob = encode(m.snapshot())
    other = busy_machine()
    other.restore(decode(blob))
    assert encode(other.snapshot()) == blob


def test_restored_machine_has_the_same_future() -> None:
    m = busy_machine()
    m.run(max_instructions=1234)
    state = m.snapshot()
    twin = busy_machine()
    twin.restore(decode(encode(state)))
    r1 = m.run(max_instructions=3000)
    r2 = twin.run(max_instructions=3000)
    assert r1 == r2
    assert encode(m.snapshot()) == encode(twin.snapshot())
    assert m.harts[0].x[9] > 0  # the ecalls happened


def test_restore_rewinds_a_machine() -> None:
    m = busy_machine()
    m.run(max_instructions=500)
    state = m.snapshot()
    before = encode(state)
    m.run(max_instructions=500)
    assert encode(m.snapshot()) != before
    m.restore(state)
    assert encode(m.snapshot()) == before
    assert not any(h.mmu.tlb for h in m.harts)  # the TLB is invalidated on restore


def test_snapshot_is_plain_data() -> None:
    m = busy_machine()
    m.run(max_instructions=100)
    state = m.snapshot()

    def check(v: object) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                assert isinstance(k, str | int)
                check(x)
        elif isinstance(v, list):
            for x in v:
                check(x)
        else:
            assert v is None or isinstance(v, bool | int | str | bytes)

    check(state)


def test_restoring_a_mismatched_snapshot_is_an_error() -> None:
    state = busy_machine().snapshot()
    with pytest.raises(ConfigError, match="harts"):
        PhysicalMachine(num_harts=1).restore(state)
    with pytest.raises(ConfigError, match="not a machine snapshot"):
        decode(b"garbage")
