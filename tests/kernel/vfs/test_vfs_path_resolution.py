"""Path resolution per path_resolution(7): starting points, "..", symlinks, trailing slashes, errors."""

from __future__ import annotations

from vfs_util import ROOT, USER, Box

from virtlevels.kernel.errno import EACCES, ELOOP, ENAMETOOLONG, ENOENT, ENOTDIR
from virtlevels.kernel.vfs.constants import (
    AT_SYMLINK_NOFOLLOW,
    O_DIRECTORY,
    O_NOFOLLOW,
    O_RDONLY,
    S_IFLNK,
    S_IFMT,
    S_IFREG,
)


def test_absolute_relative_and_dirfd_paths_reach_the_same_file(box: Box) -> None:
    box.mkdirs("/a", "/a/b")
    box.write("/a/b/f", b"x")
    v, fs = box.vfs, box.fs
    ino = v.stat(fs, ROOT, "/a/b/f").st_ino
    v.chdir(fs, ROOT, "/a")
    assert v.stat(fs, ROOT, "b/f").st_ino == ino
    assert v.stat(fs, ROOT, "./b/../b//f").st_ino == ino
    d = v.openat(fs, ROOT, "/a/b", O_RDONLY | O_DIRECTORY)
    assert v.stat(fs, ROOT, "f", dirfd=d).st_ino == ino
    # An absolute path ignores the dirfd.
    assert v.stat(fs, ROOT, "/a/b/f", dirfd=d).st_ino == ino


def test_relative_path_against_a_non_directory_dirfd_is_enotdir(box: Box) -> None:
    box.write("/f", b"")
    f = box.vfs.openat(box.fs, ROOT, "/f", O_RDONLY)
    assert box.errno(box.vfs.stat, box.fs, ROOT, "x", dirfd=f) == ENOTDIR


def test_dotdot_at_the_root_stays_at_the_root(box: Box) -> None:
    box.mkdirs("/a")
    v, fs = box.vfs, box.fs
    root_ino = v.stat(fs, ROOT, "/").st_ino
    assert v.stat(fs, ROOT, "/../../..").st_ino == root_ino
    assert v.stat(fs, ROOT, "/a/../../a/..").st_ino == root_ino


def test_missing_components_and_files_used_as_directories(box: Box) -> None:
    box.write("/file", b"")
    v, fs = box.vfs, box.fs
    assert box.errno(v.stat, fs, ROOT, "/nope") == ENOENT
    assert box.errno(v.stat, fs, ROOT, "/nope/x") == ENOENT
    assert box.errno(v.stat, fs, ROOT, "/file/x") == ENOTDIR
    assert box.errno(v.stat, fs, ROOT, "") == ENOENT


def test_trailing_slash_requires_a_directory(box: Box) -> None:
    box.write("/file", b"")
    box.mkdirs("/dir")
    v, fs = box.vfs, box.fs
    assert box.errno(v.stat, fs, ROOT, "/file/") == ENOTDIR
    assert v.stat(fs, ROOT, "/dir/").st_ino == v.stat(fs, ROOT, "/dir").st_ino
    # A trailing slash follows a symlink to a directory even with AT_SYMLINK_NOFOLLOW.
    v.symlinkat(fs, ROOT, "/dir", "/ln")
    assert v.stat(fs, ROOT, "/ln/", AT_SYMLINK_NOFOLLOW).st_ino == v.stat(fs, ROOT, "/dir").st_ino
    assert v.stat(fs, ROOT, "/ln", AT_SYMLINK_NOFOLLOW).st_mode & S_IFMT == S_IFLNK


def test_name_too_long(box: Box) -> None:
    v, fs = box.vfs, box.fs
    assert box.errno(v.stat, fs, ROOT, "/" + "a" * 256) == ENAMETOOLONG
    assert box.errno(v.mkdirat, fs, ROOT, "/" + "a" * 256) == ENAMETOOLONG
    assert box.errno(v.stat, fs, ROOT, "/a" * 2048) == ENAMETOOLONG
    box.mkdirs("/" + "b" * 255)  # NAME_MAX itself is fine


def test_search_permission_is_needed_on_every_directory(box: Box) -> None:
    box.mkdirs("/locked", mode=0o700)
    box.write("/locked/f", b"secret", mode=0o644)
    v, fs = box.vfs, box.fs
    assert box.errno(v.stat, fs, USER, "/locked/f") == EACCES
    v.fchmodat(fs, ROOT, "/locked", 0o711)  # search without read
    assert v.stat(fs, USER, "/locked/f").st_size == 6


def test_symlinks_relative_absolute_and_chained(box: Box) -> None:
    box.mkdirs("/d", "/d/e")
    box.write("/d/e/f", b"data")
    v, fs = box.vfs, box.fs
    v.symlinkat(fs, ROOT, "e/f", "/d/rel")
    v.symlinkat(fs, ROOT, "/d/e", "/abs")
    v.symlinkat(fs, ROOT, "abs/f", "/chain")
    assert box.read("/d/rel") == b"data"
    assert box.read("/abs/f") == b"data"
    assert box.read("/chain") == b"data"
    assert v.readlinkat(fs, ROOT, "/chain") == "abs/f"
    assert v.stat(fs, ROOT, "/chain").st_mode & S_IFMT == S_IFREG


def test_symlink_loops_and_the_forty_link_limit(box: Box) -> None:
    v, fs = box.vfs, box.fs
    v.symlinkat(fs, ROOT, "/loop2", "/loop1")
    v.symlinkat(fs, ROOT, "/loop1", "/loop2")
    assert box.errno(v.stat, fs, ROOT, "/loop1") == ELOOP
    box.write("/target", b"t")
    # A chain of exactly 40 links resolves; 41 is ELOOP (MAXSYMLINKS).
    v.symlinkat(fs, ROOT, "/target", "/l0")
    for i in range(1, 41):
        v.symlinkat(fs, ROOT, f"/l{i - 1}", f"/l{i}")
    assert box.read("/l39") == b"t"
    assert box.errno(v.stat, fs, ROOT, "/l40") == ELOOP


def test_nofollow_on_a_final_symlink(box: Box) -> None:
    box.write("/t", b"")
    v, fs = box.vfs, box.fs
    v.symlinkat(fs, ROOT, "/t", "/s")
    assert box.errno(v.openat, fs, ROOT, "/s", O_RDONLY | O_NOFOLLOW) == ELOOP
    v.symlinkat(fs, ROOT, "/nowhere", "/dangling")
    assert box.errno(v.stat, fs, ROOT, "/dangling") == ENOENT
    assert v.stat(fs, ROOT, "/dangling", AT_SYMLINK_NOFOLLOW).st_size == len("/nowhere")


def test_symlinks_resolve_against_the_process_root(box: Box) -> None:
    box.mkdirs("/jail", "/jail/etc", "/etc")
    box.write("/jail/etc/passwd", b"jail")
    box.write("/etc/passwd", b"host")
    v = box.vfs
    jailed = box.fs.copy()
    v.chroot(jailed, ROOT, "/jail")
    v.symlinkat(jailed, ROOT, "/etc/passwd", "/link")
    v.symlinkat(jailed, ROOT, "../../../etc/passwd", "/etc/rel")
    assert box.read("/link", fs=jailed) == b"jail"
    assert box.read("/etc/rel", fs=jailed) == b"jail"
