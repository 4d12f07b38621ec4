"""The SiFive test finisher: pass, fail with code, reset-as-halt, ignored writes."""

from __future__ import annotations

from virtlevels.machine.devices.finisher import TestFinisher


def make(host, **kw) -> TestFinisher:
    fin = TestFinisher(**kw)
    fin.attach(host)
    return fin


def test_pass_exits_with_zero(host):
    fin = make(host)
    fin.write(0, 4, 0x5555)
    assert host.exits == [0] and fin.last_status == "pass"


def test_fail_exits_with_the_code_in_the_high_half(host):
    fin = make(host)
    fin.write(0, 4, (42 << 16) | 0x3333)
    assert host.exits == [42] and fin.exit_code == 42 and fin.last_status == "fail"


def test_reset_halts_with_the_configured_code(host):
    fin = make(host, reset_exit_code=7)
    fin.write(0, 4, 0x7777)
    assert host.exits == [7] and fin.last_status == "reset"


def test_other_values_offsets_and_byte_writes_are_ignored(host):
    fin = make(host)
    fin.write(0, 4, 0x1234)
    fin.write(4, 4, 0x5555)
    fin.write(0, 1, 0x55)
    assert host.exits == []
    assert fin.read(0, 4) == 0
    fin.write(0, 2, 0x5555)  # QEMU accepts 2-byte accesses
    assert host.exits == [0]


def test_snapshot_round_trip(host):
    fin = make(host)
    fin.write(0, 4, (3 << 16) | 0x3333)
    clone = TestFinisher()
    clone.restore(fin.snapshot())
    assert clone.snapshot() == fin.snapshot() == {"exit_code": 3, "last_status": "fail"}
    fin.reset()
    assert fin.snapshot() == {"exit_code": None, "last_status": None}
