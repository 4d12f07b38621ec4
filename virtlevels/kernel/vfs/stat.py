"""stat results and the byte layouts user space reads (include/uapi/asm-generic/stat.h,
include/linux/dirent.h; stat(2), getdents64(2)).

RV32 Linux is asm-generic with 32-bit ``long``. :func:`pack_stat` gives ``struct stat``
(80 bytes, what fstat/newfstatat fill on an asm-generic ABI) and :func:`pack_stat64`
``struct stat64`` (104 bytes, fstatat64 on 32-bit asm-generic ABIs). Both little-endian.
"""

from __future__ import annotations

import struct

import attrs

from virtlevels.kernel.vfs.constants import PAGE_SIZE, S_IFMT, S_IFREG
from virtlevels.kernel.vfs.inode import Inode, SuperBlock

_NS = 1_000_000_000


@attrs.frozen
class Stat:
    st_dev: int
    st_ino: int
    st_mode: int
    st_nlink: int
    st_uid: int
    st_gid: int
    st_rdev: int
    st_size: int
    st_blksize: int
    st_blocks: int
    st_atime_ns: int
    st_mtime_ns: int
    st_ctime_ns: int


def stat_inode(inode: Inode, sb: SuperBlock | None = None) -> Stat:
    """generic_fillattr. ``sb`` is the superblock the name lives on (overlayfs reports its own
    device for its files); uids/gids are kernel ids, which the syscall layer maps for the caller."""
    dev_sb = sb if sb is not None else inode.sb
    size = inode.size
    # tmpfs allocates whole pages; st_blocks counts 512-byte units.
    blocks = 0
    if inode.mode & S_IFMT == S_IFREG:
        blocks = (size + PAGE_SIZE - 1) // PAGE_SIZE * (PAGE_SIZE // 512)
    return Stat(dev_sb.dev, inode.ino, inode.mode, inode.nlink, inode.uid, inode.gid, inode.rdev, size,
                PAGE_SIZE, blocks, inode.atime, inode.mtime, inode.ctime)


# struct stat, 32-bit long: dev ino mode nlink uid gid rdev __pad1 (8 x u32), size (s32),
# blksize (s32), __pad2 (s32), blocks (s32), atime/nsec mtime/nsec ctime/nsec (6 x 32),
# __unused4, __unused5.
_STAT = struct.Struct("<8I i i i i iI iI iI 2I")
# struct stat64: dev ino (u64), mode nlink uid gid (u32), rdev __pad1 (u64), size (s64),
# blksize __pad2 (s32), blocks (s64), times as (s32 sec, u32 nsec), __unused4/5.
_STAT64 = struct.Struct("<QQ4IQQq ii q iI iI iI 2I")
STAT_SIZE = _STAT.size
STAT64_SIZE = _STAT64.size


def _split(ns: int) -> tuple[int, int]:
    sec, nsec = divmod(ns, _NS)
    return _s32(sec), nsec


def _s32(v: int) -> int:
    """Seconds wrap to 32 bits as a 32-bit time_t would (y2038)."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def pack_stat(st: Stat) -> bytes:
    """The asm-generic ``struct stat`` of an RV32 kernel (80 bytes)."""
    a, an = _split(st.st_atime_ns)
    m, mn = _split(st.st_mtime_ns)
    c, cn = _split(st.st_ctime_ns)
    return _STAT.pack(st.st_dev & 0xFFFFFFFF, st.st_ino & 0xFFFFFFFF, st.st_mode, st.st_nlink,
                      st.st_uid, st.st_gid, st.st_rdev & 0xFFFFFFFF, 0, _s32(st.st_size), st.st_blksize, 0,
                      _s32(st.st_blocks), a, an, m, mn, c, cn, 0, 0)


def unpack_stat(raw: bytes) -> Stat:
    """The inverse of :func:`pack_stat`: a ``struct stat`` read back from user memory."""
    f = _STAT.unpack(raw[: _STAT.size])
    return Stat(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[8], f[9], f[11],
                f[12] * _NS + f[13], f[14] * _NS + f[15], f[16] * _NS + f[17])  # fmt: skip


def pack_stat64(st: Stat) -> bytes:
    """The asm-generic ``struct stat64`` (104 bytes)."""
    a, an = _split(st.st_atime_ns)
    m, mn = _split(st.st_mtime_ns)
    c, cn = _split(st.st_ctime_ns)
    return _STAT64.pack(st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_rdev, 0,
                        st.st_size, st.st_blksize, 0, st.st_blocks, a, an, m, mn, c, cn, 0, 0)


_DIRENT_HEAD = struct.Struct("<QqHB")  # d_ino, d_off, d_reclen, d_type (19 bytes, packed)


def dirent64(ino: int, off: int, dtype: int, name: str) -> bytes:
    """One ``struct linux_dirent64``: header, NUL-terminated name, padded to 8 bytes (fs/readdir.c)."""
    raw = name.encode()
    reclen = (_DIRENT_HEAD.size + len(raw) + 1 + 7) & ~7
    rec = _DIRENT_HEAD.pack(ino, off, reclen, dtype) + raw
    return rec + bytes(reclen - len(rec))


def parse_dirents64(buf: bytes) -> list[tuple[int, int, int, str]]:
    """(d_ino, d_off, d_type, name) of each record: the reverse of :func:`dirent64`."""
    out = []
    pos = 0
    while pos < len(buf):
        ino, off, reclen, dtype = _DIRENT_HEAD.unpack_from(buf, pos)
        name = buf[pos + _DIRENT_HEAD.size:pos + reclen].split(b"\0", 1)[0].decode()
        out.append((ino, off, dtype, name))
        pos += reclen
    return out
