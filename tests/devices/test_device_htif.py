"""HTIF tohost/fromhost: exit codes, the RV32 two-halves rule, console putchar/getchar, acks."""

from __future__ import annotations

from virtlevels.machine.devices.htif import Htif, htif_command

TOHOST, FROMHOST = 0, 8


def make(host, **kw) -> Htif:
    htif = Htif(**kw)
    htif.attach(host)
    return htif


def store64_rv32(htif: Htif, offset: int, value: int) -> None:
    """How an RV32 guest stores a 64-bit word: low word, then high word."""
    htif.write(offset, 4, value & 0xFFFF_FFFF)
    htif.write(offset + 4, 4, value >> 32)


def test_value_1_is_pass_and_needs_the_high_word_write(host):
    htif = make(host)
    htif.write(TOHOST, 4, 1)
    assert host.exits == []  # the low word alone does not complete the command
    assert htif.read(TOHOST, 4) == 1
    htif.write(TOHOST + 4, 4, 0)
    assert host.exits == [0] and htif.exit_code == 0
    assert htif.read(TOHOST, 4) == 0  # the host consumed the command


def test_failing_test_number_is_value_shifted_right(host):
    htif = make(host)
    store64_rv32(htif, TOHOST, (3 << 1) | 1)
    assert host.exits == [3]


def test_putchar_goes_to_the_console_and_is_acknowledged_in_fromhost(host):
    got: list[bytes] = []
    htif = make(host, console=got.append)
    store64_rv32(htif, TOHOST, htif_command(1, 1, ord("A")))
    store64_rv32(htif, TOHOST, htif_command(1, 1, ord("B")))
    assert got == [b"A", b"B"] and htif.output == b"AB"
    assert host.exits == []
    assert htif.read(FROMHOST, 4) == 0x100 | ord("A")
    assert htif.read(FROMHOST + 4, 4) == 0x0101_0000
    store64_rv32(htif, FROMHOST, 0)  # guest clears fromhost: the next response arrives
    assert htif.fromhost == htif_command(1, 1, 0x100 | ord("B"))
    store64_rv32(htif, FROMHOST, 0)
    assert htif.fromhost == 0


def test_getchar_waits_for_input(host):
    htif = make(host)
    store64_rv32(htif, TOHOST, htif_command(1, 0, 0))
    assert htif.fromhost == 0
    htif.feed(b"k")
    assert htif.fromhost == htif_command(1, 0, 0x100 | ord("k"))


def test_other_commands_are_ignored_and_acknowledged(host):
    htif = make(host)
    store64_rv32(htif, TOHOST, htif_command(0, 0, 0x8000_1000))  # syscall proxy (even payload)
    assert host.exits == [] and htif.ignored == 1
    assert htif.fromhost == htif_command(0, 0, 0)
    store64_rv32(htif, FROMHOST, 0)
    store64_rv32(htif, TOHOST, htif_command(7, 255, 0))
    assert htif.ignored == 2 and htif.fromhost == htif_command(7, 255, 0)


def test_byte_stores_complete_on_the_top_byte(host):
    htif = make(host)
    for i, b in enumerate((5 << 1 | 1).to_bytes(8, "little")):
        assert host.exits == []
        htif.write(TOHOST + i, 1, b)
    assert host.exits == [5]


def test_snapshot_round_trip_and_reset(host):
    htif = make(host)
    store64_rv32(htif, TOHOST, htif_command(1, 1, ord("x")))
    store64_rv32(htif, TOHOST, htif_command(1, 1, ord("y")))
    store64_rv32(htif, TOHOST, htif_command(1, 0, 0))
    htif.write(TOHOST, 4, 9)  # half-written command
    state = htif.snapshot()
    clone = make(type(host)())
    clone.restore(state)
    assert clone.snapshot() == state
    for dev in (htif, clone):
        dev.feed(b"z")
        store64_rv32(dev, FROMHOST, 0)
        store64_rv32(dev, FROMHOST, 0)
    assert clone.snapshot() == htif.snapshot()
    assert clone.fromhost == htif_command(1, 0, 0x100 | ord("z"))
    htif.reset()
    assert htif.tohost == htif.fromhost == 0 and htif.exit_code is None


def test_fromhost_can_sit_64_bytes_after_tohost_as_in_riscv_tests(host):
    htif = make(host, fromhost_offset=64)
    assert htif.size == 72
    store64_rv32(htif, TOHOST, htif_command(1, 1, ord("c")))
    assert htif.read(8, 4) == 0  # the gap
    assert htif.read(64, 4) == 0x100 | ord("c")
    store64_rv32(htif, 64, 0)
    assert htif.fromhost == 0
