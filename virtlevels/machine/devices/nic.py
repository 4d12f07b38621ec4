"""A small DMA Ethernet NIC (``vlnet``): raw frames in and out, one buffer each way.

Like the block device this is the project's own register interface, a stripped-down cousin of
virtio-net (no virtqueues: one transmit descriptor and one posted receive buffer, in the style
of early single-buffer NICs). Frames are raw Ethernet (destination MAC, source MAC, EtherType,
payload; no preamble, no FCS), 14 to ``max_frame`` bytes. All registers are 32 bits at a
0x1000-byte region::

    0x00  MAGIC        RO  0x494E4C56 ("VLNI")
    0x04  VERSION      RO  1
    0x08  MAC_LO       RO  MAC bytes 0-3 (byte 0 in bits 7:0)
    0x0C  MAC_HI       RO  MAC bytes 4-5
    0x10  STATUS       RO  bit 0 LINK_UP (a frame sink is connected), bit 1 RX_ARMED (a receive
                           buffer is posted), bit 2 RX_QUEUED (frames wait for a buffer)
    0x14  INT_STATUS   RO  bit 0 TX_DONE, bit 1 RX_DONE, bit 2 ERROR
    0x18  INT_ACK      WO  write 1s to clear INT_STATUS bits
    0x1C  INT_ENABLE   RW  INT_STATUS bits that raise the interrupt line
    0x20  TX_ADDR      RW  guest-physical address of the frame to send
    0x24  TX_LEN       RW  its length in bytes
    0x28  TX_DOORBELL  WO  any write sends the frame
    0x2C  TX_STATUS    RO  0 OK, 1 ERR_LENGTH, 2 ERR_DMA, 3 ERR_NO_DMA
    0x30  RX_ADDR      RW  guest-physical address of the receive buffer
    0x34  RX_SIZE      RW  its size in bytes
    0x38  RX_DOORBELL  WO  any write posts (arms) the buffer
    0x3C  RX_LEN       RO  length of the frame last received into the buffer
    0x40  RX_STATUS    RO  0 OK, 1 ERR_TOO_BIG (frame dropped, buffer stays posted), 2 ERR_DMA
    0x44  TX_FRAMES    RO  frames sent
    0x48  RX_FRAMES    RO  frames received into guest memory
    0x4C  RX_DROPPED   RO  frames dropped (queue full, too big, bad length)

Transmit completes during the doorbell write: the frame is read by DMA, handed to the sink
(``connect(sink)``; without one the link is down and the frame is lost, as on an unplugged
cable), TX_DONE is set, and ``host.charge("device", frame_cycles + byte_cycles * len)``.
:meth:`receive` is what the network calls: the frame goes straight into a posted buffer (which
is then disarmed, RX_DONE), or waits in a queue of ``rx_queue_limit`` frames until the guest
posts one; beyond that it is dropped, as a full ring drops.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels.machine.devices.dma import DmaFault, DmaHost
from virtlevels.machine.devices.regs import read_lanes, write_lanes
from virtlevels.machine.memmap import NIC_IRQ, NIC_SIZE

if TYPE_CHECKING:
    from virtlevels.machine.bus import DeviceHost

FrameSink = Callable[[bytes], object]

MAGIC = 0x494E4C56
VERSION = 1
MIN_FRAME = 14  # an Ethernet header (IEEE 802.3 §3.1.1 without preamble and FCS)
MAX_FRAME = 1514  # 1500-byte MTU + header

(
    REG_MAGIC,
    REG_VERSION,
    REG_MAC_LO,
    REG_MAC_HI,
    REG_STATUS,
    REG_INT_STATUS,
    REG_INT_ACK,
    REG_INT_ENABLE,
    REG_TX_ADDR,
    REG_TX_LEN,
    REG_TX_DOORBELL,
    REG_TX_STATUS,
    REG_RX_ADDR,
    REG_RX_SIZE,
    REG_RX_DOORBELL,
    REG_RX_LEN,
    REG_RX_STATUS,
    REG_TX_FRAMES,
    REG_RX_FRAMES,
    REG_RX_DROPPED,
) = range(0x00, 0x50, 4)

STATUS_LINK_UP, STATUS_RX_ARMED, STATUS_RX_QUEUED = 0x1, 0x2, 0x4
INT_TX_DONE, INT_RX_DONE, INT_ERROR = 0x1, 0x2, 0x4
TX_OK, TX_ERR_LENGTH, TX_ERR_DMA, TX_ERR_NO_DMA = 0, 1, 2, 3
RX_OK, RX_ERR_TOO_BIG, RX_ERR_DMA = 0, 1, 2

_WRITE_ONLY = (REG_INT_ACK, REG_TX_DOORBELL, REG_RX_DOORBELL)


@attrs.define(eq=False)
class Nic:
    """An Ethernet NIC with MAC ``mac``; frames leave through ``sink`` and arrive via :meth:`receive`."""

    mac: bytes = b"\x52\x54\x00\x12\x34\x56"  # QEMU's default locally administered MAC
    sink: FrameSink | None = None
    dma: DmaHost | None = None
    name: str = "nic0"
    irq: int = NIC_IRQ
    max_frame: int = MAX_FRAME
    rx_queue_limit: int = 32
    frame_cycles: int = 300
    byte_cycles: int = 1
    size: int = NIC_SIZE

    _host: DeviceHost | None = attrs.field(default=None, init=False)
    _int_status: int = attrs.field(default=0, init=False)
    _int_enable: int = attrs.field(default=0, init=False)
    _tx_addr: int = attrs.field(default=0, init=False)
    _tx_len: int = attrs.field(default=0, init=False)
    _tx_status: int = attrs.field(default=TX_OK, init=False)
    _rx_addr: int = attrs.field(default=0, init=False)
    _rx_size: int = attrs.field(default=0, init=False)
    _rx_len: int = attrs.field(default=0, init=False)
    _rx_status: int = attrs.field(default=RX_OK, init=False)
    _rx_armed: bool = attrs.field(default=False, init=False)
    _rx_queue: deque[bytes] = attrs.field(factory=deque, init=False)
    tx_frames: int = attrs.field(default=0, init=False)
    rx_frames: int = attrs.field(default=0, init=False)
    rx_dropped: int = attrs.field(default=0, init=False)
    _irq_level: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        if len(self.mac) != 6:
            raise ConfigError(f"NIC {self.name}: mac must be 6 bytes, got {self.mac.hex(':')!r}")
        if self.max_frame < MIN_FRAME:
            raise ConfigError(f"NIC {self.name}: max_frame {self.max_frame} is below {MIN_FRAME}")

    def attach(self, host: DeviceHost) -> None:
        self._host = host
        if self.dma is None and isinstance(host, DmaHost):
            self.dma = host

    def connect(self, sink: FrameSink | None) -> None:
        """Plug the NIC into a link: transmitted frames go to ``sink`` (None unplugs it)."""
        self.sink = sink

    @property
    def irq_level(self) -> bool:
        return self._irq_level

    # -- the network side --------------------------------------------------------------------
    def receive(self, frame: bytes) -> bool:
        """A frame arrives from the link. Returns False if the NIC dropped it on arrival (bad
        length, queue full); a frame accepted here may still be dropped later as too big for the
        buffer the guest posts (counted in RX_DROPPED)."""
        if not MIN_FRAME <= len(frame) <= self.max_frame or len(self._rx_queue) >= self.rx_queue_limit:
            self.rx_dropped += 1
            return False
        self._rx_queue.append(bytes(frame))
        self._drain()
        return True

    def _drain(self) -> None:
        while self._rx_armed and self._rx_queue:
            self._deliver(self._rx_queue.popleft())

    def _deliver(self, frame: bytes) -> None:
        if len(frame) > self._rx_size:
            self.rx_dropped += 1
            self._rx_status = RX_ERR_TOO_BIG
            self._int_status |= INT_ERROR
            self._update_irq()
            return
        dma = self.dma
        try:
            if dma is None:
                raise DmaFault("no DMA path")
            dma.dma_write(self._rx_addr, frame)
        except DmaFault:
            self.rx_dropped += 1
            self._rx_status = RX_ERR_DMA
            self._rx_armed = False
            self._int_status |= INT_ERROR
            self._update_irq()
            return
        self._charge(len(frame))
        self._rx_len = len(frame)
        self._rx_status = RX_OK
        self._rx_armed = False
        self.rx_frames += 1
        self._int_status |= INT_RX_DONE
        self._update_irq()

    def _transmit(self) -> None:
        length = self._tx_len
        if not MIN_FRAME <= length <= self.max_frame:
            self._tx_status = TX_ERR_LENGTH
        elif self.dma is None:
            self._tx_status = TX_ERR_NO_DMA
        else:
            try:
                frame = self.dma.dma_read(self._tx_addr, length)
            except DmaFault:
                self._tx_status = TX_ERR_DMA
            else:
                self._charge(length)
                self._tx_status = TX_OK
                self.tx_frames += 1
                self._int_status |= INT_TX_DONE
                self._update_irq()
                if self.sink is not None:
                    self.sink(frame)
                return
        self._int_status |= INT_ERROR
        self._update_irq()

    def _charge(self, length: int) -> None:
        if self._host is not None:
            self._host.charge("device", self.frame_cycles + self.byte_cycles * length)

    # -- MMIO --------------------------------------------------------------------------------
    def read(self, offset: int, width: int) -> int:
        return read_lanes(self._read32(offset & ~3), offset, width)

    def _read32(self, reg: int) -> int:
        if reg == REG_MAGIC:
            return MAGIC
        if reg == REG_VERSION:
            return VERSION
        if reg == REG_MAC_LO:
            return int.from_bytes(self.mac[:4], "little")
        if reg == REG_MAC_HI:
            return int.from_bytes(self.mac[4:], "little")
        if reg == REG_STATUS:
            return (
                (STATUS_LINK_UP if self.sink is not None else 0)
                | (STATUS_RX_ARMED if self._rx_armed else 0)
                | (STATUS_RX_QUEUED if self._rx_queue else 0)
            )
        values = {
            REG_INT_STATUS: self._int_status,
            REG_INT_ENABLE: self._int_enable,
            REG_TX_ADDR: self._tx_addr,
            REG_TX_LEN: self._tx_len,
            REG_TX_STATUS: self._tx_status,
            REG_RX_ADDR: self._rx_addr,
            REG_RX_SIZE: self._rx_size,
            REG_RX_LEN: self._rx_len,
            REG_RX_STATUS: self._rx_status,
            REG_TX_FRAMES: self.tx_frames,
            REG_RX_FRAMES: self.rx_frames,
            REG_RX_DROPPED: self.rx_dropped,
        }
        return values.get(reg, 0) & 0xFFFF_FFFF

    def write(self, offset: int, width: int, value: int) -> None:
        reg = offset & ~3
        if width != 4:
            old = 0 if reg in _WRITE_ONLY else self._read32(reg)
            value = write_lanes(old, offset, width, value)
        value &= 0xFFFF_FFFF
        if reg == REG_INT_ACK:
            self._int_status &= ~value
            self._update_irq()
        elif reg == REG_INT_ENABLE:
            self._int_enable = value & (INT_TX_DONE | INT_RX_DONE | INT_ERROR)
            self._update_irq()
        elif reg == REG_TX_ADDR:
            self._tx_addr = value
        elif reg == REG_TX_LEN:
            self._tx_len = value
        elif reg == REG_TX_DOORBELL:
            self._transmit()
        elif reg == REG_RX_ADDR:
            self._rx_addr = value
        elif reg == REG_RX_SIZE:
            self._rx_size = value
        elif reg == REG_RX_DOORBELL:
            self._rx_armed = True
            self._drain()

    def _update_irq(self) -> None:
        level = bool(self._int_status & self._int_enable)
        if level != self._irq_level:
            self._irq_level = level
            if self._host is not None:
                self._host.raise_irq(self.irq, level)

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        self._int_status = self._int_enable = 0
        self._tx_addr = self._tx_len = self._rx_addr = self._rx_size = self._rx_len = 0
        self._tx_status, self._rx_status = TX_OK, RX_OK
        self._rx_armed = False
        self._rx_queue.clear()
        self.tx_frames = self.rx_frames = self.rx_dropped = 0
        self._update_irq()

    def snapshot(self) -> dict[str, Any]:
        return {
            "int_status": self._int_status,
            "int_enable": self._int_enable,
            "tx_addr": self._tx_addr,
            "tx_len": self._tx_len,
            "tx_status": self._tx_status,
            "rx_addr": self._rx_addr,
            "rx_size": self._rx_size,
            "rx_len": self._rx_len,
            "rx_status": self._rx_status,
            "rx_armed": self._rx_armed,
            "rx_queue": list(self._rx_queue),
            "tx_frames": self.tx_frames,
            "rx_frames": self.rx_frames,
            "rx_dropped": self.rx_dropped,
            "irq_level": self._irq_level,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` (the link, ``sink``, is wiring and stays as it is)."""
        self._int_status = int(state["int_status"])
        self._int_enable = int(state["int_enable"])
        self._tx_addr = int(state["tx_addr"])
        self._tx_len = int(state["tx_len"])
        self._tx_status = int(state["tx_status"])
        self._rx_addr = int(state["rx_addr"])
        self._rx_size = int(state["rx_size"])
        self._rx_len = int(state["rx_len"])
        self._rx_status = int(state["rx_status"])
        self._rx_armed = bool(state["rx_armed"])
        self._rx_queue = deque(bytes(f) for f in state["rx_queue"])
        self.tx_frames = int(state["tx_frames"])
        self.rx_frames = int(state["rx_frames"])
        self.rx_dropped = int(state["rx_dropped"])
        self._irq_level = bool(state["irq_level"])
