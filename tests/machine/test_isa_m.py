"""M extension: multiplication and division, including the cases table 7.1 of Unpriv 7.2 defines."""

from __future__ import annotations

import pytest
from encode import enc, machine_with, step
from hypothesis import given
from hypothesis import strategies as st

M32 = 0xFFFFFFFF
INT_MIN = 0x80000000


def run(name: str, a: int, b: int) -> int:
    m = machine_with([enc(name, rd=3, rs1=1, rs2=2)])
    h = m.harts[0]
    h.x[1], h.x[2] = a & M32, b & M32
    step(m)
    assert h.trap_count == 0  # no M instruction ever traps
    return h.x[3]


@pytest.mark.parametrize(
    ("name", "a", "b", "want"),
    [
        ("mul", 0xFFFFFFFF, 0xFFFFFFFF, 1),
        ("mul", 0x10000, 0x10000, 0),
        ("mulh", -1, -1, 0),
        ("mulh", INT_MIN, INT_MIN, 0x40000000),
        ("mulh", INT_MIN, 1, M32),
        ("mulhu", M32, M32, 0xFFFFFFFE),
        ("mulhsu", -1, M32, M32),  # -1 * (2^32 - 1) = -(2^32 - 1): high word all ones
        ("mulhsu", 2, M32, 1),
        # division by zero: quotient all ones, remainder the dividend
        ("div", 7, 0, M32), ("divu", 7, 0, M32), ("rem", 7, 0, 7), ("remu", 7, 0, 7),
        ("rem", -7, 0, -7 & M32),
        # signed overflow: INT_MIN / -1 = INT_MIN, remainder 0
        ("div", INT_MIN, -1, INT_MIN), ("rem", INT_MIN, -1, 0),
        # rounding toward zero; the remainder takes the dividend's sign
        ("div", -7, 2, -3 & M32), ("rem", -7, 2, -1 & M32), ("div", 7, -2, -3 & M32), ("rem", 7, -2, 1),
        ("divu", -7 & M32, 2, 0x7FFFFFFC), ("remu", -7 & M32, 2, 1),
    ],
)  # fmt: skip
def test_m_cases(name: str, a: int, b: int, want: int) -> None:
    assert run(name, a, b) == want


def signed(v: int) -> int:
    return v - (1 << 32) if v & INT_MIN else v


@given(st.integers(0, M32), st.integers(0, M32))
def test_division_identity(a: int, b: int) -> None:
    from virtlevels.machine.isa.semantics import div_signed, div_unsigned, rem_signed, rem_unsigned

    if b:
        assert (div_unsigned(a, b) * b + rem_unsigned(a, b)) & M32 == a
        if not (a == INT_MIN and b == M32):
            q, r = signed(div_signed(a, b)), signed(rem_signed(a, b))
            assert q * signed(b) + r == signed(a)
            assert abs(r) < abs(signed(b)) and (r == 0 or (r < 0) == (signed(a) < 0))


@given(st.integers(0, M32), st.integers(0, M32))
def test_products(a: int, b: int) -> None:
    from virtlevels.machine.isa.table import InstructionTable

    table = InstructionTable()
    m = machine_with([])
    h = m.harts[0]
    for name, want in (
        ("mul", (a * b) & M32),
        ("mulh", (signed(a) * signed(b)) >> 32 & M32),
        ("mulhsu", (signed(a) * b) >> 32 & M32),
        ("mulhu", (a * b) >> 32),
    ):
        h.x[1], h.x[2] = a, b
        op = table.by_name(name).bind(enc(name, rd=3, rs1=1, rs2=2))
        op(h, h.x, 0)
        assert h.x[3] == want
