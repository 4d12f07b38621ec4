"""Synthetic filesystems (the procfs/cgroupfs pattern) and /dev devices."""

from __future__ import annotations

import pytest
from vfs_util import ROOT, USER, Box

from virtlevels.kernel.errno import EACCES, ENOENT, ENOSPC, ENXIO, EPERM, KernelError
from virtlevels.kernel.vfs import SynDir, SynFile, SynSymlink
from virtlevels.kernel.vfs.constants import (
    MS_BIND,
    MS_NODEV,
    O_CREAT,
    O_RDONLY,
    O_TRUNC,
    O_WRONLY,
    S_IFCHR,
    S_IFMT,
)
from virtlevels.kernel.vfs.inode import encode_dev


def _proc_like(box: Box, pids: list[int], log: list[bytes]) -> None:
    def per_pid(pid: int) -> SynDir:
        return SynDir({"status": SynFile(read=lambda caller, p=pid: f"Pid:\t{p}\n".encode())})

    def root_entries(caller: object) -> dict[str, object]:
        out: dict[str, object] = {str(p): per_pid(p) for p in pids}
        out["self"] = SynSymlink(lambda caller: str(caller))
        out["ctl"] = SynFile(read=lambda c: b"ok\n", write=lambda c, data: log.append(data))
        return out

    sb = box.vfs.new_synthetic(SynDir(root_entries), fstype="proc", source="proc")  # type: ignore[arg-type]

    def make(vfs: object, fs: object, creds: object, source: str, opts: dict[str, str]) -> object:
        return sb, ()

    box.vfs.register_fs_type("proc", make)  # type: ignore[arg-type]
    box.mkdirs("/proc")
    box.vfs.mount(box.fs, ROOT, "proc", "/proc", "proc")


def test_synthetic_files_are_produced_by_callables(box: Box) -> None:
    pids = [1, 42]
    log: list[bytes] = []
    _proc_like(box, pids, log)
    box.fs.task = 42
    assert box.ls("/proc") == ["1", "42", "ctl", "self"]
    assert box.read("/proc/self/status") == b"Pid:\t42\n"
    assert box.vfs.readlinkat(box.fs, ROOT, "/proc/self") == "42"
    pids.append(7)
    assert box.read("/proc/7/status") == b"Pid:\t7\n"  # listings are computed on each lookup
    pids.remove(42)
    assert box.errno(box.vfs.stat, box.fs, ROOT, "/proc/42") == ENOENT
    f = box.vfs.openat(box.fs, ROOT, "/proc/ctl", O_WRONLY | O_TRUNC)
    box.vfs.write(f, b"+cpu")
    assert log == [b"+cpu"]
    assert box.errno(box.vfs.openat, box.fs, USER, "/proc/ctl", O_WRONLY) == EACCES  # mode 0644
    assert box.errno(box.vfs.openat, box.fs, ROOT, "/proc/new", O_WRONLY | O_CREAT) == EPERM
    assert "proc /proc proc rw,relatime 0 0" in box.vfs.mounts_text(box.fs)


def test_a_mount_on_a_synthetic_file_stays_put(box: Box) -> None:
    """runc masks paths by bind-mounting /dev/null over them (OCI maskedPaths)."""
    _proc_like(box, [1], [])
    box.mkdirs("/dev")
    box.vfs.mount(box.fs, ROOT, "devtmpfs", "/dev", "devtmpfs")
    box.vfs.mount(box.fs, ROOT, "/dev/null", "/proc/ctl", None, MS_BIND)
    assert box.read("/proc/ctl") == b""
    assert box.ls("/proc") == ["1", "ctl", "self"]


