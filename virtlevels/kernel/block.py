"""The block layer: disks as block special files (block/bdev.c, block/fops.c, drivers/block).

A :class:`BlockDevice` (a gendisk) is a device number, a capacity in 512-byte sectors and a
driver that moves whole sectors: :class:`MemDisk` (an in-memory disk, for a kernel without a
machine) or :class:`VlblkDriver` (the machine's ``vlblk`` controller, programmed through MMIO
loads and stores executed on the hart, with a DMA bounce buffer in RAM). :class:`BlockDevOps` is
the open file: byte-granular read/write/lseek on top of sectors, partial sectors read, modified
and written back. Every transfer is reported to ``BlockDevice.account(read, nbytes, sectors)``,
through which the kernel charges the device time and the io cgroup (``cgroup.io.charge_io``).

The disk is ``vda``, major 254, minor 0: virtio-blk's dynamically allocated major is 254 on
most Linux kernels (253 on some), which is what container configs name in
``linux.resources.blockIO`` throttles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from virtlevels.kernel.errno import EIO, ENOSPC, KernelError
from virtlevels.machine.isa.encodings import BY_NAME
from virtlevels.machine.memmap import NATIVE_BASE

if TYPE_CHECKING:
    from virtlevels.kernel.vfs.file import OpenFile

SECTOR_SIZE = 512
SECTOR_SHIFT = 9
#: virtio-blk's dynamic major on Linux (253 on some kernels; documented in docs/kernel.md).
VIRTIO_BLK_MAJOR = 254
DISK_NAME = "vda"
DISK_GID = 6  # the "disk" group of Debian/Fedora, which owns /dev/vda


class SectorDriver(Protocol):
    """What a disk driver does: whole sectors in and out."""

    @property
    def capacity(self) -> int: ...  # sectors

    def read_sectors(self, sector: int, count: int) -> bytes: ...

    def write_sectors(self, sector: int, data: bytes) -> None: ...


@attrs.define(eq=False)
class MemDisk:
    """An in-memory disk of ``size`` bytes. Sparse (sectors never written read as zeros), so a
    large default costs nothing until used; or backed by a caller's ``bytearray``."""

    size: int = 64 << 20
    backing: bytearray | None = None
    _sectors: dict[int, bytes] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        if self.backing is not None:
            self.size = len(self.backing)
        if self.size % SECTOR_SIZE or self.size < 0:
            raise ValueError(f"disk size {self.size} is not a multiple of {SECTOR_SIZE}")

    @property
    def capacity(self) -> int:
        return self.size >> SECTOR_SHIFT

    def read_sectors(self, sector: int, count: int) -> bytes:
        if self.backing is not None:
            return bytes(self.backing[sector << SECTOR_SHIFT : (sector + count) << SECTOR_SHIFT])
        zero = bytes(SECTOR_SIZE)
        get = self._sectors.get
        return b"".join(get(s, zero) for s in range(sector, sector + count))

    def write_sectors(self, sector: int, data: bytes) -> None:
        if self.backing is not None:
            self.backing[sector << SECTOR_SHIFT : (sector << SECTOR_SHIFT) + len(data)] = data
            return
        for i in range(len(data) >> SECTOR_SHIFT):
            self._sectors[sector + i] = bytes(data[i << SECTOR_SHIFT : (i + 1) << SECTOR_SHIFT])


# -- the vlblk driver ---------------------------------------------------------------------------------
# Registers (docs/machine-devices.md "Block device"): 32-bit, little-endian.
REG_MAGIC, REG_CAPACITY_LO, REG_CAPACITY_HI = 0x00, 0x08, 0x0C
REG_SECTOR_LO, REG_SECTOR_HI, REG_BUFFER_LO, REG_BUFFER_HI = 0x10, 0x14, 0x18, 0x1C
REG_COUNT, REG_COMMAND, REG_STATUS, REG_INT_ACK = 0x20, 0x24, 0x28, 0x30
VLBLK_MAGIC = 0x4B424C56
CMD_READ, CMD_WRITE = 1, 2
PAGE_SIZE = 4096
#: The driver's native code (after the trap entry's operations, see kernel/hw.py KPC).
BLOCK_DRIVER_PC = NATIVE_BASE + 0x1200
_T0, _T1 = 5, 6  # base address and data registers of the driver's lw/sw


