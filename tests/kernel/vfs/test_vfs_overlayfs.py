"""overlayfs per Documentation/filesystems/overlayfs.rst: merging, copy-up, whiteouts, opaque dirs."""

from __future__ import annotations

import pytest
from vfs_util import ROOT, Box

from virtlevels.kernel.errno import EINVAL, ENOENT, ENOTEMPTY, EROFS, EXDEV
from virtlevels.kernel.vfs.constants import (
    AT_REMOVEDIR,
    AT_SYMLINK_NOFOLLOW,
    O_RDWR,
    O_WRONLY,
    OVL_OPAQUE_XATTR,
    S_IFCHR,
    S_IFMT,
)


@pytest.fixture
def ovl(box: Box) -> Box:
    """/merged = upper /u over lowers /l1 (top) and /l2 (bottom)."""
    box.mkdirs("/l1", "/l2", "/u", "/w", "/merged", "/l1/shared", "/l2/shared", "/l2/only2", "/l2/d")
    box.write("/l1/a", b"a from l1")
    box.write("/l2/a", b"a from l2")
    box.write("/l2/b", b"b from l2")
    box.write("/l1/shared/one", b"1")
    box.write("/l2/shared/two", b"2")
    box.write("/l2/d/inner", b"i")
    box.vfs.mount(box.fs, ROOT, "overlay", "/merged", "overlay", 0,
                  "lowerdir=/l1:/l2,upperdir=/u,workdir=/w")
    return box


def test_merged_listing_and_layer_order(ovl: Box) -> None:
    assert ovl.ls("/merged") == ["a", "b", "d", "only2", "shared"]
    assert ovl.read("/merged/a") == b"a from l1"  # leftmost lower wins
    assert ovl.ls("/merged/shared") == ["one", "two"]  # directories merge
    assert ovl.ls("/u") == []  # reading copies nothing up
    assert "overlay /merged overlay rw,relatime,lowerdir=/l1:/l2,upperdir=/u,workdir=/w 0 0" in (
        ovl.vfs.mounts_text(ovl.fs))


def test_copy_up_on_write_keeps_lower_intact(ovl: Box) -> None:
    v, fs = ovl.vfs, ovl.fs
    f = v.openat(fs, ROOT, "/merged/b", O_RDWR)
    assert v.read(f, 100) == b"b from l2"
    v.write(f, b"!")
    f.put()
    assert ovl.read("/merged/b") == b"b from l2!"
    assert ovl.read("/u/b") == b"b from l2!"
    assert ovl.read("/l2/b") == b"b from l2"
    # A file deep in a lower directory copies its parents up first.
    ovl.write("/merged/d/inner", b"changed")
    assert ovl.ls("/u") == ["b", "d"] and ovl.ls("/u/d") == ["inner"]
    assert ovl.ls("/w/work") == []  # the scratch copy was renamed into place


def test_copy_up_on_chmod_and_chown_preserves_data(ovl: Box) -> None:
    v, fs = ovl.vfs, ovl.fs
    v.fchmodat(fs, ROOT, "/merged/a", 0o600)
    v.fchownat(fs, ROOT, "/merged/a", 7, 8)
    st = v.stat(fs, ROOT, "/u/a")
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o600, 7, 8)
    assert ovl.read("/u/a") == b"a from l1"
    assert v.stat(fs, ROOT, "/l1/a").st_mode & 0o777 == 0o644


def test_delete_of_a_lower_file_leaves_a_whiteout(ovl: Box) -> None:
    v, fs = ovl.vfs, ovl.fs
    v.unlinkat(fs, ROOT, "/merged/a")
    assert "a" not in ovl.ls("/merged")
    assert ovl.errno(v.stat, fs, ROOT, "/merged/a") == ENOENT
    st = v.stat(fs, ROOT, "/u/a", AT_SYMLINK_NOFOLLOW)
    assert st.st_mode & S_IFMT == S_IFCHR and st.st_rdev == 0  # whiteout: 0/0 char device
    assert ovl.read("/l1/a") == b"a from l1" and ovl.read("/l2/a") == b"a from l2"
    # Re-creating the name replaces the whiteout; deleting it again whites it out again.
    ovl.write("/merged/a", b"new")
    assert ovl.read("/merged/a") == b"new"
    v.unlinkat(fs, ROOT, "/merged/a")
    assert ovl.errno(v.stat, fs, ROOT, "/merged/a") == ENOENT


