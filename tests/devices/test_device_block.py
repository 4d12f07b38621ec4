"""The vlblk block device: DMA reads and writes, errors, interrupts, costs, backings, snapshots."""

from __future__ import annotations

import pytest

from virtlevels.errors import ConfigError
from virtlevels.machine.devices import block as blk
from virtlevels.machine.devices.block import BlockDevice

BUF = 0x8000_1000
IRQ = 1


def make(host, ram, sectors: int = 8, **kw) -> BlockDevice:
    dev = BlockDevice(bytearray(sectors * 512), dma=ram, **kw)
    dev.attach(host)
    return dev


def command(dev: BlockDevice, cmd: int, sector: int, count: int, buf: int = BUF) -> int:
    dev.write(blk.REG_SECTOR_LO, 4, sector)
    dev.write(blk.REG_BUFFER_LO, 4, buf)
    dev.write(blk.REG_COUNT, 4, count)
    dev.write(blk.REG_COMMAND, 4, cmd)
    return dev.read(blk.REG_STATUS, 4)


def test_identification_registers(host, ram):
    dev = make(host, ram, sectors=8)
    assert dev.read(blk.REG_MAGIC, 4) == 0x4B424C56
    assert dev.read(blk.REG_MAGIC, 1) == ord("V")
    assert dev.read(blk.REG_VERSION, 4) == 1
    assert dev.read(blk.REG_CAPACITY_LO, 4) == 8 and dev.read(blk.REG_CAPACITY_HI, 4) == 0
    assert dev.read(blk.REG_SECTOR_SIZE, 4) == 512
    assert dev.read(blk.REG_READONLY, 4) == 0


def test_write_then_read_moves_sectors_through_dma(host, ram):
    dev = make(host, ram)
    pattern = bytes(range(256)) * 4  # two sectors
    ram.dma_write(BUF, pattern)
    assert command(dev, blk.CMD_WRITE, 2, 2) == blk.STATUS_OK
    assert bytes(dev.backing[1024:2048]) == pattern  # type: ignore[index]
    ram.dma_write(BUF + 0x2000, bytes(1024))
    assert command(dev, blk.CMD_READ, 2, 2, BUF + 0x2000) == blk.STATUS_OK
    assert ram.dma_read(BUF + 0x2000, 1024) == pattern
    assert host.charges == [("device", 200 + 100 * 2)] * 2


def test_completion_interrupt_is_gated_by_enable_and_cleared_by_ack(host, ram):
    dev = make(host, ram)
    command(dev, blk.CMD_FLUSH, 0, 0)
    assert dev.read(blk.REG_INT_STATUS, 4) == 1
    assert host.levels.get(IRQ) is None  # not enabled yet
    dev.write(blk.REG_INT_ENABLE, 4, 1)
    assert host.levels[IRQ] is True
    dev.write(blk.REG_INT_ACK, 4, 1)
    assert host.levels[IRQ] is False and dev.read(blk.REG_INT_STATUS, 4) == 0
    command(dev, blk.CMD_READ, 0, 1)
    assert host.levels[IRQ] is True


@pytest.mark.parametrize(
    ("cmd", "sector", "count", "buf", "status"),
    [
        (blk.CMD_READ, 7, 2, BUF, blk.STATUS_ERR_RANGE),
        (9, 0, 1, BUF, blk.STATUS_ERR_COMMAND),
        (blk.CMD_READ, 0, 1, 0x1000_0000, blk.STATUS_ERR_DMA),
        (blk.CMD_WRITE, 0, 1, 0x7FFF_FF00, blk.STATUS_ERR_DMA),
    ],
)
def test_bad_commands_report_status_not_exceptions(host, ram, cmd, sector, count, buf, status):
    dev = make(host, ram)
    assert command(dev, cmd, sector, count, buf) == status
    assert dev.read(blk.REG_INT_STATUS, 4) == 1  # a failed command still completes


