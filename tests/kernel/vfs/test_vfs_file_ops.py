"""open/read/write/lseek, namespace operations and attributes, with Linux's errno values."""

from __future__ import annotations

import struct

import pytest
from vfs_util import OTHER, ROOT, USER, Box

from virtlevels.kernel.errno import (
    EACCES,
    EBADF,
    EBUSY,
    EEXIST,
    EINVAL,
    EISDIR,
    ELOOP,
    ENOENT,
    ENOSPC,
    ENOTDIR,
    ENOTEMPTY,
    EPERM,
    EROFS,
    EXDEV,
    KernelError,
)
from virtlevels.kernel.vfs.constants import (
    AT_EACCESS,
    AT_REMOVEDIR,
    AT_SYMLINK_NOFOLLOW,
    DT_DIR,
    DT_LNK,
    DT_REG,
    MS_BIND,
    MS_RDONLY,
    MS_REMOUNT,
    O_APPEND,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    R_OK,
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    S_IFDIR,
    S_ISGID,
    S_ISUID,
    SEEK_CUR,
    SEEK_END,
    SEEK_SET,
    W_OK,
    X_OK,
)
from virtlevels.kernel.vfs.stat import (
    STAT64_SIZE,
    STAT_SIZE,
    dirent64,
    pack_stat,
    pack_stat64,
    parse_dirents64,
)


def test_asm_generic_open_flag_values() -> None:
    # include/uapi/asm-generic/fcntl.h
    assert (O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND) == (1, 2, 0o100, 0o200, 0o1000, 0o2000)
    assert O_DIRECTORY == 0o200000


def test_open_create_excl_trunc_append(box: Box) -> None:
    v, fs = box.vfs, box.fs
    f = v.openat(fs, ROOT, "/f", O_RDWR | O_CREAT | O_EXCL, 0o640)
    assert v.write(f, b"hello") == 5
    assert box.errno(v.openat, fs, ROOT, "/f", O_RDWR | O_CREAT | O_EXCL) == EEXIST
    assert v.lseek(f, 0, SEEK_SET) == 0
    assert v.read(f, 100) == b"hello"
    a = v.openat(fs, ROOT, "/f", O_WRONLY | O_APPEND)
    v.lseek(a, 0, SEEK_SET)
    v.write(a, b"!")
    assert box.read("/f") == b"hello!"
    t = v.openat(fs, ROOT, "/f", O_WRONLY | O_TRUNC)
    assert v.fstat(t).st_size == 0
    assert v.stat(fs, ROOT, "/f").st_mode & 0o777 == 0o640