def test_upper_only_file_is_removed_without_whiteout(ovl: Box) -> None:
    ovl.write("/merged/fresh", b"")
    ovl.vfs.unlinkat(ovl.fs, ROOT, "/merged/fresh")
    assert "fresh" not in ovl.ls("/u")


def test_rmdir_then_mkdir_makes_an_opaque_directory(ovl: Box) -> None:
    v, fs = ovl.vfs, ovl.fs
    assert ovl.errno(v.unlinkat, fs, ROOT, "/merged/shared", AT_REMOVEDIR) == ENOTEMPTY
    v.unlinkat(fs, ROOT, "/merged/shared/one")
    v.unlinkat(fs, ROOT, "/merged/shared/two")
    assert ovl.ls("/merged/shared") == []
    v.unlinkat(fs, ROOT, "/merged/shared", AT_REMOVEDIR)
    assert "shared" not in ovl.ls("/merged")
    v.mkdirat(fs, ROOT, "/merged/shared", 0o755)
    assert ovl.ls("/merged/shared") == []  # the lower contents stay hidden
    assert v.getxattr(fs, ROOT, "/u/shared", OVL_OPAQUE_XATTR) == b"y"


def test_renaming_lower_directories_is_exdev_files_are_fine(ovl: Box) -> None:
    v, fs = ovl.vfs, ovl.fs
    assert ovl.errno(v.renameat2, fs, ROOT, "/merged/shared", "/merged/moved") == EXDEV
    assert ovl.errno(v.renameat2, fs, ROOT, "/merged/only2", "/merged/moved") == EXDEV
    v.renameat2(fs, ROOT, "/merged/b", "/merged/c")
    assert ovl.read("/merged/c") == b"b from l2"
    assert "b" not in ovl.ls("/merged")  # the old name is whited out
    v.mkdirat(fs, ROOT, "/merged/newdir", 0o755)
    v.renameat2(fs, ROOT, "/merged/newdir", "/merged/newdir2")  # pure upper directories move
    assert "newdir2" in ovl.ls("/merged")


def test_read_only_overlay_without_upper(box: Box) -> None:
    box.mkdirs("/lo", "/hi", "/m")
    box.write("/lo/f", b"low")
    box.write("/hi/f", b"high")
    box.vfs.mount(box.fs, ROOT, "overlay", "/m", "overlay", 0, "lowerdir=/hi:/lo")
    assert box.read("/m/f") == b"high"
    assert box.errno(box.vfs.openat, box.fs, ROOT, "/m/f", O_WRONLY) == EROFS
    assert box.errno(box.vfs.unlinkat, box.fs, ROOT, "/m/f") == EROFS


def test_overlay_option_errors(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/l", "/u", "/u/w", "/m", "/w")
    assert box.errno(v.mount, fs, ROOT, "o", "/m", "overlay", 0, "upperdir=/u,workdir=/w") == EINVAL
    assert box.errno(v.mount, fs, ROOT, "o", "/m", "overlay", 0, "lowerdir=/l,upperdir=/u") == EINVAL
    assert box.errno(v.mount, fs, ROOT, "o", "/m", "overlay", 0,
                     "lowerdir=/l,upperdir=/u,workdir=/u/w") == EINVAL
    box.mkdirs("/other")
    v.mount(fs, ROOT, "t", "/other", "tmpfs")
    box.mkdirs("/other/w")
    assert box.errno(v.mount, fs, ROOT, "o", "/m", "overlay", 0,
                     "lowerdir=/l,upperdir=/u,workdir=/other/w") == EINVAL


def test_overlay_graph_links_to_its_layers(ovl: Box) -> None:
    g = ovl.graph
    ovl_fs = next(n for n in g.g.nodes if g.kind(n) == "filesystem" and g.attrs(n)["fstype"] == "overlay")
    below = {b for _a, b in g.g.out_edges(ovl_fs)}
    assert any(g.attrs(n).get("fstype") == "tmpfs" for n in below)
    ovl.vfs.umount2(ovl.fs, ROOT, "/merged")
    assert ovl_fs not in g