def test_dev_null_zero_full_and_console(box: Box) -> None:
    out: list[bytes] = []
    from vfs_util import Clock

    from virtlevels.kernel.vfs import Vfs

    vfs = Vfs(clock=Clock(), console=out.append)
    ns = vfs.new_namespace(vfs.new_tmpfs())
    fs = vfs.root_context(ns)
    vfs.mkdirat(fs, ROOT, "/dev")
    vfs.mount(fs, ROOT, "devtmpfs", "/dev", "devtmpfs")
    null = vfs.openat(fs, ROOT, "/dev/null", 2)
    assert vfs.write(null, b"gone") == 4 and vfs.read(null, 10) == b""
    zero = vfs.openat(fs, ROOT, "/dev/zero", O_RDONLY)
    assert vfs.read(zero, 5) == bytes(5)
    full = vfs.openat(fs, ROOT, "/dev/full", O_WRONLY)
    with pytest.raises(KernelError) as e:
        vfs.write(full, b"x")
    assert e.value.errno == ENOSPC
    con = vfs.openat(fs, ROOT, "/dev/console", O_WRONLY)
    vfs.write(con, b"hello console\n")
    assert out == [b"hello console\n"]
    assert vfs.readlinkat(fs, ROOT, "/dev/stdout") == "/proc/self/fd/1"
    st = vfs.stat(fs, ROOT, "/dev/null")
    assert st.st_mode & S_IFMT == S_IFCHR and st.st_rdev == encode_dev(1, 3) == 0x103


def test_device_behaviour_follows_the_number_and_nodev(box: Box) -> None:
    v, fs = box.vfs, box.fs
    v.mknodat(fs, ROOT, "/mynull", S_IFCHR | 0o666, encode_dev(1, 3))
    f = v.openat(fs, ROOT, "/mynull", O_WRONLY)
    assert v.write(f, b"x") == 1
    v.mknodat(fs, ROOT, "/nodev", S_IFCHR | 0o666, encode_dev(99, 0))
    assert box.errno(v.openat, fs, ROOT, "/nodev", O_RDONLY) == ENXIO
    assert box.errno(v.mknodat, fs, USER, "/x", S_IFCHR | 0o666, encode_dev(1, 3)) == EPERM
    box.mkdirs("/nd")
    v.mount(fs, ROOT, "t", "/nd", "tmpfs", MS_NODEV)
    v.mknodat(fs, ROOT, "/nd/null", S_IFCHR | 0o666, encode_dev(1, 3))
    assert box.errno(v.openat, fs, ROOT, "/nd/null", O_WRONLY) == EACCES


def test_magic_links_lead_to_objects_and_paths(box: Box) -> None:
    """/proc/PID/ns/mnt opens the namespace itself (nsfs), /proc/PID/root jumps to a path."""
    from virtlevels.kernel.vfs import Path

    class FakeNs:
        inum = 4026531840

    ns_obj = FakeNs()
    box.mkdirs("/elsewhere")
    box.write("/elsewhere/f", b"found")
    where = box.vfs.stat  # keep a reference to prove resolution, not text, is used
    target_dir = box.vfs.openat(box.fs, ROOT, "/elsewhere", O_RDONLY)
    assert target_dir.path is not None
    jump: Path = target_dir.path
    root = SynDir({
        "mnt": SynSymlink("mnt:[4026531840]", magic=lambda caller: ns_obj),
        "root": SynSymlink("/", magic=lambda caller: jump),
    })
    sb = box.vfs.new_synthetic(root, fstype="proc")
    box.vfs.register_fs_type("proc", lambda *a: (sb, ()))  # type: ignore[arg-type,return-value]
    box.mkdirs("/p")
    box.vfs.mount(box.fs, ROOT, "proc", "/p", "proc")
    assert box.vfs.readlinkat(box.fs, ROOT, "/p/mnt") == "mnt:[4026531840]"
    f = box.vfs.openat(box.fs, ROOT, "/p/mnt", O_RDONLY)
    assert f.inode.private is ns_obj
    assert where(box.fs, ROOT, "/p/mnt").st_ino == 4026531840
    assert where(box.fs, ROOT, "/p/mnt").st_ino == box.vfs.fstat(f).st_ino
    assert box.read("/p/root/f") == b"found"