def test_readonly_disk_refuses_writes(host, ram):
    dev = make(host, ram, readonly=True)
    assert dev.read(blk.REG_READONLY, 4) == 1
    assert command(dev, blk.CMD_WRITE, 0, 1) == blk.STATUS_ERR_READONLY


def test_no_dma_path_is_a_status_and_a_dma_host_is_picked_up_on_attach(host, dma_host):
    dev = BlockDevice(bytearray(1024))
    dev.attach(host)
    assert command(dev, blk.CMD_READ, 0, 1) == blk.STATUS_ERR_NO_DMA
    dev2 = BlockDevice(bytearray(b"\xab" * 1024))
    dev2.attach(dma_host)
    assert command(dev2, blk.CMD_READ, 1, 1) == blk.STATUS_OK
    assert dma_host.ram.dma_read(BUF, 512) == b"\xab" * 512


def test_64_bit_sector_and_buffer_registers_and_byte_writes(host, ram):
    dev = make(host, ram)
    dev.write(blk.REG_SECTOR_HI, 4, 1)
    dev.write(blk.REG_BUFFER_HI, 4, 3)
    assert dev.read(blk.REG_SECTOR_HI, 4) == 1 and dev.read(blk.REG_BUFFER_HI, 4) == 3
    dev.write(blk.REG_COUNT + 1, 1, 0x02)
    assert dev.read(blk.REG_COUNT, 4) == 0x200
    dev.write(blk.REG_COMMAND, 4, blk.CMD_READ)
    assert dev.read(blk.REG_STATUS, 4) == blk.STATUS_ERR_RANGE


def test_file_backing(host, ram, tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\x11" * 1024)
    dev = BlockDevice(path, dma=ram)
    dev.attach(host)
    assert dev.capacity == 2
    ram.dma_write(BUF, b"\x22" * 512)
    assert command(dev, blk.CMD_WRITE, 1, 1) == blk.STATUS_OK
    assert command(dev, blk.CMD_FLUSH, 0, 0) == blk.STATUS_OK
    assert path.read_bytes() == b"\x11" * 512 + b"\x22" * 512
    assert command(dev, blk.CMD_READ, 0, 1, BUF + 512) == blk.STATUS_OK
    assert ram.dma_read(BUF + 512, 512) == b"\x11" * 512
    assert dev.snapshot()["path"] == str(path)
    dev.close()


def test_bad_backings_are_config_errors(tmp_path):
    bad = tmp_path / "odd.img"
    bad.write_bytes(b"x" * 100)
    with pytest.raises(ConfigError, match="odd.img is 100 bytes"):
        BlockDevice(bad)
    with pytest.raises(ConfigError, match="missing.img"):
        BlockDevice(tmp_path / "missing.img")
    with pytest.raises(ConfigError, match="multiple of 512"):
        BlockDevice(bytearray(100))


def test_snapshot_round_trip_restores_disk_contents(host, ram):
    dev = make(host, ram)
    ram.dma_write(BUF, b"\x5a" * 512)
    command(dev, blk.CMD_WRITE, 3, 1)
    dev.write(blk.REG_INT_ENABLE, 4, 1)
    state = dev.snapshot()
    command(dev, blk.CMD_WRITE, 0, 1)  # diverge after the snapshot
    clone = make(type(host)(), ram)
    clone.restore(state)
    assert clone.snapshot() == state
    assert clone.backing[3 * 512 : 4 * 512] == b"\x5a" * 512  # type: ignore[index]
    dev.restore(state)
    assert dev.snapshot() == state
    with pytest.raises(ValueError):
        make(host, ram, sectors=2).restore(state)


def test_reset_clears_registers_and_lowers_the_line(host, ram):
    dev = make(host, ram)
    dev.write(blk.REG_INT_ENABLE, 4, 1)
    command(dev, blk.CMD_FLUSH, 5, 0)
    assert host.levels[IRQ] is True
    dev.reset()
    assert host.levels[IRQ] is False
    assert dev.read(blk.REG_SECTOR_LO, 4) == 0 and dev.read(blk.REG_INT_STATUS, 4) == 0
