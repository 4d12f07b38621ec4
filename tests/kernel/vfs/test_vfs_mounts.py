"""Mounts, mount namespaces and propagation (mount_namespaces(7), sharedsubtree.rst), pivot_root,
chroot, /proc/mounts text and the resource graph."""

from __future__ import annotations

from vfs_util import ROOT, USER, Box

from virtlevels.kernel.errno import EBUSY, EINVAL, ELOOP, ENODEV, ENOENT, ENOTDIR, EPERM
from virtlevels.kernel.vfs import render_mountinfo, render_mounts
from virtlevels.kernel.vfs.constants import (
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    MS_SHARED,
    MS_SLAVE,
    MS_UNBINDABLE,
    O_RDONLY,
)


def _mount_points(box: Box, fs: object = None) -> list[str]:
    text = box.vfs.mounts_text(fs or box.fs)  # type: ignore[arg-type]
    return [line.split()[1] for line in text.splitlines()]


def test_new_mount_hides_and_umount_reveals(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/mnt")
    box.write("/mnt/under", b"")
    v.mount(fs, ROOT, "tmpfs", "/mnt", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    assert box.ls("/mnt") == []
    box.write("/mnt/over", b"")
    assert box.vfs.stat(fs, ROOT, "/mnt/..").st_ino == box.vfs.stat(fs, ROOT, "/").st_ino
    assert "tmpfs /mnt tmpfs rw,nosuid,nodev,relatime,size=1024k,mode=755 0 0\n" in v.mounts_text(fs)
    v.umount2(fs, ROOT, "/mnt")
    assert box.ls("/mnt") == ["under"]
    assert box.errno(v.umount2, fs, ROOT, "/mnt") == EINVAL  # no longer a mount point


def test_mount_errors(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/m")
    box.write("/file", b"")
    assert box.errno(v.mount, fs, ROOT, "x", "/m", "nosuchfs") == ENODEV
    assert box.errno(v.mount, fs, ROOT, "x", "/nope", "tmpfs") == ENOENT
    assert box.errno(v.mount, fs, ROOT, "x", "/file", "tmpfs") == ENOTDIR
    assert box.errno(v.mount, fs, USER, "x", "/m", "tmpfs") == EPERM
    assert box.errno(v.mount, fs, ROOT, "x", "/m", "tmpfs", 0, "bogus=1") == EINVAL
    assert box.errno(v.umount2, fs, USER, "/") == EPERM


def test_umount_busy_rules(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/m")
    v.mount(fs, ROOT, "t", "/m", "tmpfs")
    box.mkdirs("/m/inner")
    v.mount(fs, ROOT, "t", "/m/inner", "tmpfs")
    assert box.errno(v.umount2, fs, ROOT, "/m") == EBUSY  # has a child mount
    v.umount2(fs, ROOT, "/m/inner")
    f = v.openat(fs, ROOT, "/m", O_RDONLY)
    assert box.errno(v.umount2, fs, ROOT, "/m") == EBUSY  # an open file
    f.put()
    other = fs.copy()
    v.chdir(other, ROOT, "/m")
    assert box.errno(v.umount2, fs, ROOT, "/m") == EBUSY  # someone's cwd
    v.umount2(fs, ROOT, "/m", MNT_DETACH)  # lazy unmount detaches anyway
    assert "/m" not in _mount_points(box)
    assert v.getcwd(other).startswith("(unreachable)")


def test_bind_mounts_plain_and_recursive(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/src", "/src/sub", "/plain", "/rec")
    v.mount(fs, ROOT, "t", "/src/sub", "tmpfs")
    box.write("/src/sub/inside", b"1")
    box.write("/src/top", b"2")
    v.mount(fs, ROOT, "/src", "/plain", None, MS_BIND)
    v.mount(fs, ROOT, "/src", "/rec", None, MS_BIND | MS_REC)
    assert box.read("/plain/top") == b"2"
    assert box.ls("/plain/sub") == []  # non-recursive: the submount is not carried
    assert box.ls("/rec/sub") == ["inside"]
    box.write("/plain/new", b"3")
    assert box.read("/src/new") == b"3"  # same filesystem, same files
    assert _mount_points(box)[-4:] == ["/src/sub", "/plain", "/rec", "/rec/sub"]


def test_bind_of_unbindable_is_einval_and_skipped_by_rbind(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/u", "/a", "/a/u", "/b")
    v.mount(fs, ROOT, "t", "/u", "tmpfs")
    v.mount(fs, ROOT, None, "/u", None, MS_UNBINDABLE)
    assert box.errno(v.mount, fs, ROOT, "/u", "/b", None, MS_BIND) == EINVAL
    v.mount(fs, ROOT, "t", "/a/u", "tmpfs")
    v.mount(fs, ROOT, None, "/a/u", None, MS_UNBINDABLE)
    v.mount(fs, ROOT, "/a", "/b", None, MS_BIND | MS_REC)
    assert "/b/u" not in _mount_points(box)
    assert "unbindable" in render_mountinfo(box.ns, fs.root.mnt)


def test_move_mount(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/a", "/b", "/c")
    v.mount(fs, ROOT, "t", "/a", "tmpfs")
    box.write("/a/f", b"moved")
    v.mount(fs, ROOT, "/a", "/b", None, MS_MOVE)
    assert box.read("/b/f") == b"moved" and box.ls("/a") == []
    box.mkdirs("/b/inner")
    assert box.errno(v.mount, fs, ROOT, "/b", "/b/inner", None, MS_MOVE) == ELOOP
    assert box.errno(v.mount, fs, ROOT, "/c", "/a", None, MS_MOVE) == EINVAL  # /c is no mount root


def _two_namespaces(box: Box) -> tuple[object, object]:
    """The host namespace with a shared /shared and a private /private, and a clone of it."""
    v, fs = box.vfs, box.fs
    box.mkdirs("/shared", "/private")
    v.mount(fs, ROOT, "s", "/shared", "tmpfs")
    v.mount(fs, ROOT, "p", "/private", "tmpfs")
    v.mount(fs, ROOT, None, "/shared", None, MS_SHARED)
    box.mkdirs("/shared/x", "/private/x")
    child = fs.copy()
    v.unshare_mounts(child, ROOT)
    return fs, child


def test_clone_copies_the_tree_and_isolates_private_mounts(box: Box) -> None:
    v = box.vfs
    host, child = _two_namespaces(box)
    assert child.ns is not host.ns  # type: ignore[attr-defined]
    assert _mount_points(box, child) == _mount_points(box, host)
    # A mount under a private mount in the child does not appear on the host, and vice versa.
    v.mount(child, ROOT, "c", "/private/x", "tmpfs")  # type: ignore[arg-type]
    assert "/private/x" in _mount_points(box, child)
    assert "/private/x" not in _mount_points(box, host)
    v.umount2(child, ROOT, "/private/x")  # type: ignore[arg-type]
    box.mkdirs("/m")
    v.mount(host, ROOT, "h", "/m", "tmpfs")  # type: ignore[arg-type]
    assert "/m" not in _mount_points(box, child)


def test_mounts_under_a_shared_mount_propagate_to_the_peer_namespace(box: Box) -> None:
    v = box.vfs
    host, child = _two_namespaces(box)
    v.mount(host, ROOT, "h", "/shared/x", "tmpfs")  # type: ignore[arg-type]
    assert "/shared/x" in _mount_points(box, child)
    box.write("/shared/x/hello", b"from host", fs=host)  # type: ignore[arg-type]
    assert box.read("/shared/x/hello", fs=child) == b"from host"  # type: ignore[arg-type]
    # Unmounting propagates back the other way too.
    v.umount2(child, ROOT, "/shared/x")  # type: ignore[arg-type]
    assert "/shared/x" not in _mount_points(box, host)
    info = render_mountinfo(host.ns, host.root.mnt)  # type: ignore[attr-defined]
    assert " shared:" in info


def test_slave_receives_but_does_not_send(box: Box) -> None:
    v = box.vfs
    host, child = _two_namespaces(box)
    v.mount(child, ROOT, None, "/shared", None, MS_SLAVE)  # type: ignore[arg-type]
    box.mkdirs("/shared/y", fs=host)  # type: ignore[arg-type]
    v.mount(host, ROOT, "h", "/shared/x", "tmpfs")  # type: ignore[arg-type]
    assert "/shared/x" in _mount_points(box, child)
    v.mount(child, ROOT, "c", "/shared/y", "tmpfs")  # type: ignore[arg-type]
    assert "/shared/y" not in _mount_points(box, host)
    info = render_mountinfo(child.ns, child.root.mnt)  # type: ignore[attr-defined]
    assert " master:" in info


def test_making_the_peer_private_stops_propagation(box: Box) -> None:
    v = box.vfs
    host, child = _two_namespaces(box)
    v.mount(child, ROOT, None, "/", None, MS_PRIVATE | MS_REC)  # type: ignore[arg-type]
    v.mount(host, ROOT, "h", "/shared/x", "tmpfs")  # type: ignore[arg-type]
    assert "/shared/x" not in _mount_points(box, child)
    assert box.errno(v.mount, child, ROOT, None, "/shared", None, MS_SHARED | MS_SLAVE) == EINVAL


def test_bind_of_a_shared_mount_is_its_peer(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/a", "/b")
    v.mount(fs, ROOT, "t", "/a", "tmpfs")
    v.mount(fs, ROOT, None, "/a", None, MS_SHARED)
    v.mount(fs, ROOT, "/a", "/b", None, MS_BIND)
    box.mkdirs("/a/sub")
    v.mount(fs, ROOT, "t2", "/a/sub", "tmpfs")
    assert "/b/sub" in _mount_points(box)


def test_less_privileged_clone_turns_shared_into_slave_and_locks(box: Box) -> None:
    class UserNs:
        parent = None
        owner = 0

    class ChildUserNs:
        parent = UserNs()
        owner = 1000

    v = box.vfs
    host, _ = _two_namespaces(box)
    uns = ChildUserNs()
    inside = ROOT.copy()
    inside.user_ns = uns  # type: ignore[assignment]
    jailed = host.copy()  # type: ignore[attr-defined]
    v.unshare_mounts(jailed, ROOT, user_ns=uns)
    info = render_mountinfo(jailed.ns, jailed.root.mnt)
    shared_line = next(line for line in info.splitlines() if " /shared " in line)
    assert "master:" in shared_line and "shared:" not in shared_line
    # Mounts inherited from the more privileged namespace cannot be unmounted to uncover things.
    assert box.errno(v.umount2, jailed, inside, "/private") == EINVAL
    v.mount(jailed, inside, "t", "/private/x", "tmpfs")
    v.umount2(jailed, inside, "/private/x")


def test_chroot_and_dotdot_escape_attempts(box: Box) -> None:
    v = box.vfs
    box.mkdirs("/jail", "/jail/sub")
    box.write("/secret", b"host secret")
    box.write("/jail/inside", b"jail file")
    jailed = box.fs.copy()
    v.chdir(jailed, ROOT, "/jail/sub")
    v.chroot(jailed, ROOT, "/jail")
    assert box.errno(v.stat, jailed, ROOT, "/../../secret") == ENOENT
    assert box.errno(v.stat, jailed, ROOT, "../../../../secret") == ENOENT
    assert box.read("../../../inside", fs=jailed) == b"jail file"
    assert v.getcwd(jailed) == "/sub"
    assert box.errno(v.chroot, jailed, USER, "/sub") == EPERM
    # The classic escape: chroot deeper while keeping a cwd outside the new root. Linux allows
    # it (cwd is not changed by chroot) and getcwd says "(unreachable)".
    v.chdir(jailed, ROOT, "/")
    v.chroot(jailed, ROOT, "/sub")
    assert v.getcwd(jailed) == "(unreachable)/jail"
    assert box.read("../secret", fs=jailed) == b"host secret"


def _container_root(box: Box) -> object:
    """A context in a new namespace about to pivot into /rootfs (the runc sequence)."""
    v = box.vfs
    box.mkdirs("/rootfs", "/rootfs/old", "/rootfs/etc")
    box.write("/rootfs/etc/hostname", b"container")
    c = box.fs.copy()
    v.unshare_mounts(c, ROOT)
    v.mount(c, ROOT, None, "/", None, MS_PRIVATE | MS_REC)
    v.mount(c, ROOT, "/rootfs", "/rootfs", None, MS_BIND | MS_REC)
    return c


def test_pivot_root_and_detaching_the_old_root(box: Box) -> None:
    v = box.vfs
    c = _container_root(box)
    v.chdir(c, ROOT, "/rootfs")  # type: ignore[arg-type]
    v.pivot_root(c, ROOT, ".", "old")  # type: ignore[arg-type]
    assert box.read("/etc/hostname", fs=c) == b"container"  # type: ignore[arg-type]
    assert "rootfs" in box.ls("/old", fs=c)  # type: ignore[arg-type]
    v.umount2(c, ROOT, "/old", MNT_DETACH)  # type: ignore[arg-type]
    assert box.ls("/old", fs=c) == []  # type: ignore[arg-type]
    assert _mount_points(box, c) == ["/"]
    assert box.errno(v.stat, c, ROOT, "/../rootfs") == ENOENT  # type: ignore[arg-type]
    # The host namespace is untouched.
    assert _mount_points(box) == ["/"]


def test_pivot_root_dot_dot_idiom(box: Box) -> None:
    v = box.vfs
    c = _container_root(box)
    v.chdir(c, ROOT, "/rootfs")  # type: ignore[arg-type]
    v.pivot_root(c, ROOT, ".", ".")  # type: ignore[arg-type]
    v.umount2(c, ROOT, ".", MNT_DETACH)  # type: ignore[arg-type]
    assert box.read("/etc/hostname", fs=c) == b"container"  # type: ignore[arg-type]
    assert _mount_points(box, c) == ["/"]


def test_pivot_root_einval_rules(box: Box) -> None:
    v = box.vfs
    c = _container_root(box)
    box.mkdirs("/notmnt", "/rootfs/dir")
    # new_root must be a mount point.
    assert box.errno(v.pivot_root, c, ROOT, "/rootfs/dir", "/rootfs/dir") == EINVAL
    # put_old on the current root mount is EBUSY (checked before reachability)...
    assert box.errno(v.pivot_root, c, ROOT, "/rootfs", "/notmnt") == EBUSY
    # ...and elsewhere but not at or under new_root, EINVAL.
    v.mount(c, ROOT, "t", "/notmnt", "tmpfs")  # type: ignore[arg-type]
    assert box.errno(v.pivot_root, c, ROOT, "/rootfs", "/notmnt") == EINVAL
    # new_root on the current root mount.
    assert box.errno(v.pivot_root, c, ROOT, "/", "/") == EBUSY
    # Not permitted without CAP_SYS_ADMIN.
    assert box.errno(v.pivot_root, c, USER, "/rootfs", "/rootfs/old") == EPERM
    # A shared parent of new_root is refused.
    v.mount(c, ROOT, None, "/", None, MS_SHARED)  # type: ignore[arg-type]
    assert box.errno(v.pivot_root, c, ROOT, "/rootfs", "/rootfs/old") == EINVAL
    # The current root must be a mount root (not after chroot into a subdirectory).
    v.mount(c, ROOT, None, "/", None, MS_PRIVATE)  # type: ignore[arg-type]
    v.chroot(c, ROOT, "/rootfs/etc")  # type: ignore[arg-type]
    assert box.errno(v.pivot_root, c, ROOT, "/", "/") == EBUSY  # type: ignore[arg-type]


def test_render_mounts_is_relative_to_the_process_root(box: Box) -> None:
    v, fs = box.vfs, box.fs
    box.mkdirs("/jail", "/jail/proc", "/other")
    v.mount(fs, ROOT, "my tmp", "/jail/proc", "tmpfs")
    v.mount(fs, ROOT, "x", "/other", "tmpfs")
    j = fs.copy()
    v.chroot(j, ROOT, "/jail")
    text = render_mounts(box.ns, j.root.mnt, j.root.dentry)
    assert text == "my\\040tmp /proc tmpfs rw,relatime 0 0\n"


def test_mounts_and_filesystems_are_graph_nodes(box: Box) -> None:
    v, fs, g = box.vfs, box.fs, box.graph
    before = set(g.g.nodes)
    box.mkdirs("/m")
    v.mount(fs, ROOT, "t", "/m", "tmpfs")
    added = set(g.g.nodes) - before
    kinds = sorted(g.kind(n) for n in added)
    assert kinds == ["filesystem", "mount"]
    mnt = next(n for n in added if g.kind(n) == "mount")
    fsn = next(n for n in added if g.kind(n) == "filesystem")
    assert g.g.has_edge(mnt, fsn)
    v.umount2(fs, ROOT, "/m")
    assert set(g.g.nodes) == before
    # A mount that fails leaves nothing behind.
    assert box.errno(v.mount, fs, ROOT, "t", "/m", "tmpfs", 0, "size=lots") == EINVAL
    assert box.errno(v.mount, fs, ROOT, "o", "/m", "overlay", 0, "lowerdir=/nope") == ENOENT
    assert set(g.g.nodes) == before


def test_propagation_reaches_slaves_of_slaves(box: Box) -> None:
    v = box.vfs
    host, b = _two_namespaces(box)
    v.mount(b, ROOT, None, "/shared", None, MS_SLAVE)  # type: ignore[arg-type]
    c = b.copy()  # type: ignore[attr-defined]
    v.unshare_mounts(c, ROOT)  # C's copy is a slave of the same master
    v.mount(host, ROOT, "h", "/shared/x", "tmpfs")  # type: ignore[arg-type]
    assert "/shared/x" in _mount_points(box, b)
    assert "/shared/x" in _mount_points(box, c)
    v.umount2(host, ROOT, "/shared/x")  # type: ignore[arg-type]
    assert "/shared/x" not in _mount_points(box, c)


def test_destroying_a_namespace_removes_its_mounts_from_the_graph(box: Box) -> None:
    v, g = box.vfs, box.graph
    box.mkdirs("/m")
    v.mount(box.fs, ROOT, "t", "/m", "tmpfs")
    before = set(g.g.nodes)
    child = box.fs.copy()
    v.unshare_mounts(child, ROOT)
    copies = set(g.g.nodes) - before
    assert len(copies) == 3 and {g.kind(n) for n in copies} == {"mount"}  # rootfs, /, /m
    old_ns = child.ns
    child.release()
    assert old_ns is not None
    old_ns.destroy()
    assert set(g.g.nodes) == before


def test_setns_moves_root_and_cwd_into_the_namespace(box: Box) -> None:
    v = box.vfs
    box.mkdirs("/d")
    child = box.fs.copy()
    v.unshare_mounts(child, ROOT)
    v.mount(child, ROOT, "t", "/d", "tmpfs")
    box.write("/d/only-in-child", b"c", fs=child)
    joiner = box.fs.copy()
    v.chdir(joiner, ROOT, "/d")
    assert child.ns is not None
    assert box.errno(v.setns_mounts, joiner, USER, child.ns) == EPERM
    v.setns_mounts(joiner, ROOT, child.ns)
    assert v.getcwd(joiner) == "/"
    assert box.ls("/d", fs=joiner) == ["only-in-child"]
