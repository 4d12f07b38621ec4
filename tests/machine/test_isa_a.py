"""A extension: LR/SC reservations and every AMO (Unpriv chapter 8)."""

from __future__ import annotations

import pytest
from encode import enc, machine_with, step

from virtlevels.machine.memmap import RAM_BASE

M32 = 0xFFFFFFFF
DATA = RAM_BASE + 0x1000


@pytest.mark.parametrize(
    ("name", "old", "src", "new"),
    [
        ("amoswap.w", 5, 9, 9),
        ("amoadd.w", M32, 2, 1),
        ("amoxor.w", 0b1100, 0b1010, 0b0110),
        ("amoand.w", 0b1100, 0b1010, 0b1000),
        ("amoor.w", 0b1100, 0b1010, 0b1110),
        ("amomin.w", M32, 1, M32),  # -1 < 1
        ("amomax.w", M32, 1, 1),
        ("amominu.w", M32, 1, 1),
        ("amomaxu.w", M32, 1, M32),
    ],
)
def test_amo_returns_old_and_stores_new(name: str, old: int, src: int, new: int) -> None:
    m = machine_with([enc(name, rd=3, rs1=1, rs2=2, aq=1, rl=1)])
    h = m.harts[0]
    m.memory.write(DATA, 4, old)
    h.x[1], h.x[2] = DATA, src
    step(m)
    assert h.x[3] == old and m.memory.read(DATA, 4) == new


def test_amo_with_rd_equal_rs2_uses_the_old_rs2() -> None:
    m = machine_with([enc("amoadd.w", rd=2, rs1=1, rs2=2)])
    h = m.harts[0]
    m.memory.write(DATA, 4, 10)
    h.x[1], h.x[2] = DATA, 5
    step(m)
    assert h.x[2] == 10 and m.memory.read(DATA, 4) == 15


@pytest.mark.parametrize(
    ("word", "addr", "cause"),
    [
        (enc("amoadd.w", rd=3, rs1=1, rs2=2), DATA + 2, 6),  # misaligned AMO: store/AMO misaligned
        (enc("lr.w", rd=3, rs1=1), DATA + 1, 4),
        (enc("sc.w", rd=3, rs1=1, rs2=2), DATA + 2, 6),
        (enc("amoswap.w", rd=3, rs1=1, rs2=2), 0x3000_0000, 7),  # nothing there: store/AMO access fault
        (enc("lr.w", rd=3, rs1=1), 0x3000_0000, 5),
    ],
)
def test_atomic_faults(word: int, addr: int, cause: int) -> None:
    m = machine_with([word])
    h = m.harts[0]
    h.x[1] = addr
    step(m)
    assert (h.csr.mcause, h.csr.mtval) == (cause, addr)


def lr_sc_program() -> list[int]:
    return [enc("lr.w", rd=3, rs1=1), enc("sc.w", rd=4, rs1=1, rs2=2), enc("sc.w", rd=5, rs1=1, rs2=6)]


def test_lr_sc_succeeds_then_the_reservation_is_gone() -> None:
    m = machine_with(lr_sc_program())
    h = m.harts[0]
    m.memory.write(DATA, 4, 7)
    h.x[1], h.x[2], h.x[6] = DATA, 8, 9
    m.run(max_instructions=3)
    assert h.x[3] == 7
    assert h.x[4] == 0  # success
    assert h.x[5] == 1  # the first SC cleared the reservation
    assert m.memory.read(DATA, 4) == 8
    assert h.reservation is None and not m.watched_pages


def test_sc_without_lr_fails_and_does_not_store() -> None:
    m = machine_with([enc("sc.w", rd=4, rs1=1, rs2=2)])
    h = m.harts[0]
    h.x[1], h.x[2], h.x[4] = DATA, 8, 77
    step(m)
    assert h.x[4] == 1 and m.memory.read(DATA, 4) == 0


def test_sc_to_another_address_fails() -> None:
    m = machine_with([enc("lr.w", rd=3, rs1=1), enc("sc.w", rd=4, rs1=7, rs2=2)])
    h = m.harts[0]
    h.x[1], h.x[7], h.x[2] = DATA, DATA + 4, 8
    m.run(max_instructions=2)
    assert h.x[4] == 1 and m.memory.read(DATA + 4, 4) == 0


def test_store_from_another_hart_breaks_the_reservation() -> None:
    m = machine_with(lr_sc_program(), num_harts=2)
    h0, h1 = m.harts
    h0.x[1], h0.x[2] = DATA, 8
    h0.pc = RAM_BASE
    # hart 0 does LR; then hart 1 stores to the reserved word; then hart 0's SC must fail.
    m.table.by_name("lr.w").execute(h0, enc("lr.w", rd=3, rs1=1))
    assert h0.reservation == DATA
    # The other hart's store goes through its slow path (the page is watched) and clears it.
    assert DATA >> 12 not in h1.wcache
    h1.store(DATA, 4, 123)
    assert h0.reservation is None
    assert h0.store_conditional(DATA, 8) == 1
    assert m.memory.read(DATA, 4) == 123


def test_own_store_and_other_page_stores_keep_the_reservation() -> None:
    m = machine_with([], num_harts=2)
    h0, h1 = m.harts
    h0.load_reserved(DATA)
    h1.store(DATA + 0x2000, 4, 1)  # another page
    h1.store(DATA + 4, 4, 1)  # same page, other word
    assert h0.reservation == DATA
    assert h0.store_conditional(DATA, 5) == 0 and m.memory.read(DATA, 4) == 5


def test_amo_from_another_hart_breaks_the_reservation() -> None:
    m = machine_with([], num_harts=2)
    h0, h1 = m.harts
    h0.load_reserved(DATA)
    h1.amo(DATA, lambda old, src: old + src, 1)
    assert h0.store_conditional(DATA, 5) == 1
    assert m.memory.read(DATA, 4) == 1


def test_spinlock_with_two_harts_counts_every_increment() -> None:
    # Each hart adds 1 to a counter 50 times with an LR/SC retry loop, then spins.
    loop = [
        enc("addi", rd=5, imm=50),
        enc("lr.w", rd=3, rs1=1),  # retry:
        enc("addi", rd=3, rs1=3, imm=1),
        enc("sc.w", rd=4, rs1=1, rs2=3),
        enc("bne", rs1=4, rs2=0, imm=-12),
        enc("addi", rd=5, rs1=5, imm=-1),
        enc("bne", rs1=5, rs2=0, imm=-20),
        enc("jal", rd=0, imm=0),
    ]
    m = machine_with(loop, num_harts=2)
    for h in m.harts:
        h.x[1] = DATA
    m.run(max_instructions=4000)
    assert m.memory.read(DATA, 4) == 100
