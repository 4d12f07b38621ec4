"""The vlnet NIC: transmit via DMA to a sink, receive into posted buffers, drops, snapshots."""

from __future__ import annotations

import pytest

from virtlevels.errors import ConfigError
from virtlevels.machine.devices import nic as n
from virtlevels.machine.devices.nic import Nic

TX_BUF, RX_BUF = 0x8000_2000, 0x8000_3000
IRQ = 2
FRAME = bytes.fromhex("ffffffffffff5254001234560806") + b"payload" * 8


def make(host, ram, **kw) -> tuple[Nic, list[bytes]]:
    sent: list[bytes] = []
    nic = Nic(sink=sent.append, dma=ram, **kw)
    nic.attach(host)
    return nic, sent


def post_rx(nic: Nic, addr: int = RX_BUF, size: int = 1514) -> None:
    nic.write(n.REG_RX_ADDR, 4, addr)
    nic.write(n.REG_RX_SIZE, 4, size)
    nic.write(n.REG_RX_DOORBELL, 4, 1)


def test_mac_and_identification_registers(host, ram):
    nic, _ = make(host, ram, mac=bytes.fromhex("020000abcdef"))
    assert nic.read(n.REG_MAGIC, 4) == 0x494E4C56
    assert nic.read(n.REG_MAC_LO, 4) == 0xAB00_0002 and nic.read(n.REG_MAC_HI, 4) == 0xEFCD
    mac = nic.read(n.REG_MAC_LO, 4).to_bytes(4, "little") + nic.read(n.REG_MAC_HI, 4).to_bytes(2, "little")
    assert mac == bytes.fromhex("020000abcdef")
    assert nic.read(n.REG_STATUS, 4) & n.STATUS_LINK_UP
    with pytest.raises(ConfigError, match="6 bytes"):
        Nic(mac=b"\x00")


def test_transmit_reads_the_frame_by_dma_and_hands_it_to_the_sink(host, ram):
    nic, sent = make(host, ram)
    ram.dma_write(TX_BUF, FRAME)
    nic.write(n.REG_INT_ENABLE, 4, n.INT_TX_DONE)
    nic.write(n.REG_TX_ADDR, 4, TX_BUF)
    nic.write(n.REG_TX_LEN, 4, len(FRAME))
    nic.write(n.REG_TX_DOORBELL, 4, 1)
    assert sent == [FRAME]
    assert nic.read(n.REG_TX_STATUS, 4) == n.TX_OK
    assert nic.read(n.REG_TX_FRAMES, 4) == 1
    assert host.levels[IRQ] is True
    assert host.charges == [("device", 300 + len(FRAME))]
    nic.write(n.REG_INT_ACK, 4, n.INT_TX_DONE)
    assert host.levels[IRQ] is False


@pytest.mark.parametrize(
    ("addr", "length", "status"),
    [(TX_BUF, 13, n.TX_ERR_LENGTH), (TX_BUF, 1515, n.TX_ERR_LENGTH), (0x100, 64, n.TX_ERR_DMA)],
)
def test_bad_transmits_set_status_and_error_interrupt(host, ram, addr, length, status):
    nic, sent = make(host, ram)
    nic.write(n.REG_TX_ADDR, 4, addr)
    nic.write(n.REG_TX_LEN, 4, length)
    nic.write(n.REG_TX_DOORBELL, 4, 1)
    assert sent == []
    assert nic.read(n.REG_TX_STATUS, 4) == status
    assert nic.read(n.REG_INT_STATUS, 4) == n.INT_ERROR


def test_receive_into_a_posted_buffer(host, ram):
    nic, _ = make(host, ram)
    nic.write(n.REG_INT_ENABLE, 4, n.INT_RX_DONE)
    post_rx(nic)
    assert nic.read(n.REG_STATUS, 4) & n.STATUS_RX_ARMED
    assert nic.receive(FRAME) is True
    assert ram.dma_read(RX_BUF, len(FRAME)) == FRAME
    assert nic.read(n.REG_RX_LEN, 4) == len(FRAME)
    assert nic.read(n.REG_RX_FRAMES, 4) == 1
    assert nic.read(n.REG_STATUS, 4) & n.STATUS_RX_ARMED == 0  # one frame per posted buffer
    assert host.levels[IRQ] is True


def test_frames_queue_until_a_buffer_is_posted_and_overflow_drops(host, ram):
    nic, _ = make(host, ram, rx_queue_limit=2)
    assert nic.receive(FRAME + b"1") and nic.receive(FRAME + b"2")
    assert nic.receive(FRAME + b"3") is False
    assert nic.read(n.REG_RX_DROPPED, 4) == 1
    assert nic.read(n.REG_STATUS, 4) & n.STATUS_RX_QUEUED
    post_rx(nic)
    assert ram.dma_read(RX_BUF, len(FRAME) + 1) == FRAME + b"1"
    post_rx(nic, RX_BUF + 0x800)
    assert ram.dma_read(RX_BUF + 0x800, len(FRAME) + 1) == FRAME + b"2"
    assert nic.read(n.REG_STATUS, 4) & n.STATUS_RX_QUEUED == 0


def test_too_big_frame_is_dropped_and_the_buffer_stays_posted(host, ram):
    nic, _ = make(host, ram)
    nic.receive(FRAME)
    nic.receive(FRAME[:20])
    post_rx(nic, size=32)
    assert nic.read(n.REG_RX_DROPPED, 4) == 1
    assert nic.read(n.REG_RX_LEN, 4) == 20  # the next queued frame used the buffer
    assert nic.receive(b"short") is False  # below an Ethernet header


def test_receive_dma_fault_is_an_error_status(host, ram):
    nic, _ = make(host, ram)
    post_rx(nic, addr=0x10)
    nic.receive(FRAME)
    assert nic.read(n.REG_RX_STATUS, 4) == n.RX_ERR_DMA
    assert nic.read(n.REG_INT_STATUS, 4) & n.INT_ERROR


def test_unplugged_nic_reports_link_down_and_drops_transmits(host, dma_host):
    nic = Nic()
    nic.attach(dma_host)  # DMA comes from the host
    dma_host.ram.dma_write(TX_BUF, FRAME)
    assert nic.read(n.REG_STATUS, 4) & n.STATUS_LINK_UP == 0
    nic.write(n.REG_TX_ADDR, 4, TX_BUF)
    nic.write(n.REG_TX_LEN, 4, len(FRAME))
    nic.write(n.REG_TX_DOORBELL, 4, 1)
    assert nic.read(n.REG_TX_STATUS, 4) == n.TX_OK
    got: list[bytes] = []
    nic.connect(got.append)
    nic.write(n.REG_TX_DOORBELL, 4, 1)
    assert got == [FRAME]


def test_snapshot_round_trip(host, ram):
    nic, _ = make(host, ram)
    nic.receive(FRAME)
    nic.receive(FRAME[:40])
    post_rx(nic)
    nic.write(n.REG_INT_ENABLE, 4, 7)
    state = nic.snapshot()
    clone, _ = make(type(host)(), ram)
    clone.restore(state)
    assert clone.snapshot() == state
    for dev in (nic, clone):
        post_rx(dev, RX_BUF + 0x800)
    assert clone.snapshot() == nic.snapshot()
    assert clone.read(n.REG_RX_LEN, 4) == 40
    nic.reset()
    assert nic.read(n.REG_RX_FRAMES, 4) == 0 and nic.read(n.REG_STATUS, 4) == n.STATUS_LINK_UP