def sw_word(rs2: int, rs1: int, imm: int) -> int:
    # Unpriv 2.6, S-type: imm[11:5] rs2 rs1 funct3 imm[4:0] opcode.
    return BY_NAME["sw"].match | (imm >> 5 & 0x7F) << 25 | rs2 << 20 | rs1 << 15 | (imm & 0x1F) << 7


def lw_word(rd: int, rs1: int, imm: int) -> int:
    # Unpriv 2.6, I-type: imm[11:0] rs1 funct3 rd opcode.
    return BY_NAME["lw"].match | (imm & 0xFFF) << 20 | rs1 << 15 | rd << 7


class VlblkError(Exception):
    """The controller reported an error status (turned into EIO)."""


@attrs.define(eq=False)
class VlblkDriver:
    """The ``vlblk`` controller at ``base``, driven as a kernel driver would drive it.

    Register accesses are ``lw``/``sw`` words executed on a hart (``hart()`` gives the CPU the
    calling task runs on) at the driver's own native pcs. The kernel has no page table of its own
    (its linear map is the machine's physical-memory port, see docs/kernel.md), so the driver
    runs them with translation off: ``csrw satp, 0`` + ``sfence.vma`` first when a user table is
    loaded, after which ``on_satp_cleared(hart)`` makes the next user entry reload it. The data
    moves by DMA through a one-page bounce buffer taken from the kernel's frame allocator and
    filled/read through the physical-memory port. Commands complete during the COMMAND store.
    """

    machine: Any
    base: int
    hart: Callable[[], Any]
    alloc_frame: Callable[[], int]
    pc: int
    on_satp_cleared: Callable[[Any], None] = lambda h: None
    _buffer: int | None = attrs.field(default=None, init=False)
    _capacity: int | None = attrs.field(default=None, init=False)
    commands: int = attrs.field(default=0, init=False)

    def _bare(self, h: Any) -> None:
        from virtlevels.machine.privops import csr_read, csr_write, sfence_vma

        satp = 0x180
        if csr_read(h, satp, pc=self.pc + 0x40):
            csr_write(h, satp, 0, pc=self.pc + 0x44)
            sfence_vma(h, pc=self.pc + 0x48)
            self.on_satp_cleared(h)

    def _io(self, h: Any, writes: tuple[tuple[int, int], ...], read_reg: int | None) -> int:
        """Store each (register, value), then load ``read_reg``; t0/t1 are saved and restored."""
        x = h.x
        saved = x[_T0], x[_T1]
        pc = self.pc
        try:
            x[_T0] = self.base
            for i, (reg, value) in enumerate(writes):
                x[_T1] = value & 0xFFFFFFFF
                h.execute(sw_word(_T1, _T0, reg), pc + 4 * (i % 12))
            if read_reg is None:
                return 0
            h.execute(lw_word(_T1, _T0, read_reg), pc + 0x30)
            return int(x[_T1])
        finally:
            x[_T0], x[_T1] = saved

    @property
    def capacity(self) -> int:
        if self._capacity is None:
            h = self.hart()
            self._bare(h)
            if self._io(h, (), REG_MAGIC) != VLBLK_MAGIC:
                raise VlblkError(f"no vlblk controller at {self.base:#x}")
            lo = self._io(h, (), REG_CAPACITY_LO)
            hi = self._io(h, (), REG_CAPACITY_HI)
            self._capacity = hi << 32 | lo
        return self._capacity

    def _buf(self) -> int:
        if self._buffer is None:
            self._buffer = self.alloc_frame() * PAGE_SIZE
        return self._buffer

    def _command(self, cmd: int, sector: int, count: int) -> None:
        h = self.hart()
        self._bare(h)
        buf = self._buf()
        status = self._io(h, (
            (REG_SECTOR_LO, sector), (REG_SECTOR_HI, sector >> 32), (REG_BUFFER_LO, buf),
            (REG_BUFFER_HI, 0), (REG_COUNT, count), (REG_COMMAND, cmd), (REG_INT_ACK, 1),
        ), REG_STATUS)  # fmt: skip
        self.commands += 1
        if status != 0:
            raise VlblkError(f"vlblk status {status} for command {cmd} at sector {sector}")

    def read_sectors(self, sector: int, count: int) -> bytes:
        out = bytearray()
        per = PAGE_SIZE >> SECTOR_SHIFT
        while count > 0:
            n = min(count, per)
            self._command(CMD_READ, sector, n)
            out += self.machine.phys_read(self._buf(), n << SECTOR_SHIFT)
            sector += n
            count -= n
        return bytes(out)

    def write_sectors(self, sector: int, data: bytes) -> None:
        per = PAGE_SIZE >> SECTOR_SHIFT
        pos = 0
        while pos < len(data):
            chunk = data[pos : pos + PAGE_SIZE]
            self.machine.phys_write(self._buf(), chunk)
            self._command(CMD_WRITE, sector, len(chunk) >> SECTOR_SHIFT)
            sector += per
            pos += PAGE_SIZE


