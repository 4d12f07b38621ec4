"""The VFS façade the system-call layer calls (fs/open.c, fs/namei.c, fs/read_write.c, fs/stat.c).

Every operation takes the caller's :class:`FsContext` (root, cwd, mount namespace, umask) and
:class:`Credentials` (fsuid/fsgid/groups and capabilities), and raises ``KernelError`` with the
errno Linux returns, checked in Linux's order where several apply. ``dirfd`` is the open
directory a relative path starts from (None for AT_FDCWD; see ``FdTable.dirfd``). Uids and gids
are kernel ids: mapping them to and from a user namespace is the syscall layer's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from virtlevels.kernel.block import DISK_GID, BlockDevOps
from virtlevels.kernel.caps import CAP_MKNOD, CAP_SYS_ADMIN, CAP_SYS_CHROOT
from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import (
    EACCES,
    EBADF,
    EBUSY,
    EEXIST,
    EINVAL,
    EISDIR,
    ELOOP,
    ENOENT,
    ENOTDIR,
    ENOTEMPTY,
    ENXIO,
    EOPNOTSUPP,
    EPERM,
    EROFS,
    ESPIPE,
    EXDEV,
    KernelError,
)
from virtlevels.kernel.vfs import mountops, perm
from virtlevels.kernel.vfs.constants import (
    AT_EACCESS,
    AT_EMPTY_PATH,
    AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW,
    F_OK,
    MAY_EXEC,
    MAY_READ,
    MAY_WRITE,
    MS_NODEV,
    O_ACCMODE,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECT,
    O_DIRECTORY,
    O_EXCL,
    O_NOCTTY,
    O_NOFOLLOW,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    RENAME_WHITEOUT,
    S_IFBLK,
    S_IFCHR,
    S_IFDIR,
    S_IFIFO,
    S_IFMT,
    S_IFREG,
    S_IFSOCK,
    S_ISGID,
    SEEK_END,
    SEEK_SET,
    W_OK,
)
from virtlevels.kernel.vfs.core import VfsCore
from virtlevels.kernel.vfs.devices import (
    STANDARD_LINKS,
    STANDARD_NODES,
    ConsoleDevice,
    FullDevice,
    NullDevice,
    ZeroDevice,
)
from virtlevels.kernel.vfs.file import DirOps, OpenFile, PipeOps, RegularOps
from virtlevels.kernel.vfs.fscontext import FsContext
from virtlevels.kernel.vfs.inode import Clock, Dentry, Inode, SuperBlock, decode_dev, encode_dev
from virtlevels.kernel.vfs.mount import (
    MountNamespace,
    Path,
    d_path,
    graft,
    is_mountpoint_in,
    new_mount,
    render_mounts,
)
from virtlevels.kernel.vfs.namei import Parent, Walker, follow_mounts
from virtlevels.kernel.vfs.pipe import Pipe
from virtlevels.kernel.vfs.stat import Stat, dirent64, stat_inode
from virtlevels.kernel.vfs.synthetic import SynDir, SyntheticFS
from virtlevels.kernel.vfs.tmpfs import make_tmpfs_sb
from virtlevels.kernel.wait import WouldBlock

#: Flags open() drops from the description once it has acted on them (do_dentry_open).
_OPEN_ONLY = O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC


class Vfs:
    """One kernel's virtual filesystem."""

    def __init__(self, clock: Clock | None = None, graph: Any = None, prefix: str = "vfs",
                 owner_node: str | None = None, console: Callable[[bytes], object] | None = None,
                 tmpfs_charge: Callable[[int], object] | None = None) -> None:
        self.core = VfsCore(clock if clock is not None else (lambda: 0), graph, prefix, owner_node)
        #: Character device drivers by (major, minor).
        self.chrdevs: dict[tuple[int, int], Any] = {
            (1, 3): NullDevice(), (1, 5): ZeroDevice(), (1, 7): FullDevice(),
            (5, 1): ConsoleDevice(console if console is not None else (lambda data: None)),
        }  # fmt: skip
        #: Block devices (disks) by (major, minor): ``virtlevels.kernel.block.BlockDevice``.
        self.blkdevs: dict[tuple[int, int], Any] = {}
        #: Memory-cgroup seam: told every change in tmpfs page count (may raise to refuse).
        self.tmpfs_charge = tmpfs_charge
        self.fs_types: dict[str, mountops.FsType] = dict(mountops.BUILTIN_FS_TYPES)
        self._pipefs = self.core.new_sb(SyntheticFS(SynDir(), "pipefs"), "pipefs", source="pipefs")
        self._pipefs.fs.make_root(self._pipefs)  # type: ignore[attr-defined]
        #: LSM path hooks (security/security.c: security_file_open, security_path_mkdir, ...): each
        #: is called as ``hook(creds, op, path, arg)`` once the permission checks passed, and raises
        #: ``KernelError`` to deny. ``op``/``path``/``arg``: "open" (the opened Path, open flags),
        #: "exec" (the file, 0), "truncate" (the file, 0), "mkdir"/"mknod"/"symlink"/"link" (the
        #: parent directory, the new inode's mode), "unlink"/"rmdir" (the parent, 0),
        #: "rename_from"/"rename_to" (the parents, the moved inode's mode). Empty: no cost.
        self.security_hooks: list[Callable[[Credentials, str, Path, int], None]] = []

    # -- making filesystems and namespaces ---------------------------------------------------------
    def new_tmpfs(self, *, size: int | None = None, mode: int = 0o1777, uid: int = 0, gid: int = 0,
                  fstype: str = "tmpfs", source: str = "tmpfs", user_ns: Any = None) -> SuperBlock:
        """A tmpfs superblock (size in bytes, None for no limit); it joins the graph when mounted."""
        def factory(fs: Any, t: str) -> SuperBlock:
            return self.core.new_sb(fs, t, source=source, user_ns=user_ns)
        return make_tmpfs_sb(factory, size_limit=size, charge=self.tmpfs_charge, mode=mode, uid=uid, gid=gid,
                             fstype=fstype)

    def new_synthetic(self, root: SynDir, *, fstype: str, source: str | None = None,
                      user_ns: Any = None) -> SuperBlock:
        """A superblock of a synthetic filesystem (procfs, cgroup2, sysfs are built this way)."""
        fs = SyntheticFS(root, fstype)
        sb = self.core.new_sb(fs, fstype, source=source if source is not None else fstype, user_ns=user_ns)
        fs.make_root(sb)
        return sb

    def new_devfs(self, *, user_ns: Any = None) -> SuperBlock:
        """A devtmpfs-like /dev: null, zero, full, console and the fd/stdio symlinks."""
        sb = self.new_tmpfs(mode=0o755, fstype="devtmpfs", source="devtmpfs", user_ns=user_ns)
        root = sb.root
        for name, major, minor, mode in STANDARD_NODES:
            sb.fs.create(root, name, S_IFCHR | mode, 0, 0, encode_dev(major, minor))
        for (major, minor), disk in sorted(self.blkdevs.items()):
            # devtmpfs names disks as the driver does, root:disk 0660 (udev's default).
            sb.fs.create(root, disk.name, S_IFBLK | 0o660, 0, DISK_GID, encode_dev(major, minor))
        for name, target in STANDARD_LINKS:
            sb.fs.symlink(root, name, target, 0, 0)
        return sb

    def register_chrdev(self, major: int, minor: int, driver: Any) -> None:
        self.chrdevs[(major, minor)] = driver

    def register_blkdev(self, major: int, minor: int, driver: Any, name: str | None = None) -> Any:
        """Make ``driver`` (whole sectors: ``capacity``, ``read_sectors``, ``write_sectors``) the disk
        behind block special files numbered (major, minor); devtmpfs made afterwards shows it as
        ``name``. Returns the ``BlockDevice`` (whose ``account`` seam the kernel sets)."""
        from virtlevels.kernel.block import BlockDevice

        disk = driver if isinstance(driver, BlockDevice) else BlockDevice(name or f"blk{major}_{minor}",
                                                                            major, minor, driver)
        self.blkdevs[(major, minor)] = disk
        return disk

    def register_fs_type(self, name: str, make: mountops.SbFactory, *, userns_mount: bool = False) -> None:
        """Let mount(2) create ``name`` filesystems; ``make(vfs, fs, creds, source, options)`` returns
        the superblock (procfs, cgroup2 come from the kernel core this way)."""
        self.fs_types[name] = mountops.FsType(make, userns_mount)

    def new_namespace(self, root_sb: SuperBlock, *, user_ns: Any = None) -> MountNamespace:
        """The initial mount namespace: an internal "rootfs" with ``root_sb`` mounted on its root
        (init_mount_tree), so pivot_root works on it as on Linux."""
        rootfs_sb = self.new_tmpfs(mode=0o755, fstype="rootfs", source="rootfs", user_ns=user_ns)
        rootfs = new_mount(self.core, rootfs_sb)
        ns = MountNamespace(self.core, rootfs, user_ns)
        graft(new_mount(self.core, root_sb), rootfs, rootfs_sb.root)
        return ns

    def root_context(self, ns: MountNamespace, task: Any = None) -> FsContext:
        """A context whose root and cwd are the namespace's "/" (what setns gives a task)."""
        top = follow_mounts(Path(ns.root, ns.root.root))
        return FsContext(top, top, ns, task=task)

    def unshare_mounts(self, fs: FsContext, creds: Credentials, *, user_ns: Any = None) -> MountNamespace:
        """unshare(CLONE_NEWNS): a copy of the caller's namespace; root and cwd move into it.
        With a different owning user namespace the copy is "less privileged" (shared -> slave, locked)."""
        return mountops.unshare(self, fs, creds, user_ns)

    def setns_mounts(self, fs: FsContext, creds: Credentials, ns: MountNamespace) -> None:
        """setns(fd, CLONE_NEWNS): root and cwd become the namespace's "/" (mntns_install). Needs
        CAP_SYS_ADMIN over the target and CAP_SYS_CHROOT and CAP_SYS_ADMIN in one's own namespace."""
        if not (perm.capable_in(creds, ns.user_ns, CAP_SYS_ADMIN)
                and perm.capable_in(creds, creds.user_ns, CAP_SYS_CHROOT)
                and perm.capable_in(creds, creds.user_ns, CAP_SYS_ADMIN)):
            raise KernelError(EPERM, "setns to a mount namespace needs CAP_SYS_ADMIN and CAP_SYS_CHROOT")
        top = follow_mounts(Path(ns.root, ns.root.root))
        fs.set_root(top)
        fs.set_cwd(top)
        fs.ns = ns

    def security_check(self, creds: Credentials, op: str, path: Path, arg: int = 0) -> None:
        """Run the LSM path hooks (see ``security_hooks``)."""
        for hook in self.security_hooks:
            hook(creds, op, path, arg)

    # -- opening ----------------------------------------------------------------------------------
    def openat(self, fs: FsContext, creds: Credentials, path: str, flags: int, mode: int = 0o666,
               dirfd: OpenFile | None = None) -> OpenFile:
        """openat(2). The caller installs the result in its FdTable (with O_CLOEXEC if asked)."""
        w = Walker(fs, creds)
        created = False
        if flags & O_CREAT:
            p, created = self._open_create(w, w.resolve_parent(path, dirfd), flags, mode)
        else:
            p = w.resolve(path, dirfd, follow=not flags & O_NOFOLLOW)
        return self._do_open(fs, creds, p, flags, created)

    def _open_create(self, w: Walker, par: Parent, flags: int, mode: int) -> tuple[Path, bool]:
        # open_last_lookups: with O_CREAT a trailing slash or "."/".."/"/" is EISDIR.
        if par.trailing_slash or par.is_dot:
            raise KernelError(EISDIR, "O_CREAT on a directory name")
        existing = w.lookup_last(par)
        if existing is not None:
            if flags & O_EXCL:
                raise KernelError(EEXIST, par.last)
            if existing.dentry.inode.is_symlink:
                if flags & O_NOFOLLOW:
                    raise KernelError(ELOOP, f"{par.last!r} is a symlink (O_NOFOLLOW)")
                # open(2): O_CREAT through a dangling symlink creates its target.
                w.links += 1
                if w.links > 40:
                    raise KernelError(ELOOP, "too many levels of symbolic links")
                target = existing.dentry.sb.fs.readlink(existing.dentry.inode, w.caller)
                start = w.fs.root if target.startswith("/") else par.dir
                return self._open_create(w, w.parent_from(start, target), flags, mode)
            return existing, False
        d = par.dir
        self._may_create(w.fs, w.creds, d)
        m = S_IFREG | (mode & ~w.fs.umask & 0o7777)
        if self.security_hooks:
            self.security_check(w.creds, "mknod", d, m)  # security_path_mknod (open_last_lookups)
        gid, extra = self._new_owner(w.creds, d.dentry.inode)
        child = d.dentry.sb.fs.create(d.dentry, par.last, m, w.creds.fsuid, gid)
        return Path(d.mnt, child), True

    def _do_open(self, fs: FsContext, creds: Credentials, p: Path, flags: int, created: bool) -> OpenFile:
        inode = p.dentry.inode
        acc = flags & O_ACCMODE
        if inode.is_symlink:
            raise KernelError(ELOOP, "open of a symlink with O_NOFOLLOW")
        if flags & O_DIRECTORY and not inode.is_dir:
            raise KernelError(ENOTDIR, "O_DIRECTORY on a non-directory")
        wants_write = acc in (O_WRONLY, O_RDWR) or bool(flags & O_TRUNC)
        if inode.is_dir and (wants_write or flags & O_CREAT):
            raise KernelError(EISDIR, "directories open read-only")
        if not created:
            mask = (MAY_READ if acc in (O_RDONLY, O_RDWR) else 0) | (MAY_WRITE if wants_write else 0)
            if mask & MAY_WRITE and inode.ftype in (S_IFREG, S_IFDIR) and p.mnt.readonly:
                raise KernelError(EROFS, "read-only mount")
            perm.check(creds, inode, mask, p.dentry.name)
        if self.security_hooks:
            self.security_check(creds, "open", p, flags)  # security_file_open (do_dentry_open)
        ftype = inode.ftype
        if ftype in (S_IFCHR, S_IFBLK) and p.mnt.flags & MS_NODEV:
            raise KernelError(EACCES, "device on a nodev mount")
        fifo_wait = None
        if ftype == S_IFIFO:
            pipe = inode.pipe if inode.pipe is not None else Pipe()
            inode.pipe = pipe
            if acc == O_WRONLY and pipe.readers == 0:
                # fifo(7): a writer waits for a reader; non-blocking, it gets ENXIO.
                if flags & O_NONBLOCK:
                    raise KernelError(ENXIO, "FIFO has no reader")
                raise WouldBlock(pipe.wq)
            if acc == O_RDONLY and pipe.writers == 0 and not flags & O_NONBLOCK:
                fifo_wait = pipe.w_counter  # the first read waits for a writer instead of EOF
            pipe.open_end(acc in (O_RDONLY, O_RDWR), acc in (O_WRONLY, O_RDWR))
            ops: Any = PipeOps(pipe)
            real = inode
        else:
            real = p.dentry.sb.fs.open(p.dentry, flags)
            if ftype == S_IFCHR:
                drv = self.chrdevs.get(decode_dev(real.rdev))
                if drv is None:
                    raise KernelError(ENXIO, f"no device {decode_dev(real.rdev)}")
                ops = drv
            elif ftype == S_IFBLK:
                disk = self.blkdevs.get(decode_dev(real.rdev))
                if disk is None:
                    raise KernelError(ENXIO, f"no block device {decode_dev(real.rdev)}")
                ops = BlockDevOps(disk)
            elif ftype == S_IFDIR:
                ops = DirOps()
            elif ftype == S_IFREG:
                ops = real.sb.fs.file_ops(real) or RegularOps()
                if flags & O_TRUNC and not created:
                    real.sb.fs.truncate(real, 0)
            else:
                raise KernelError(ENXIO, "no such device or address")
        f = OpenFile(real, ops, flags & ~_OPEN_ONLY, p, caller=fs.task, fifo_wait=fifo_wait)
        real.open_count += 1
        p.mnt.get()
        return f

    def anon_inode(self, mode: int, creds: Credentials) -> Any:
        """An inode on the internal pseudo filesystem, for objects that are files without a
        path (sockets, as sockfs's sock_alloc gives; pipes use the same filesystem)."""
        return self._pipefs.new_inode(mode, creds.fsuid, creds.fsgid)

    def pipe(self, creds: Credentials, flags: int = 0) -> tuple[OpenFile, OpenFile]:
        """pipe2(2): (read end, write end); EINVAL for flags other than O_NONBLOCK|O_CLOEXEC|O_DIRECT."""
        if flags & ~(O_NONBLOCK | O_CLOEXEC | O_DIRECT):
            raise KernelError(EINVAL, f"pipe2 flags {flags:#o}")
        inode = self._pipefs.new_inode(S_IFIFO | 0o600, creds.fsuid, creds.fsgid)
        pipe = Pipe()
        inode.pipe = pipe
        ops = PipeOps(pipe)
        st = flags & O_NONBLOCK
        r = OpenFile(inode, ops, O_RDONLY | st)
        w = OpenFile(inode, ops, O_WRONLY | st)
        pipe.open_end(True, False)
        pipe.open_end(False, True)
        inode.open_count += 2
        return r, w

    # -- reading and writing ------------------------------------------------------------------------
    def read(self, f: OpenFile, size: int) -> bytes:
        if not f.readable:
            raise KernelError(EBADF, "not open for reading")
        if size < 0:
            raise KernelError(EINVAL, "negative count")
        return f.ops.read(f, size)  # type: ignore[no-any-return]

    def write(self, f: OpenFile, data: bytes) -> int:
        if not f.writable:
            raise KernelError(EBADF, "not open for writing")
        return f.ops.write(f, data)  # type: ignore[no-any-return]

    def pread(self, f: OpenFile, size: int, offset: int) -> bytes:
        if not f.seekable:
            raise KernelError(ESPIPE, "pread on a pipe")
        if offset < 0:
            raise KernelError(EINVAL, "negative offset")
        saved, f.pos = f.pos, offset
        try:
            return self.read(f, size)
        finally:
            f.pos = saved

    def pwrite(self, f: OpenFile, data: bytes, offset: int) -> int:
        if not f.seekable:
            raise KernelError(ESPIPE, "pwrite on a pipe")
        if offset < 0:
            raise KernelError(EINVAL, "negative offset")
        saved, f.pos = f.pos, offset
        try:
            return self.write(f, data)
        finally:
            f.pos = saved

    def lseek(self, f: OpenFile, offset: int, whence: int) -> int:
        if whence == SEEK_END and isinstance(f.ops, BlockDevOps):
            # A disk's end is its capacity (block/fops.c blkdev_llseek uses bdev_nr_bytes).
            return f.lseek(f.ops.seek_end() + offset, SEEK_SET)
        return f.lseek(offset, whence)

    def getdents64(self, f: OpenFile, count: int) -> bytes:
        """getdents64(2): linux_dirent64 records from the file offset (an entry index); EINVAL if the
        buffer cannot hold the next record; b"" at the end."""
        if f.path is None or not f.inode.is_dir:
            raise KernelError(ENOTDIR, "getdents64 on a non-directory")
        d = f.path.dentry
        if d.unlinked:
            return b""
        entries = [(".", d.inode.ino, 4), ("..", d.up().inode.ino, 4)]
        entries += d.sb.fs.iterate(d, f.caller)
        out = bytearray()
        idx = f.pos
        while idx < len(entries):
            name, ino, dtype = entries[idx]
            rec = dirent64(ino, idx + 1, dtype, name)
            if len(out) + len(rec) > count:
                if not out:
                    raise KernelError(EINVAL, "getdents64 buffer too small")
                break
            out += rec
            idx += 1
        f.pos = idx
        return bytes(out)

    # -- names ------------------------------------------------------------------------------------
    def _may_create(self, fs: FsContext, creds: Credentials, d: Path) -> None:
        """may_create: a live, writable, searchable directory on a writable mount."""
        if d.mnt.readonly:
            raise KernelError(EROFS, "read-only mount")
        if d.dentry.unlinked:
            raise KernelError(ENOENT, "directory was removed")
        perm.check(creds, d.dentry.inode, MAY_WRITE | MAY_EXEC, d.dentry.name)

    def _new_owner(self, creds: Credentials, dir_inode: Inode) -> tuple[int, int]:
        """inode_init_owner: the group of a setgid directory is inherited (and, for directories, its bit)."""
        if dir_inode.mode & S_ISGID:
            return dir_inode.gid, S_ISGID
        return creds.fsgid, 0

    def _name_for_create(self, w: Walker, path: str, dirfd: OpenFile | None, *, dir_ok_slash: bool) -> Parent:
        """filename_create: the parent of a name that must not exist yet."""
        par = w.resolve_parent(path, dirfd)
        if par.is_dot:
            raise KernelError(EEXIST, path)
        if w.lookup_last(par, mounts=False) is not None:
            raise KernelError(EEXIST, path)
        if par.trailing_slash and not dir_ok_slash:
            raise KernelError(ENOENT, f"{path!r}: trailing slash on a new non-directory")
        return par

    def mkdirat(self, fs: FsContext, creds: Credentials, path: str, mode: int = 0o777,
                dirfd: OpenFile | None = None) -> None:
        w = Walker(fs, creds)
        par = self._name_for_create(w, path, dirfd, dir_ok_slash=True)
        self._may_create(fs, creds, par.dir)
        if self.security_hooks:
            self.security_check(creds, "mkdir", par.dir, S_IFDIR | mode)
        gid, sgid = self._new_owner(creds, par.dir.dentry.inode)
        m = (mode & ~fs.umask & 0o1777) | sgid
        par.dir.dentry.sb.fs.mkdir(par.dir.dentry, par.last, m, creds.fsuid, gid, caller=fs.task)

    def mknodat(self, fs: FsContext, creds: Credentials, path: str, mode: int, dev: int = 0,
                dirfd: OpenFile | None = None) -> None:
        """mknodat(2): devices need CAP_MKNOD (in the initial namespace); FIFOs and files do not."""
        ftype = mode & S_IFMT or S_IFREG
        if ftype == S_IFDIR:
            raise KernelError(EPERM, "mknod cannot make directories")
        if ftype not in (S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK):
            raise KernelError(EINVAL, f"mknod type {ftype:o}")
        w = Walker(fs, creds)
        par = self._name_for_create(w, path, dirfd, dir_ok_slash=False)
        if ftype in (S_IFCHR, S_IFBLK) and not perm.capable_in(creds, None, CAP_MKNOD):
            raise KernelError(EPERM, "mknod of a device needs CAP_MKNOD")
        self._may_create(fs, creds, par.dir)
        if self.security_hooks:
            self.security_check(creds, "mknod", par.dir, ftype | mode)
        gid, _ = self._new_owner(creds, par.dir.dentry.inode)
        m = ftype | (mode & ~fs.umask & 0o7777)
        par.dir.dentry.sb.fs.create(par.dir.dentry, par.last, m, creds.fsuid, gid,
                                    dev if ftype in (S_IFCHR, S_IFBLK) else 0)

    def symlinkat(self, fs: FsContext, creds: Credentials, target: str, path: str,
                  dirfd: OpenFile | None = None) -> None:
        if not target:
            raise KernelError(ENOENT, "empty symlink target")
        w = Walker(fs, creds)
        par = self._name_for_create(w, path, dirfd, dir_ok_slash=False)
        self._may_create(fs, creds, par.dir)
        if self.security_hooks:
            self.security_check(creds, "symlink", par.dir, 0o120777)
        gid, _ = self._new_owner(creds, par.dir.dentry.inode)
        par.dir.dentry.sb.fs.symlink(par.dir.dentry, par.last, target, creds.fsuid, gid)

    def linkat(self, fs: FsContext, creds: Credentials, oldpath: str, newpath: str, flags: int = 0,
               olddirfd: OpenFile | None = None, newdirfd: OpenFile | None = None) -> None:
        if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
            raise KernelError(EINVAL, f"linkat flags {flags:#x}")
        w = Walker(fs, creds)
        old = w.resolve(oldpath, olddirfd, follow=bool(flags & AT_SYMLINK_FOLLOW),
                        empty_ok=bool(flags & AT_EMPTY_PATH))
        par = self._name_for_create(Walker(fs, creds), newpath, newdirfd, dir_ok_slash=False)
        if old.mnt is not par.dir.mnt:
            raise KernelError(EXDEV, "hard link across mounts")
        self._may_create(fs, creds, par.dir)
        if old.dentry.inode.is_dir:
            raise KernelError(EPERM, "hard link to a directory")
        if self.security_hooks:
            self.security_check(creds, "link", par.dir, old.dentry.inode.mode)
        par.dir.dentry.sb.fs.link(old.dentry, par.dir.dentry, par.last)

    def _may_delete(self, creds: Credentials, d: Path, victim: Dentry, what: str) -> None:
        perm.check(creds, d.dentry.inode, MAY_WRITE | MAY_EXEC, what)
        if not perm.may_delete_sticky(creds, d.dentry.inode, victim.inode):
            raise KernelError(EPERM, f"{what}: sticky directory")

    def unlinkat(self, fs: FsContext, creds: Credentials, path: str, flags: int = 0,
                 dirfd: OpenFile | None = None) -> None:
        """unlinkat(2); with AT_REMOVEDIR it is rmdir(2)."""
        if flags & ~AT_REMOVEDIR:
            raise KernelError(EINVAL, f"unlinkat flags {flags:#x}")
        w = Walker(fs, creds)
        par = w.resolve_parent(path, dirfd)
        if flags & AT_REMOVEDIR:
            return self._rmdir(fs, creds, w, par, path)
        if par.is_dot:
            raise KernelError(EISDIR, path)
        if par.dir.mnt.readonly:
            raise KernelError(EROFS, "read-only mount")
        victim = w.lookup_last(par, mounts=False)
        if victim is None:
            raise KernelError(ENOENT, path)
        if par.trailing_slash:
            raise KernelError(EISDIR if victim.dentry.inode.is_dir else ENOTDIR, path)
        self._may_delete(creds, par.dir, victim.dentry, path)
        if victim.dentry.inode.is_dir:
            raise KernelError(EISDIR, f"{path!r} is a directory")
        if self.security_hooks:
            self.security_check(creds, "unlink", par.dir, victim.dentry.inode.mode)
        if is_mountpoint_in(fs.ns, victim.dentry):
            raise KernelError(EBUSY, f"{path!r} is a mount point")
        inode = victim.dentry.inode
        par.dir.dentry.sb.fs.unlink(par.dir.dentry, victim.dentry)
        self._maybe_evict(inode)

    def _rmdir(self, fs: FsContext, creds: Credentials, w: Walker, par: Parent, path: str) -> None:
        if par.last == ".":
            raise KernelError(EINVAL, "rmdir of .")
        if par.last == "..":
            raise KernelError(ENOTEMPTY, "rmdir of ..")
        if par.last == "":
            raise KernelError(EBUSY, "rmdir of /")
        if par.dir.mnt.readonly:
            raise KernelError(EROFS, "read-only mount")
        victim = w.lookup_last(par, mounts=False)
        if victim is None:
            raise KernelError(ENOENT, path)
        self._may_delete(creds, par.dir, victim.dentry, path)
        d = victim.dentry
        if not d.inode.is_dir:
            raise KernelError(ENOTDIR, f"{path!r} is not a directory")
        if is_mountpoint_in(fs.ns, d):
            raise KernelError(EBUSY, f"{path!r} is a mount point")
        if not d.sb.fs.is_empty_dir(d):
            raise KernelError(ENOTEMPTY, path)
        if self.security_hooks:
            self.security_check(creds, "rmdir", par.dir, d.inode.mode)
        par.dir.dentry.sb.fs.rmdir(par.dir.dentry, d, caller=fs.task)

    def _maybe_evict(self, inode: Inode) -> None:
        if inode.nlink <= 0 and inode.open_count <= 0:
            inode.sb.fs.evict(inode)

    def renameat2(self, fs: FsContext, creds: Credentials, oldpath: str, newpath: str, flags: int = 0,
                  olddirfd: OpenFile | None = None, newdirfd: OpenFile | None = None) -> None:
        """renameat2(2) with RENAME_NOREPLACE and RENAME_EXCHANGE."""
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT):
            raise KernelError(EINVAL, f"renameat2 flags {flags:#x}")
        if flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT):
            raise KernelError(EINVAL, "RENAME_EXCHANGE with another flag")
        if flags & RENAME_WHITEOUT:
            raise KernelError(EINVAL, "RENAME_WHITEOUT is not supported")
        w = Walker(fs, creds)
        op = w.resolve_parent(oldpath, olddirfd)
        np = w.resolve_parent(newpath, newdirfd)
        if op.dir.mnt is not np.dir.mnt:
            raise KernelError(EXDEV, "rename across mounts")
        if op.is_dot:
            raise KernelError(EBUSY, oldpath)
        if np.is_dot:
            raise KernelError(EEXIST if flags & RENAME_NOREPLACE else EBUSY, newpath)
        if op.dir.mnt.readonly:
            raise KernelError(EROFS, "read-only mount")
        old = w.lookup_last(op, mounts=False)
        if old is None:
            raise KernelError(ENOENT, oldpath)
        new = w.lookup_last(np, mounts=False)
        od, nd = op.dir.dentry, np.dir.dentry
        is_dir = old.dentry.inode.is_dir
        if flags & RENAME_EXCHANGE:
            if new is None:
                raise KernelError(ENOENT, newpath)
            if (op.trailing_slash and not is_dir) or (np.trailing_slash and not new.dentry.inode.is_dir):
                raise KernelError(ENOTDIR, "trailing slash on a non-directory")
        else:
            if flags & RENAME_NOREPLACE and new is not None:
                raise KernelError(EEXIST, newpath)
            if (op.trailing_slash or np.trailing_slash) and not is_dir:
                raise KernelError(ENOTDIR, "trailing slash on a non-directory")
        # lock_rename's trap: the source may not be an ancestor of the target, nor the target of the source.
        if old.dentry.is_ancestor_of(nd):
            raise KernelError(EINVAL, "cannot move a directory into itself")
        if new is not None and new.dentry.is_ancestor_of(od):
            raise KernelError(EINVAL if flags & RENAME_EXCHANGE else ENOTEMPTY, newpath)
        if new is not None and new.dentry.inode is old.dentry.inode:
            return  # rename(2): both names are links to the same file -- nothing to do
        self._may_delete(creds, op.dir, old.dentry, oldpath)
        if new is not None:
            self._may_delete(creds, np.dir, new.dentry, newpath)
        else:
            perm.check(creds, nd.inode, MAY_WRITE | MAY_EXEC, newpath)
        if new is not None and not flags & RENAME_EXCHANGE:
            if is_dir and not new.dentry.inode.is_dir:
                raise KernelError(ENOTDIR, newpath)
            if not is_dir and new.dentry.inode.is_dir:
                raise KernelError(EISDIR, newpath)
        # vfs_rename: a directory changing parent rewrites its "..", so needs write permission on itself.
        if od is not nd:
            for d in (old, new if flags & RENAME_EXCHANGE else None):
                if d is not None and d.dentry.inode.is_dir:
                    perm.check(creds, d.dentry.inode, MAY_WRITE, "rename of a directory to a new parent")
        for d in (old, new):
            if d is not None and is_mountpoint_in(fs.ns, d.dentry):
                raise KernelError(EBUSY, "rename of a mount point")
        if new is not None and new.dentry.inode.is_dir and not flags & RENAME_EXCHANGE:
            if not new.dentry.sb.fs.is_empty_dir(new.dentry):
                raise KernelError(ENOTEMPTY, newpath)
        if self.security_hooks:
            # security_path_rename: the source leaves its directory, arrives in the target's (and
            # with RENAME_EXCHANGE the target goes the other way); a replaced file is removed.
            self.security_check(creds, "rename_from", op.dir, old.dentry.inode.mode)
            self.security_check(creds, "rename_to", np.dir, old.dentry.inode.mode)
            if new is not None:
                self.security_check(creds, "rename_from", np.dir, new.dentry.inode.mode)
                if flags & RENAME_EXCHANGE:
                    self.security_check(creds, "rename_to", op.dir, new.dentry.inode.mode)
        replaced = new.dentry.inode if new is not None and not flags & RENAME_EXCHANGE else None
        od.sb.fs.rename(od, old.dentry, nd, np.last, flags & RENAME_EXCHANGE)
        if replaced is not None:
            self._maybe_evict(replaced)

    def readlinkat(self, fs: FsContext, creds: Credentials, path: str, dirfd: OpenFile | None = None) -> str:
        """readlinkat(2): the target; EINVAL if not a symlink. The caller truncates to its buffer."""
        p = Walker(fs, creds).resolve(path, dirfd, follow=False, empty_ok=dirfd is not None)
        inode = p.dentry.inode
        if not inode.is_symlink:
            raise KernelError(EINVAL, f"{path!r} is not a symlink")
        return p.dentry.sb.fs.readlink(inode, fs.task)

    # -- attributes -----------------------------------------------------------------------------------
    def stat(self, fs: FsContext, creds: Credentials, path: str, flags: int = 0,
             dirfd: OpenFile | None = None) -> Stat:
        """newfstatat(2) (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH)."""
        if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            raise KernelError(EINVAL, f"fstatat flags {flags:#x}")
        if not path and flags & AT_EMPTY_PATH and dirfd is not None:
            return self.fstat(dirfd)
        p = Walker(fs, creds).resolve(path, dirfd, follow=not flags & AT_SYMLINK_NOFOLLOW,
                                      empty_ok=bool(flags & AT_EMPTY_PATH))
        return stat_inode(p.dentry.inode, p.dentry.sb)

    def fstat(self, f: OpenFile) -> Stat:
        st = stat_inode(f.inode, f.path.dentry.sb if f.path is not None else None)
        if isinstance(f.ops, BlockDevOps):
            # Deliberate difference: Linux reports st_size 0 for a device node (BLKGETSIZE64
            # gives the size); an open disk here reports its capacity in bytes.
            st = attrs.evolve(st, st_size=f.ops.seek_end())
        return st

    def faccessat(self, fs: FsContext, creds: Credentials, path: str, mode: int, flags: int = 0,
                  dirfd: OpenFile | None = None) -> None:
        """faccessat(2): checked with the real uid/gid unless AT_EACCESS; a real uid other than 0
        has no capabilities for the check, root keeps its permitted set (do_faccessat)."""
        if mode & ~7:
            raise KernelError(EINVAL, f"access mode {mode:#o}")
        if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            raise KernelError(EINVAL, f"faccessat flags {flags:#x}")
        c = creds
        if not flags & AT_EACCESS:
            c = creds.copy()
            c.fsuid, c.fsgid = creds.uid, creds.gid
            c.cap_effective = creds.cap_permitted if creds.uid == 0 else 0
        p = Walker(fs, c).resolve(path, dirfd, follow=not flags & AT_SYMLINK_NOFOLLOW,
                                  empty_ok=bool(flags & AT_EMPTY_PATH))
        if mode == F_OK:
            return
        inode = p.dentry.inode
        if mode & W_OK and inode.ftype in (S_IFREG, S_IFDIR) and p.mnt.readonly:
            raise KernelError(EROFS, "read-only mount")
        perm.check(c, inode, mode, path)

    def _setattr_target(self, fs: FsContext, creds: Credentials, path: str, flags: int,
                        dirfd: OpenFile | None) -> Path:
        p = Walker(fs, creds).resolve(path, dirfd, follow=not flags & AT_SYMLINK_NOFOLLOW,
                                      empty_ok=bool(flags & AT_EMPTY_PATH))
        if p.mnt.readonly:
            raise KernelError(EROFS, "read-only mount")
        return p

    def fchmodat(self, fs: FsContext, creds: Credentials, path: str, mode: int, flags: int = 0,
                 dirfd: OpenFile | None = None) -> None:
        if flags & AT_SYMLINK_NOFOLLOW:
            raise KernelError(EOPNOTSUPP, "symlinks have no mode")
        self._chmod(creds, self._setattr_target(fs, creds, path, flags, dirfd), mode)

    def fchmod(self, creds: Credentials, f: OpenFile, mode: int) -> None:
        if f.path is None:
            raise KernelError(EBADF, "not a file with a path")
        if f.path.mnt.readonly:
            raise KernelError(EROFS, "read-only mount")
        self._chmod(creds, f.path, mode)

    def _chmod(self, creds: Credentials, p: Path, mode: int) -> None:
        new = perm.chmod_mode(creds, p.dentry.inode, mode)
        p.dentry.sb.fs.setattr(p.dentry, mode=new)

    def fchownat(self, fs: FsContext, creds: Credentials, path: str, uid: int, gid: int, flags: int = 0,
                 dirfd: OpenFile | None = None) -> None:
        """fchownat(2); -1 leaves an id unchanged."""
        if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
            raise KernelError(EINVAL, f"fchownat flags {flags:#x}")
        self._chown(creds, self._setattr_target(fs, creds, path, flags, dirfd), uid, gid)

    def fchown(self, creds: Credentials, f: OpenFile, uid: int, gid: int) -> None:
        if f.path is None:
            raise KernelError(EBADF, "not a file with a path")
        if f.path.mnt.readonly:
            raise KernelError(EROFS, "read-only mount")
        self._chown(creds, f.path, uid, gid)

    def _chown(self, creds: Credentials, p: Path, uid: int, gid: int) -> None:
        u = None if uid == -1 else uid
        g = None if gid == -1 else gid
        inode = p.dentry.inode
        perm.chown_allowed(creds, inode, u, g)
        mode = perm.chown_clears(inode) if (u is not None or g is not None) and not inode.is_dir else None
        p.dentry.sb.fs.setattr(p.dentry, uid=u, gid=g, mode=mode)

    def utimensat(self, fs: FsContext, creds: Credentials, path: str, atime: int | None = None,
                  mtime: int | None = None, *, now: bool = False, flags: int = 0,
                  dirfd: OpenFile | None = None) -> None:
        """utimensat(2): explicit times (ns) need ownership or CAP_FOWNER; ``now`` needs write access."""
        p = self._setattr_target(fs, creds, path, flags, dirfd)
        inode = p.dentry.inode
        if now:
            if not perm.is_owner_or_cap(creds, inode) and not perm.permission(creds, inode, MAY_WRITE):
                raise KernelError(EACCES, "utimensat: no write access")
            t = inode.sb.clock()
            atime = mtime = t
        elif not perm.is_owner_or_cap(creds, inode):
            raise KernelError(EPERM, "utimensat: not the owner")
        p.dentry.sb.fs.setattr(p.dentry, atime=atime, mtime=mtime)

    def truncate(self, fs: FsContext, creds: Credentials, path: str, length: int) -> None:
        if length < 0:
            raise KernelError(EINVAL, "negative length")
        p = Walker(fs, creds).resolve(path)
        inode = p.dentry.inode
        if inode.is_dir:
            raise KernelError(EISDIR, path)
        if not inode.is_reg:
            raise KernelError(EINVAL, f"{path!r} is not a regular file")
        if p.mnt.readonly:
            raise KernelError(EROFS, "read-only mount")
        perm.check(creds, inode, MAY_WRITE, path)
        if self.security_hooks:
            self.security_check(creds, "truncate", p, 0)  # security_path_truncate
        real = p.dentry.sb.fs.prepare_write(p.dentry)
        real.sb.fs.truncate(real, length)

    def ftruncate(self, f: OpenFile, length: int) -> None:
        if length < 0:
            raise KernelError(EINVAL, "negative length")
        if not f.inode.is_reg or not f.writable:
            raise KernelError(EINVAL, "ftruncate needs a regular file open for writing")
        f.inode.sb.fs.truncate(f.inode, length)

    def setxattr(self, fs: FsContext, creds: Credentials, path: str, name: str, value: bytes) -> None:
        """setxattr(2) for "user." and (with CAP_SYS_ADMIN) "trusted." names (xattr(7))."""
        p = self._setattr_target(fs, creds, path, 0, None)
        if not perm.is_owner_or_cap(creds, p.dentry.inode):
            raise KernelError(EPERM, "setxattr: not the owner")
        p.dentry.sb.fs.setxattr(p.dentry, name, value)

    def getxattr(self, fs: FsContext, creds: Credentials, path: str, name: str) -> bytes:
        p = Walker(fs, creds).resolve(path)
        return p.dentry.sb.fs.getxattr(p.dentry, name)

    # -- working directory and root -------------------------------------------------------------------
    def chdir(self, fs: FsContext, creds: Credentials, path: str) -> None:
        p = Walker(fs, creds).resolve(path)
        self._check_dir(creds, p)
        fs.set_cwd(p)

    def fchdir(self, fs: FsContext, creds: Credentials, f: OpenFile) -> None:
        if f.path is None:
            raise KernelError(ENOTDIR, "not a directory")
        self._check_dir(creds, f.path)
        fs.set_cwd(f.path)

    def _check_dir(self, creds: Credentials, p: Path) -> None:
        if not p.dentry.inode.is_dir:
            raise KernelError(ENOTDIR, p.dentry.name)
        perm.check(creds, p.dentry.inode, MAY_EXEC, p.dentry.name)

    def chroot(self, fs: FsContext, creds: Credentials, path: str) -> None:
        """chroot(2): needs CAP_SYS_CHROOT in the caller's user namespace; the cwd is not changed."""
        p = Walker(fs, creds).resolve(path)
        self._check_dir(creds, p)
        if not perm.capable_in(creds, creds.user_ns, CAP_SYS_CHROOT):
            raise KernelError(EPERM, "chroot needs CAP_SYS_CHROOT")
        fs.set_root(p)

    def getcwd(self, fs: FsContext) -> str:
        """getcwd(2): the cwd as seen from the root; "(unreachable)" prefixed when the cwd lies
        outside the root (as Linux since 2.6.36); ENOENT when the cwd was removed."""
        cwd = fs.cwd
        if cwd.dentry.unlinked:
            raise KernelError(ENOENT, "current directory was removed")
        text, ok = d_path(cwd.mnt, cwd.dentry, fs.root.mnt, fs.root.dentry)
        return text if ok else "(unreachable)" + text

    # -- mounts -------------------------------------------------------------------------------------
    def mount(self, fs: FsContext, creds: Credentials, source: str | None, target: str, fstype: str | None,
              flags: int = 0, data: str | None = None) -> None:
        """mount(2): new filesystems, MS_BIND(|MS_REC), MS_MOVE, MS_REMOUNT(|MS_BIND), and
        MS_SHARED/PRIVATE/SLAVE/UNBINDABLE(|MS_REC)."""
        mountops.do_mount(self, fs, creds, source, target, fstype, flags, data)

    def umount2(self, fs: FsContext, creds: Credentials, target: str, flags: int = 0) -> None:
        mountops.do_umount(self, fs, creds, target, flags)

    def pivot_root(self, fs: FsContext, creds: Credentials, new_root: str, put_old: str,
                   others: Iterable[FsContext] = ()) -> None:
        """pivot_root(2). ``others``: every other context the kernel knows; those whose root or cwd
        was the old root move to the new one (chroot_fs_refs)."""
        mountops.do_pivot_root(self, fs, creds, new_root, put_old, others)

    def mounts_text(self, fs: FsContext) -> str:
        """/proc/self/mounts for a process with this context."""
        if fs.ns is None:
            return ""
        return render_mounts(fs.ns, fs.root.mnt, fs.root.dentry)
