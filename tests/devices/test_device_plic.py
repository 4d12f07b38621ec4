"""The PLIC: priorities, enables, thresholds, claim/complete, context routing, snapshots."""

from __future__ import annotations

import pytest

from virtlevels.machine.devices.plic import Plic

PENDING = 0x1000


def enable(ctx: int) -> int:
    return 0x2000 + 0x80 * ctx


def threshold(ctx: int) -> int:
    return 0x200000 + 0x1000 * ctx


def claim(ctx: int) -> int:
    return 0x200004 + 0x1000 * ctx


class Lines:
    """The harts' external-interrupt inputs, as set_external drives them."""

    def __init__(self) -> None:
        self.state: dict[tuple[int, bool], bool] = {}
        self.calls = 0

    def __call__(self, hart: int, supervisor: bool, level: bool) -> None:
        self.state[(hart, supervisor)] = level
        self.calls += 1

    def meip(self, hart: int = 0) -> bool:
        return self.state.get((hart, False), False)

    def seip(self, hart: int = 0) -> bool:
        return self.state.get((hart, True), False)


@pytest.fixture
def lines() -> Lines:
    return Lines()


@pytest.fixture
def plic(lines: Lines) -> Plic:
    return Plic(set_external=lines, num_harts=2)


def test_pending_source_interrupts_only_when_enabled_and_above_threshold(plic, lines):
    plic.set_irq(10, True)
    assert plic.read(PENDING, 4) == 1 << 10
    assert not lines.meip()  # priority 0 never interrupts
    plic.write(4 * 10, 4, 1)
    assert not lines.meip()  # not enabled
    plic.write(enable(0), 4, 1 << 10)
    assert lines.meip()
    plic.write(threshold(0), 4, 1)
    assert not lines.meip()  # priority must exceed the threshold strictly
    plic.write(threshold(0), 4, 0)
    assert lines.meip()
    assert not lines.seip() and not lines.meip(1)


def test_claim_returns_highest_priority_then_lowest_id(plic):
    for source, prio in ((3, 2), (5, 7), (7, 7)):
        plic.write(4 * source, 4, prio)
        plic.set_irq(source, True)
    plic.write(enable(0), 4, (1 << 3) | (1 << 5) | (1 << 7))
    assert plic.read(claim(0), 4) == 5
    assert plic.read(claim(0), 4) == 7
    assert plic.read(claim(0), 4) == 3
    assert plic.read(claim(0), 4) == 0


def test_claim_clears_pending_and_complete_repends_a_still_high_line(plic, lines):
    plic.write(4 * 10, 4, 1)
    plic.write(enable(0), 4, 1 << 10)
    plic.set_irq(10, True)
    assert plic.read(claim(0), 4) == 10
    assert plic.read(PENDING, 4) == 0
    assert not lines.meip()
    plic.set_irq(10, True)  # in service: the gateway holds further requests
    assert plic.read(PENDING, 4) == 0
    plic.write(claim(0), 4, 10)  # complete while the line is still high
    assert plic.read(PENDING, 4) == 1 << 10 and lines.meip()
    assert plic.read(claim(0), 4) == 10
    plic.set_irq(10, False)
    plic.write(claim(0), 4, 10)
    assert plic.read(PENDING, 4) == 0 and not lines.meip()


def test_complete_for_a_source_not_enabled_in_the_context_is_ignored(plic):
    plic.write(4 * 4, 4, 1)
    plic.write(enable(0), 4, 1 << 4)
    plic.set_irq(4, True)
    assert plic.read(claim(0), 4) == 4
    plic.write(claim(1), 4, 4)  # context 1 does not enable source 4
    plic.set_irq(4, False)
    plic.set_irq(4, True)
    assert plic.read(PENDING, 4) == 0  # still in service
    plic.write(claim(0), 4, 4)
    assert plic.read(PENDING, 4) == 1 << 4