# -- the disk and its open files --------------------------------------------------------------------
@attrs.define(eq=False)
class BlockDevice:
    """A disk (struct gendisk): ``name``, device number, driver, and the accounting seam
    ``account(read, nbytes, sectors)`` the kernel sets (device cost, io cgroup)."""

    name: str
    major: int
    minor: int
    driver: Any  # SectorDriver
    account: Callable[[bool, int, int], None] | None = None

    @property
    def dev(self) -> tuple[int, int]:
        return (self.major, self.minor)

    @property
    def size(self) -> int:
        return int(self.driver.capacity) << SECTOR_SHIFT

    def _sectors(self, start: int, end: int) -> tuple[int, int]:
        first = start >> SECTOR_SHIFT
        return first, ((end + SECTOR_SIZE - 1) >> SECTOR_SHIFT) - first

    def read_bytes(self, offset: int, size: int) -> bytes:
        first, count = self._sectors(offset, offset + size)
        try:
            data = self.driver.read_sectors(first, count)
        except VlblkError as e:
            raise KernelError(EIO, str(e)) from None
        skip = offset - (first << SECTOR_SHIFT)
        return bytes(data[skip : skip + size])

    def write_bytes(self, offset: int, data: bytes) -> None:
        first, count = self._sectors(offset, offset + len(data))
        skip = offset - (first << SECTOR_SHIFT)
        try:
            if skip or len(data) != count << SECTOR_SHIFT:
                # A partial sector: read, modify, write back (the page cache's read-modify-write).
                buf = bytearray(self.driver.read_sectors(first, count))
                buf[skip : skip + len(data)] = data
                data = bytes(buf)
            self.driver.write_sectors(first, data)
        except VlblkError as e:
            raise KernelError(EIO, str(e)) from None
        return None


@attrs.define(eq=False)
class BlockDevOps:
    """An open block special file (block/fops.c def_blk_fops): the disk as a byte stream of
    ``capacity * 512`` bytes. Reads stop at the end; a write at or past the end is ENOSPC and
    one running past it is short (blkdev_write_iter)."""

    disk: BlockDevice
    seekable = True

    def read(self, f: OpenFile, size: int) -> bytes:
        end = self.disk.size
        if f.pos >= end or size == 0:
            return b""
        n = min(size, end - f.pos)
        data = self.disk.read_bytes(f.pos, n)
        self._account(True, f.pos, n)
        f.pos += n
        return data

    def write(self, f: OpenFile, data: bytes) -> int:
        end = self.disk.size
        if not data:
            return 0
        if f.pos >= end:
            raise KernelError(ENOSPC, f"write past the end of {self.disk.name}")
        n = min(len(data), end - f.pos)
        self.disk.write_bytes(f.pos, bytes(data[:n]))
        self._account(False, f.pos, n)
        f.pos += n
        return n

    def _account(self, read: bool, pos: int, n: int) -> None:
        acc = self.disk.account
        if acc is not None:
            first = pos >> SECTOR_SHIFT
            acc(read, n, ((pos + n + SECTOR_SIZE - 1) >> SECTOR_SHIFT) - first)

    def seek_end(self) -> int:
        return self.disk.size

    def release(self, f: OpenFile) -> None:
        pass
