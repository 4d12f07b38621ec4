"""A small DMA block device (``vlblk``): the register interface is this project's own.

virtio-blk needs virtqueues and feature negotiation; a teaching machine needs a disk a
20-line driver can use. The model is the classic "program the registers, ring the doorbell,
take the interrupt" controller (as in xv6's early IDE driver, or QEMU's virtio-mmio register
file without the rings). All registers are 32 bits, little-endian, at a 0x1000-byte region
(QEMU virt puts its virtio-mmio slots at 0x1000_1000 + 0x1000*n)::

    0x00  MAGIC        RO  0x4B424C56 ("VLBK")
    0x04  VERSION      RO  1
    0x08  CAPACITY_LO  RO  capacity in sectors, low word
    0x0C  CAPACITY_HI  RO  high word
    0x10  SECTOR_LO    RW  first sector of the transfer
    0x14  SECTOR_HI    RW
    0x18  BUFFER_LO    RW  guest-physical address of the DMA buffer
    0x1C  BUFFER_HI    RW  (Sv32 physical addresses are 34 bits)
    0x20  COUNT        RW  sectors to transfer
    0x24  COMMAND      WO  1 READ (disk -> memory), 2 WRITE (memory -> disk), 3 FLUSH: starts it
    0x28  STATUS       RO  result of the last command (see STATUS_*)
    0x2C  INT_STATUS   RO  bit 0: a command completed
    0x30  INT_ACK      WO  write 1s to clear INT_STATUS bits
    0x34  INT_ENABLE   RW  bit 0: raise the interrupt line while INT_STATUS bit 0 is set
    0x38  SECTOR_SIZE  RO  512
    0x3C  READONLY     RO  1 if writes are refused

STATUS: 0 OK, 2 ERR_RANGE (sector + count beyond the capacity), 3 ERR_COMMAND (unknown
command), 4 ERR_READONLY, 5 ERR_DMA (the buffer is not RAM), 6 ERR_NO_DMA (the machine gave the
device no DMA path). 1 (BUSY) is never seen: a command completes during the COMMAND write,
so its result is in STATUS on the next instruction and the completion interrupt is raised at
once. The time it took is charged to the machine as ``host.charge("device", command_cycles +
sector_cycles * count)``; completing synchronously keeps snapshots free of in-flight I/O.

Backing store: a ``bytearray`` (its size must be a multiple of 512) or a file path opened
read/write (``readonly=True`` opens it read-only). Snapshots contain the disk bytes for a
bytearray backing; for a file they record the path only, since the file is the disk (as QEMU's
savevm leaves raw images to the user).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs

from virtlevels.errors import ConfigError
from virtlevels.machine.devices.dma import DmaFault, DmaHost
from virtlevels.machine.devices.regs import read_lanes, write_lanes
from virtlevels.machine.memmap import BLOCK_IRQ, BLOCK_SIZE

if TYPE_CHECKING:
    from virtlevels.machine.bus import DeviceHost

SECTOR_SIZE = 512
MAGIC = 0x4B424C56
VERSION = 1

(
    REG_MAGIC,
    REG_VERSION,
    REG_CAPACITY_LO,
    REG_CAPACITY_HI,
    REG_SECTOR_LO,
    REG_SECTOR_HI,
    REG_BUFFER_LO,
    REG_BUFFER_HI,
    REG_COUNT,
    REG_COMMAND,
    REG_STATUS,
    REG_INT_STATUS,
    REG_INT_ACK,
    REG_INT_ENABLE,
    REG_SECTOR_SIZE,
    REG_READONLY,
) = range(0x00, 0x40, 4)

CMD_READ, CMD_WRITE, CMD_FLUSH = 1, 2, 3
STATUS_OK, STATUS_BUSY, STATUS_ERR_RANGE, STATUS_ERR_COMMAND = 0, 1, 2, 3
STATUS_ERR_READONLY, STATUS_ERR_DMA, STATUS_ERR_NO_DMA = 4, 5, 6
INT_DONE = 0x1

_WRITE_ONLY = (REG_COMMAND, REG_INT_ACK)


@attrs.define(eq=False)
class BlockDevice:
    """A disk of ``len(backing) // 512`` sectors behind the ``vlblk`` registers."""

    backing: bytearray | str | os.PathLike[str] = attrs.field(factory=lambda: bytearray(1 << 20))
    dma: DmaHost | None = None
    name: str = "blk0"
    irq: int = BLOCK_IRQ
    readonly: bool = False
    command_cycles: int = 200
    sector_cycles: int = 100
    size: int = BLOCK_SIZE

    _host: DeviceHost | None = attrs.field(default=None, init=False)
    _data: bytearray | None = attrs.field(default=None, init=False)
    _file: BinaryIO | None = attrs.field(default=None, init=False)
    _path: str | None = attrs.field(default=None, init=False)
    _sectors: int = attrs.field(default=0, init=False)
    _sector: int = attrs.field(default=0, init=False)
    _buffer: int = attrs.field(default=0, init=False)
    _count: int = attrs.field(default=0, init=False)
    _status: int = attrs.field(default=STATUS_OK, init=False)
    _int_status: int = attrs.field(default=0, init=False)
    _int_enable: int = attrs.field(default=0, init=False)
    _irq_level: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.backing, bytearray):
            if len(self.backing) % SECTOR_SIZE:
                raise ConfigError(
                    f"block device {self.name}: backing size {len(self.backing)} is not a multiple "
                    f"of {SECTOR_SIZE}"
                )
            self._data = self.backing
            self._sectors = len(self.backing) // SECTOR_SIZE
            return
        self._path = os.fspath(self.backing)
        try:
            # Open for the device's lifetime (close() ends it), as a disk controller holds its medium.
            self._file = open(self._path, "rb" if self.readonly else "r+b")
            length = os.fstat(self._file.fileno()).st_size
        except OSError as exc:
            raise ConfigError(f"block device {self.name}: cannot open {self._path}: {exc.strerror}") from None
        if length % SECTOR_SIZE:
            raise ConfigError(
                f"block device {self.name}: {self._path} is {length} bytes, not a multiple of {SECTOR_SIZE}"
            )
        self._sectors = length // SECTOR_SIZE

    def attach(self, host: DeviceHost) -> None:
        self._host = host
        if self.dma is None and isinstance(host, DmaHost):
            self.dma = host

    def close(self) -> None:
        """Close a file backing."""
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def capacity(self) -> int:
        """Capacity in sectors."""
        return self._sectors

    @property
    def irq_level(self) -> bool:
        return self._irq_level

    # -- MMIO --------------------------------------------------------------------------------
    def read(self, offset: int, width: int) -> int:
        return read_lanes(self._read32(offset & ~3), offset, width)

    def _read32(self, reg: int) -> int:
        if reg == REG_MAGIC:
            return MAGIC
        if reg == REG_VERSION:
            return VERSION
        if reg == REG_CAPACITY_LO:
            return self._sectors & 0xFFFF_FFFF
        if reg == REG_CAPACITY_HI:
            return self._sectors >> 32
        if reg == REG_SECTOR_LO:
            return self._sector & 0xFFFF_FFFF
        if reg == REG_SECTOR_HI:
            return self._sector >> 32
        if reg == REG_BUFFER_LO:
            return self._buffer & 0xFFFF_FFFF
        if reg == REG_BUFFER_HI:
            return self._buffer >> 32
        if reg == REG_COUNT:
            return self._count
        if reg == REG_STATUS:
            return self._status
        if reg == REG_INT_STATUS:
            return self._int_status
        if reg == REG_INT_ENABLE:
            return self._int_enable
        if reg == REG_SECTOR_SIZE:
            return SECTOR_SIZE
        if reg == REG_READONLY:
            return int(self.readonly)
        return 0

    def write(self, offset: int, width: int, value: int) -> None:
        reg = offset & ~3
        if width != 4:
            old = 0 if reg in _WRITE_ONLY else self._read32(reg)
            value = write_lanes(old, offset, width, value)
        value &= 0xFFFF_FFFF
        if reg == REG_SECTOR_LO:
            self._sector = (self._sector & ~0xFFFF_FFFF) | value
        elif reg == REG_SECTOR_HI:
            self._sector = (self._sector & 0xFFFF_FFFF) | (value << 32)
        elif reg == REG_BUFFER_LO:
            self._buffer = (self._buffer & ~0xFFFF_FFFF) | value
        elif reg == REG_BUFFER_HI:
            self._buffer = (self._buffer & 0xFFFF_FFFF) | (value << 32)
        elif reg == REG_COUNT:
            self._count = value
        elif reg == REG_COMMAND:
            self._run(value)
        elif reg == REG_INT_ACK:
            self._int_status &= ~value
            self._update_irq()
        elif reg == REG_INT_ENABLE:
            self._int_enable = value & INT_DONE
            self._update_irq()

    # -- commands ----------------------------------------------------------------------------
    def _run(self, command: int) -> None:
        count = self._count if command in (CMD_READ, CMD_WRITE) else 0
        host = self._host
        if host is not None:
            host.charge("device", self.command_cycles + self.sector_cycles * count)
        self._status = self._execute(command)
        self._int_status |= INT_DONE
        self._update_irq()

    def _execute(self, command: int) -> int:
        if command == CMD_FLUSH:
            if self._file is not None and not self.readonly:
                self._file.flush()
            return STATUS_OK
        if command not in (CMD_READ, CMD_WRITE):
            return STATUS_ERR_COMMAND
        if command == CMD_WRITE and self.readonly:
            return STATUS_ERR_READONLY
        if self._sector + self._count > self._sectors:
            return STATUS_ERR_RANGE
        dma = self.dma
        if dma is None:
            return STATUS_ERR_NO_DMA
        start, length = self._sector * SECTOR_SIZE, self._count * SECTOR_SIZE
        try:
            if command == CMD_READ:
                dma.dma_write(self._buffer, self._load(start, length))
            else:
                data = dma.dma_read(self._buffer, length)
                self._store(start, data)
        except DmaFault:
            return STATUS_ERR_DMA
        return STATUS_OK

    def _load(self, start: int, length: int) -> bytes:
        if self._data is not None:
            return bytes(self._data[start : start + length])
        assert self._file is not None
        self._file.seek(start)
        return self._file.read(length)

    def _store(self, start: int, data: bytes) -> None:
        if self._data is not None:
            self._data[start : start + len(data)] = data
            return
        assert self._file is not None
        self._file.seek(start)
        self._file.write(data)

    def _update_irq(self) -> None:
        level = bool(self._int_status & self._int_enable)
        if level != self._irq_level:
            self._irq_level = level
            if self._host is not None:
                self._host.raise_irq(self.irq, level)

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        self._sector = self._buffer = self._count = 0
        self._status = STATUS_OK
        self._int_status = self._int_enable = 0
        self._update_irq()

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "sector": self._sector,
            "buffer": self._buffer,
            "count": self._count,
            "status": self._status,
            "int_status": self._int_status,
            "int_enable": self._int_enable,
            "irq_level": self._irq_level,
        }
        if self._data is not None:
            state["data"] = bytes(self._data)
        else:
            state["path"] = self._path
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot`; a bytearray backing gets the disk bytes back in place."""
        if self._data is not None:
            data = state.get("data")
            if data is None or len(data) != len(self._data):
                raise ValueError(f"block device {self.name}: snapshot does not hold a disk of this size")
            self._data[:] = data
        self._sector = int(state["sector"])
        self._buffer = int(state["buffer"])
        self._count = int(state["count"])
        self._status = int(state["status"])
        self._int_status = int(state["int_status"])
        self._int_enable = int(state["int_enable"])
        self._irq_level = bool(state["irq_level"])
