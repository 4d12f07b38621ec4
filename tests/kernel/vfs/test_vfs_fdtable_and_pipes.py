"""Descriptor tables (dup(2), fcntl(2), fork/exec) and pipes/FIFOs (pipe(7), fifo(7))."""

from __future__ import annotations

import pytest
from vfs_util import ROOT, Box

from virtlevels.kernel.errno import EAGAIN, EBADF, EINVAL, EMFILE, ENXIO, EPIPE, ESPIPE, KernelError
from virtlevels.kernel.vfs import FdTable
from virtlevels.kernel.vfs.constants import (
    O_CLOEXEC,
    O_CREAT,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    PIPE_BUF,
    S_IFIFO,
    SEEK_SET,
)
from virtlevels.kernel.wait import WouldBlock


def _file(box: Box, path: str = "/f") -> object:
    return box.vfs.openat(box.fs, ROOT, path, O_RDWR | O_CREAT)


def test_lowest_free_descriptor_and_emfile(box: Box) -> None:
    t = FdTable(max_fds=4)
    fds = [t.install(_file(box)) for _ in range(4)]  # type: ignore[arg-type]
    assert fds == [0, 1, 2, 3]
    with pytest.raises(KernelError) as e:
        t.install(_file(box))  # type: ignore[arg-type]
    assert e.value.errno == EMFILE
    t.close(1)
    assert t.dup(3) == 1
    with pytest.raises(KernelError) as e:
        t.close(9)
    assert e.value.errno == EBADF


def test_dup_shares_the_offset_and_clears_cloexec(box: Box) -> None:
    t = FdTable()
    fd = t.install(_file(box), cloexec=True)  # type: ignore[arg-type]
    d = t.dup(fd)
    assert t.get_cloexec(fd) and not t.get_cloexec(d)
    box.vfs.write(t.get(fd), b"abc")
    assert t.get(d).pos == 3  # one description, one offset


def test_dup2_dup3_and_f_dupfd(box: Box) -> None:
    t = FdTable(max_fds=16)
    a = t.install(_file(box, "/a"))  # type: ignore[arg-type]
    b = t.install(_file(box, "/b"))  # type: ignore[arg-type]
    old_b = t.get(b)
    assert t.dup2(a, b) == b and t.get(b) is t.get(a)
    assert old_b.released  # the replaced descriptor was closed
    assert t.dup2(a, a) == a
    for args, err in (((a, a, 0), EINVAL), ((a, 5, 0o1), EINVAL), ((9, 5, 0), EBADF), ((a, 16, 0), EBADF)):
        with pytest.raises(KernelError) as e:
            t.dup3(*args)
        assert e.value.errno == err
    assert t.dup3(a, 7, O_CLOEXEC) == 7 and t.get_cloexec(7)
    assert t.dupfd(a, 5) == 5
    assert t.dupfd(a, 5, cloexec=True) == 6 and t.get_cloexec(6)
    with pytest.raises(KernelError) as e:
        t.dupfd(a, 16)
    assert e.value.errno == EINVAL


def test_fork_shares_descriptions_and_exec_closes_cloexec(box: Box) -> None:
    t = FdTable()
    keep = t.install(_file(box, "/keep"))  # type: ignore[arg-type]
    gone = t.install(_file(box, "/gone"), cloexec=True)  # type: ignore[arg-type]
    child = t.fork()
    assert child.get(keep) is t.get(keep)
    box.vfs.write(child.get(keep), b"xy")
    assert t.get(keep).pos == 2
    desc = t.get(gone)
    child.exec()
    assert gone not in child.fds and not desc.released  # the parent still holds it
    t.close(gone)
    assert desc.released


def test_pipe_reads_writes_eof_and_epipe(box: Box) -> None:
    r, w = box.vfs.pipe(ROOT)
    assert box.vfs.write(w, b"hello") == 5
    assert box.vfs.read(r, 3) == b"hel"
    assert box.vfs.read(r, 10) == b"lo"
    with pytest.raises(WouldBlock) as wb:
        box.vfs.read(r, 1)  # empty, writer open: would block
    woken: list[str] = []
    wb.value.queue.add(lambda: woken.append("r"))
    box.vfs.write(w, b"!")
    assert woken == ["r"]
    assert box.vfs.read(r, 10) == b"!"
    w.put()
    assert box.vfs.read(r, 10) == b""  # no writers: end of file
    r2, w2 = box.vfs.pipe(ROOT)
    r2.put()
    with pytest.raises(KernelError) as e:
        box.vfs.write(w2, b"x")
    assert e.value.errno == EPIPE and getattr(e.value, "sigpipe", False)


def test_pipe_capacity_atomicity_and_nonblocking(box: Box) -> None:
    r, w = box.vfs.pipe(ROOT, O_NONBLOCK)
    assert box.vfs.write(w, b"a" * 70000) == 65536  # capacity, short write
    with pytest.raises(KernelError) as e:
        box.vfs.write(w, b"b")
    assert e.value.errno == EAGAIN
    box.vfs.read(r, 100)
    # 100 bytes free, PIPE_BUF-sized write is atomic: all or nothing.
    with pytest.raises(KernelError) as e:
        box.vfs.write(w, b"c" * PIPE_BUF)
    assert e.value.errno == EAGAIN
    assert box.vfs.write(w, b"c" * 100) == 100
    box.vfs.read(r, 65536)
    with pytest.raises(KernelError) as e:
        box.vfs.read(r, 1)
    assert e.value.errno == EAGAIN


def test_blocking_pipe_write_waits_for_room(box: Box) -> None:
    r, w = box.vfs.pipe(ROOT)
    box.vfs.write(w, b"x" * 65536)
    with pytest.raises(WouldBlock) as wb:
        box.vfs.write(w, b"y")
    woke: list[int] = []
    wb.value.queue.add(lambda: woke.append(1))
    box.vfs.read(r, 1)
    assert woke == [1]
    assert box.vfs.write(w, b"y") == 1


def test_pipes_do_not_seek_and_reject_bad_flags(box: Box) -> None:
    r, _w = box.vfs.pipe(ROOT)
    with pytest.raises(KernelError) as e:
        box.vfs.lseek(r, 0, SEEK_SET)
    assert e.value.errno == ESPIPE
    with pytest.raises(KernelError) as e:
        box.vfs.pipe(ROOT, O_RDWR)
    assert e.value.errno == EINVAL


def test_fifo_open_rules(box: Box) -> None:
    v, fs = box.vfs, box.fs
    v.mknodat(fs, ROOT, "/fifo", S_IFIFO | 0o666)
    with pytest.raises(KernelError) as e:
        v.openat(fs, ROOT, "/fifo", O_WRONLY | O_NONBLOCK)
    assert e.value.errno == ENXIO  # fifo(7): no reader
    with pytest.raises(WouldBlock):
        v.openat(fs, ROOT, "/fifo", O_WRONLY)
    reader = v.openat(fs, ROOT, "/fifo", O_RDONLY)
    # The reader opened before any writer: its read waits for one instead of seeing EOF.
    with pytest.raises(WouldBlock):
        v.read(reader, 1)
    writer = v.openat(fs, ROOT, "/fifo", O_WRONLY)
    v.write(writer, b"via fifo")
    assert v.read(reader, 100) == b"via fifo"
    writer.put()
    assert v.read(reader, 100) == b""