def test_contexts_route_to_m_and_s_external_lines_of_each_hart(plic, lines):
    plic.write(4 * 33, 4, 3)  # a source in the second enable word
    plic.write(enable(3) + 4, 4, 1 << 1)  # context 3 = hart 1, S-mode
    plic.set_irq(33, True)
    assert lines.seip(1) and not lines.meip(1) and not lines.meip(0)
    assert plic.read(PENDING + 4, 4) == 1 << 1
    assert plic.read(claim(3), 4) == 33
    assert not lines.seip(1)


def test_priority_and_threshold_are_warl_and_source_zero_does_not_exist(plic):
    plic.write(4 * 2, 4, 0xFF)
    assert plic.read(4 * 2, 4) == 7
    plic.write(threshold(0), 4, 0x1F)
    assert plic.read(threshold(0), 4) == 7
    plic.write(0, 4, 5)
    assert plic.read(0, 4) == 0
    plic.write(enable(0), 4, 0xFFFF_FFFF)
    assert plic.read(enable(0), 4) == 0xFFFF_FFFE
    plic.write(PENDING, 4, 0xFFFF_FFFF)
    assert plic.read(PENDING, 4) == 0  # pending bits are read-only


def test_byte_writes_use_byte_lanes(plic):
    plic.write(enable(0) + 1, 1, 0x04)  # bit 10
    assert plic.read(enable(0), 4) == 1 << 10
    assert plic.read(enable(0) + 1, 1) == 0x04


def test_set_external_is_called_only_on_changes(plic, lines):
    plic.write(4 * 1, 4, 1)
    plic.write(enable(0), 4, 1 << 1)
    before = lines.calls
    plic.set_irq(1, True)
    plic.set_irq(1, True)
    assert lines.calls == before + 1


def test_snapshot_round_trip(plic, lines):
    plic.write(4 * 6, 4, 2)
    plic.write(4 * 9, 4, 5)
    plic.write(enable(0), 4, (1 << 6) | (1 << 9))
    plic.set_irq(6, True)
    plic.set_irq(9, True)
    assert plic.read(claim(0), 4) == 9
    state = plic.snapshot()
    other_lines = Lines()
    clone = Plic(set_external=other_lines, num_harts=2)
    clone.restore(state)
    assert other_lines.calls == 0  # restore is pure data
    assert clone.snapshot() == state
    assert clone.read(claim(0), 4) == plic.read(claim(0), 4) == 6
    clone.write(claim(0), 4, 9)
    plic.write(claim(0), 4, 9)
    assert clone.snapshot() == plic.snapshot()
    with pytest.raises(ValueError):
        Plic(set_external=lines, num_harts=1).restore(state)


def test_reset_clears_configuration_and_repends_high_lines(plic, lines):
    plic.write(4 * 2, 4, 1)
    plic.write(enable(0), 4, 1 << 2)
    plic.set_irq(2, True)
    plic.read(claim(0), 4)
    plic.reset()
    assert plic.read(4 * 2, 4) == 0 and plic.read(enable(0), 4) == 0
    assert plic.read(PENDING, 4) == 1 << 2
    assert not lines.meip()


def test_attach_wires_an_interrupt_host_to_meip_and_seip():
    class Host:  # an InterruptHost's extra method is all the PLIC uses
        def __init__(self) -> None:
            self.calls: list[tuple[int, int, bool]] = []

        def set_hart_interrupt(self, hart: int, bit: int, level: bool) -> None:
            self.calls.append((hart, bit, level))

    host = Host()
    plic = Plic(num_harts=1)
    plic.attach(host)  # type: ignore[arg-type]
    plic.write(4 * 1, 4, 1)
    plic.write(enable(1), 4, 1 << 1)  # S-mode context of hart 0
    plic.set_irq(1, True)
    assert host.calls == [(0, 9, True)]
    plic.write(enable(0), 4, 1 << 1)
    assert host.calls[-1] == (0, 11, True)