def test_open_errors(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/d")
    box.write("/f", b"")
    assert box.errno(v.openat, fs, ROOT, "/missing", O_RDONLY) == ENOENT
    assert box.errno(v.openat, fs, ROOT, "/d", O_WRONLY) == EISDIR
    assert box.errno(v.openat, fs, ROOT, "/d", O_RDONLY | O_CREAT) == EISDIR
    assert box.errno(v.openat, fs, ROOT, "/new/", O_RDWR | O_CREAT) == EISDIR
    assert box.errno(v.openat, fs, ROOT, "/f", O_RDONLY | O_DIRECTORY) == ENOTDIR
    assert box.errno(v.openat, fs, ROOT, "/nodir/f", O_RDWR | O_CREAT) == ENOENT
    # O_EXCL does not follow a symlink at the last component, even a dangling one.
    v.symlinkat(fs, ROOT, "/made-by-link", "/dangling")
    assert box.errno(v.openat, fs, ROOT, "/dangling", O_WRONLY | O_CREAT | O_EXCL) == EEXIST
    # Without O_EXCL, O_CREAT through a dangling symlink creates the target.
    v.openat(fs, ROOT, "/dangling", O_WRONLY | O_CREAT).put()
    assert v.stat(fs, ROOT, "/made-by-link").st_size == 0
    assert box.errno(v.openat, fs, ROOT, "/dangling", O_WRONLY | O_CREAT | 0o400000) == ELOOP


def test_permissions_on_open_and_create(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.write("/private", b"s", mode=0o600)
    box.mkdirs("/ro-dir", mode=0o755)
    assert box.errno(v.openat, fs, USER, "/private", O_RDONLY) == EACCES
    assert box.errno(v.openat, fs, USER, "/ro-dir/x", O_WRONLY | O_CREAT) == EACCES
    assert box.errno(v.mkdirat, fs, USER, "/ro-dir/sub") == EACCES
    # Root passes DAC checks (CAP_DAC_OVERRIDE) but not execute on a file with no x bit.
    assert box.read("/private") == b"s"
    assert box.errno(v.faccessat, fs, ROOT, "/private", X_OK) == EACCES
    v.fchmodat(fs, ROOT, "/private", 0o601)
    v.faccessat(fs, ROOT, "/private", X_OK)


def test_new_files_belong_to_fsuid_and_setgid_directories_pass_their_group(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/tmp", mode=0o777)
    v.fchownat(fs, ROOT, "/tmp", 0, 50)
    v.fchmodat(fs, ROOT, "/tmp", 0o2777)
    box.write("/tmp/f", b"", creds=USER)
    v.mkdirat(fs, USER, "/tmp/sub", 0o755)
    st = v.stat(fs, ROOT, "/tmp/f")
    assert (st.st_uid, st.st_gid) == (1000, 50)
    sub = v.stat(fs, ROOT, "/tmp/sub")
    assert sub.st_gid == 50 and sub.st_mode & S_ISGID


def test_umask_applies_to_created_modes(box: Box) -> None:
    box.fs.umask = 0o027
    box.vfs.openat(box.fs, ROOT, "/f", O_WRONLY | O_CREAT, 0o666).put()
    box.vfs.mkdirat(box.fs, ROOT, "/d", 0o777)
    assert box.vfs.stat(box.fs, ROOT, "/f").st_mode & 0o777 == 0o640
    assert box.vfs.stat(box.fs, ROOT, "/d").st_mode & 0o777 == 0o750


def test_read_write_need_the_right_access_mode(box: Box) -> None:
    box.write("/f", b"abc")
    r = box.vfs.openat(box.fs, ROOT, "/f", O_RDONLY)
    w = box.vfs.openat(box.fs, ROOT, "/f", O_WRONLY)
    assert box.errno(box.vfs.write, r, b"x") == EBADF
    assert box.errno(box.vfs.read, w, 1) == EBADF


def test_lseek_whence_and_sparse_writes(box: Box) -> None:
    v = box.vfs
    f = v.openat(box.fs, ROOT, "/f", O_RDWR | O_CREAT)
    v.write(f, b"abcdef")
    assert v.lseek(f, -2, SEEK_END) == 4
    assert v.read(f, 10) == b"ef"
    assert v.lseek(f, -3, SEEK_CUR) == 3
    assert box.errno(v.lseek, f, -10, SEEK_CUR) == EINVAL
    assert box.errno(v.lseek, f, 0, 7) == EINVAL
    v.lseek(f, 10, SEEK_SET)
    v.write(f, b"Z")
    assert box.read("/f") == b"abcdef\0\0\0\0Z"
    assert v.pread(f, 3, 1) == b"bcd" and f.pos == 11


def test_mkdir_unlink_rmdir_errors(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/d", "/d/sub")
    box.write("/f", b"")
    assert box.errno(v.mkdirat, fs, ROOT, "/d") == EEXIST
    assert box.errno(v.mkdirat, fs, ROOT, "/") == EEXIST
    assert box.errno(v.unlinkat, fs, ROOT, "/d") == EISDIR
    assert box.errno(v.unlinkat, fs, ROOT, "/f/") == ENOTDIR
    assert box.errno(v.unlinkat, fs, ROOT, "/gone") == ENOENT
    assert box.errno(v.unlinkat, fs, ROOT, "/f", AT_REMOVEDIR) == ENOTDIR
    assert box.errno(v.unlinkat, fs, ROOT, "/d", AT_REMOVEDIR) == ENOTEMPTY
    assert box.errno(v.unlinkat, fs, ROOT, "/d/sub/.", AT_REMOVEDIR) == EINVAL
    assert box.errno(v.unlinkat, fs, ROOT, "/d/sub/..", AT_REMOVEDIR) == ENOTEMPTY
    assert box.errno(v.unlinkat, fs, ROOT, "/f", 0x1) == EINVAL
    v.unlinkat(fs, ROOT, "/d/sub", AT_REMOVEDIR)
    v.unlinkat(fs, ROOT, "/d", AT_REMOVEDIR)
    v.unlinkat(fs, ROOT, "/f")
    assert box.ls("/") == []


def test_nlink_counts(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/d", "/d/a", "/d/b")
    assert v.stat(fs, ROOT, "/d").st_nlink == 4  # ".", the entry in "/", and two ".."
    box.write("/d/f", b"x")
    v.linkat(fs, ROOT, "/d/f", "/d/g")
    assert v.stat(fs, ROOT, "/d/f").st_nlink == 2
    assert v.stat(fs, ROOT, "/d/f").st_ino == v.stat(fs, ROOT, "/d/g").st_ino
    assert box.errno(v.linkat, fs, ROOT, "/d/a", "/d/c") == EPERM
    assert box.errno(v.linkat, fs, ROOT, "/d/f", "/d/g") == EEXIST


def test_sticky_directory_protects_other_users_files(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/tmp", mode=0o1777)
    box.write("/tmp/mine", b"", creds=USER)
    assert box.errno(v.unlinkat, fs, OTHER, "/tmp/mine") == EPERM
    v.unlinkat(fs, USER, "/tmp/mine")


def test_rename_rules(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/a", "/a/in", "/b", "/full", "/full/x")
    box.write("/f", b"1")
    box.write("/g", b"2")
    assert box.errno(v.renameat2, fs, ROOT, "/a", "/a/in/deeper") == EINVAL
    assert box.errno(v.renameat2, fs, ROOT, "/f", "/a") == EISDIR
    assert box.errno(v.renameat2, fs, ROOT, "/a", "/f") == ENOTDIR
    assert box.errno(v.renameat2, fs, ROOT, "/b", "/full") == ENOTEMPTY
    assert box.errno(v.renameat2, fs, ROOT, "/f", "/g", RENAME_NOREPLACE) == EEXIST
    assert box.errno(v.renameat2, fs, ROOT, "/f", "/none", RENAME_EXCHANGE) == ENOENT
    assert box.errno(v.renameat2, fs, ROOT, "/f", "/g", RENAME_EXCHANGE | RENAME_NOREPLACE) == EINVAL
    assert box.errno(v.renameat2, fs, ROOT, "/missing", "/x") == ENOENT
    v.renameat2(fs, ROOT, "/f", "/g", RENAME_EXCHANGE)
    assert (box.read("/f"), box.read("/g")) == (b"2", b"1")
    v.renameat2(fs, ROOT, "/f", "/g")
    assert box.read("/g") == b"2" and box.errno(v.stat, fs, ROOT, "/f") == ENOENT
    v.renameat2(fs, ROOT, "/b", "/a/in2")
    assert v.stat(fs, ROOT, "/a").st_nlink == 4
    v.renameat2(fs, ROOT, "/a/in2", "/full/x")  # over an empty directory
    assert box.ls("/full") == ["x"] and box.ls("/a") == ["in"]


def test_rename_across_mounts_is_exdev(box: Box) -> None:
    box.mkdirs("/m")
    box.vfs.mount(box.fs, ROOT, "tmpfs", "/m", "tmpfs")
    box.write("/f", b"")
    assert box.errno(box.vfs.renameat2, box.fs, ROOT, "/f", "/m/f") == EXDEV
    assert box.errno(box.vfs.linkat, box.fs, ROOT, "/f", "/m/f") == EXDEV


def test_unlinked_open_file_stays_readable(box: Box) -> None:
    box.write("/f", b"still here")
    f = box.vfs.openat(box.fs, ROOT, "/f", O_RDONLY)
    box.vfs.unlinkat(box.fs, ROOT, "/f")
    assert box.vfs.read(f, 100) == b"still here"
    assert box.vfs.fstat(f).st_nlink == 0


def test_readlink_errors(box: Box) -> None:
    box.write("/f", b"")
    assert box.errno(box.vfs.readlinkat, box.fs, ROOT, "/f") == EINVAL
    box.vfs.symlinkat(box.fs, ROOT, "target", "/l")
    assert box.vfs.readlinkat(box.fs, ROOT, "/l") == "target"
    assert box.errno(box.vfs.symlinkat, box.fs, ROOT, "x", "/l") == EEXIST
    assert box.errno(box.vfs.symlinkat, box.fs, ROOT, "", "/e") == ENOENT


def test_chmod_and_chown_permissions(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/t", mode=0o777)
    v.chdir(fs, ROOT, "/t")
    box.write("f", b"", creds=USER)
    assert box.errno(v.fchmodat, fs, OTHER, "f", 0o777) == EPERM
    v.fchmodat(fs, USER, "f", 0o4755)
    assert v.stat(fs, ROOT, "f").st_mode & 0o7777 == 0o4755
    assert box.errno(v.fchownat, fs, USER, "f", 2000, -1) == EPERM  # giving away needs CAP_CHOWN
    member = USER.copy()
    member.groups = (77,)
    v.fchownat(fs, member, "f", -1, 77)  # the owner may pick one of its groups
    st = v.stat(fs, ROOT, "f")
    assert (st.st_uid, st.st_gid) == (1000, 77)
    assert not st.st_mode & S_ISUID  # chown clears setuid
    assert box.errno(v.fchownat, fs, USER, "f", -1, 78) == EPERM
    v.fchownat(fs, ROOT, "f", 3000, 3000)
    assert v.stat(fs, ROOT, "f").st_uid == 3000
    v.symlinkat(fs, ROOT, "f", "l")
    v.fchownat(fs, ROOT, "l", 5, 5, AT_SYMLINK_NOFOLLOW)
    assert v.stat(fs, ROOT, "l", AT_SYMLINK_NOFOLLOW).st_uid == 5
    assert v.stat(fs, ROOT, "f").st_uid == 3000


def test_faccessat_uses_the_real_ids_unless_at_eaccess(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.write("/f", b"", mode=0o600)
    setuid_prog = USER.copy()
    setuid_prog.euid = setuid_prog.fsuid = 0  # effective root, real 1000
    assert box.errno(v.faccessat, fs, setuid_prog, "/f", R_OK) == EACCES
    v.faccessat(fs, setuid_prog, "/f", R_OK, AT_EACCESS)
    assert box.errno(v.faccessat, fs, ROOT, "/f", 8) == EINVAL
    assert box.errno(v.faccessat, fs, ROOT, "/nope", 0) == ENOENT


def test_truncate(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.write("/f", b"abcdef")
    box.mkdirs("/d")
    v.truncate(fs, ROOT, "/f", 2)
    assert box.read("/f") == b"ab"
    v.truncate(fs, ROOT, "/f", 4)
    assert box.read("/f") == b"ab\0\0"
    assert box.errno(v.truncate, fs, ROOT, "/d", 0) == EISDIR
    assert box.errno(v.truncate, fs, ROOT, "/f", -1) == EINVAL
    assert box.errno(v.truncate, fs, USER, "/f", 0) == EACCES
    r = v.openat(fs, ROOT, "/f", O_RDONLY)
    assert box.errno(v.ftruncate, r, 0) == EINVAL


def test_timestamps_come_from_the_simulated_clock(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.write("/f", b"x")
    before = v.stat(fs, ROOT, "/f")
    box.write("/f", b"y")
    after = v.stat(fs, ROOT, "/f")
    assert after.st_mtime_ns > before.st_mtime_ns
    v.utimensat(fs, ROOT, "/f", 5_000_000_001, 7_000_000_002)
    st = v.stat(fs, ROOT, "/f")
    assert (st.st_atime_ns, st.st_mtime_ns) == (5_000_000_001, 7_000_000_002)
    assert box.errno(v.utimensat, fs, USER, "/f", 1, 1) == EPERM


def test_stat_packs_the_asm_generic_layouts(box: Box) -> None:
    box.write("/f", b"12345")
    st = box.vfs.stat(box.fs, ROOT, "/f")
    raw = pack_stat(st)
    assert len(raw) == STAT_SIZE == 80
    dev, ino, mode, nlink, uid, gid, rdev, _pad, size, blksize = struct.unpack_from("<8I2i", raw)
    assert (ino, mode, nlink, uid, size, blksize) == (st.st_ino, st.st_mode, 1, 0, 5, 4096)
    assert dev == st.st_dev and rdev == 0
    blocks, atime, atime_ns, mtime, mtime_ns = struct.unpack_from("<iiIiI", raw, 44)
    assert blocks == 8 and mtime * 10**9 + mtime_ns == st.st_mtime_ns
    raw64 = pack_stat64(st)
    assert len(raw64) == STAT64_SIZE == 104
    assert struct.unpack_from("<QQI", raw64) == (st.st_dev, st.st_ino, st.st_mode)
    assert struct.unpack_from("<q", raw64, 48)[0] == 5


def test_getdents64_byte_layout(box: Box) -> None:
    from virtlevels.kernel.vfs.constants import O_RDONLY as R

    v, fs = box.vfs, box.fs
    box.mkdirs("/d", "/d/sub")
    box.write("/d/file", b"")
    v.symlinkat(fs, ROOT, "x", "/d/link")
    f = v.openat(fs, ROOT, "/d", R | O_DIRECTORY)
    buf = v.getdents64(f, 4096)
    # First record: d_ino u64, d_off s64, d_reclen u16, d_type u8, then ".\0", padded to 24.
    ino, off, reclen, dtype = struct.unpack_from("<QqHB", buf, 0)
    assert (ino, off, reclen, dtype) == (v.stat(fs, ROOT, "/d").st_ino, 1, 24, DT_DIR)
    assert buf[19:21] == b".\0" and buf[21:24] == b"\0\0\0"
    entries = parse_dirents64(buf)
    assert [(e[3], e[2]) for e in entries] == [
        (".", DT_DIR), ("..", DT_DIR), ("sub", DT_DIR), ("file", DT_REG), ("link", DT_LNK)]
    assert all(len(dirent64(0, 0, 0, e[3])) % 8 == 0 for e in entries)
    assert v.getdents64(f, 4096) == b""  # end of directory
    # A buffer smaller than one record is EINVAL; a small one returns fewer records and resumes.
    v.lseek(f, 0, SEEK_SET)
    assert box.errno(v.getdents64, f, 10) == EINVAL
    first = parse_dirents64(v.getdents64(f, 48))
    rest = parse_dirents64(v.getdents64(f, 4096))
    assert [e[3] for e in first + rest] == [e[3] for e in entries]
    reg = v.openat(fs, ROOT, "/d/file", R)
    assert box.errno(v.getdents64, reg, 4096) == ENOTDIR


def test_getcwd(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/a", "/a/b")
    v.chdir(fs, ROOT, "/a/b")
    assert v.getcwd(fs) == "/a/b"
    assert box.errno(v.chdir, fs, ROOT, "/nope") == ENOENT
    box.write("/f", b"")
    assert box.errno(v.chdir, fs, ROOT, "/f") == ENOTDIR
    v.unlinkat(fs, ROOT, "/a/b", AT_REMOVEDIR)
    assert box.errno(v.getcwd, fs) == ENOENT


def test_tmpfs_size_limit_is_enospc(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/small")
    v.mount(fs, ROOT, "tmpfs", "/small", "tmpfs", 0, "size=8k")
    f = v.openat(fs, ROOT, "/small/f", O_WRONLY | O_CREAT)
    assert v.write(f, b"x" * 5000) == 5000
    assert v.write(f, b"y" * 5000) == 8192 - 5000  # short write up to the limit
    assert box.errno(v.write, f, b"z") == ENOSPC
    v.ftruncate(f, 0)
    v.lseek(f, 0, SEEK_SET)
    assert v.write(f, b"x" * 8192) == 8192
    assert "size=8k" in v.mounts_text(fs)


def test_tmpfs_pages_are_reported_to_the_charge_seam() -> None:
    from vfs_util import Clock

    from virtlevels.kernel.vfs import Vfs

    charged: list[int] = []
    budget = [3]

    def charge(pages: int) -> None:
        if pages > 0 and sum(charged) + pages > budget[0]:
            raise KernelError(ENOSPC, "cgroup says no")
        charged.append(pages)

    vfs = Vfs(clock=Clock(), tmpfs_charge=charge)
    ns = vfs.new_namespace(vfs.new_tmpfs())
    fs = vfs.root_context(ns)
    f = vfs.openat(fs, ROOT, "/f", O_WRONLY | O_CREAT)
    vfs.write(f, b"a" * 4097)
    assert sum(charged) == 2
    with pytest.raises(KernelError):
        vfs.write(f, b"b" * 8192)
    assert vfs.fstat(f).st_size == 4097  # the refused write changed nothing
    vfs.unlinkat(fs, ROOT, "/f")
    assert sum(charged) == 2  # still open: pages stay
    f.put()
    assert sum(charged) == 0


def test_read_only_mounts_refuse_changes(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/data", "/data/d")
    box.write("/data/f", b"x")
    v.mount(fs, ROOT, "/data", "/data", None, MS_BIND)
    v.mount(fs, ROOT, None, "/data", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    assert box.errno(v.openat, fs, ROOT, "/data/f", O_WRONLY) == EROFS
    assert box.errno(v.openat, fs, ROOT, "/data/g", O_WRONLY | O_CREAT) == EROFS
    assert box.errno(v.mkdirat, fs, ROOT, "/data/e") == EROFS
    assert box.errno(v.unlinkat, fs, ROOT, "/data/f") == EROFS
    assert box.errno(v.fchmodat, fs, ROOT, "/data/f", 0o600) == EROFS
    assert box.errno(v.faccessat, fs, ROOT, "/data/f", W_OK) == EROFS
    assert box.read("/data/f") == b"x"
    assert " /data tmpfs ro," in v.mounts_text(fs)
    v.mount(fs, ROOT, None, "/data", None, MS_REMOUNT | MS_BIND)
    box.write("/data/f", b"y")


def test_mkdir_mode_type_bits(box: Box) -> None:
    box.vfs.mkdirat(box.fs, ROOT, "/d", 0o755)
    assert box.vfs.stat(box.fs, ROOT, "/d").st_mode == S_IFDIR | 0o755


def test_rmdir_of_a_mount_point_is_ebusy(box: Box) -> None:
    box.mkdirs("/m")
    box.vfs.mount(box.fs, ROOT, "tmpfs", "/m", "tmpfs")
    assert box.errno(box.vfs.unlinkat, box.fs, ROOT, "/m", AT_REMOVEDIR) == EBUSY
    assert box.errno(box.vfs.renameat2, box.fs, ROOT, "/m", "/n") == EBUSY
    assert MS_RDONLY == 1


def test_unpack_stat_inverts_pack_stat() -> None:
    from virtlevels.kernel.vfs.stat import Stat, pack_stat, unpack_stat

    st = Stat(8, 42, 0o100644, 1, 1000, 1000, 0, 12345, 4096, 24,
              1_700_000_000_123_456_789, 1_700_000_001_000_000_001, 1_700_000_002_999_999_999)  # fmt: skip
    assert unpack_stat(pack_stat(st)) == st
