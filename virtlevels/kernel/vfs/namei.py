"""Path resolution (fs/namei.c; path_resolution(7)).

Absolute paths start at the process root, relative ones at the cwd or a dirfd's directory.
Every directory walked through needs search (execute) permission; ``..`` never climbs above the
process root and crosses mount points upward; a name that is a mount point leads into the
mount on top. Symlinks in the middle are always followed, the last one unless told not to,
with at most 40 followed in one resolution (ELOOP). A trailing slash demands a directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.kernel.creds import Credentials
from virtlevels.kernel.errno import EACCES, ELOOP, ENAMETOOLONG, ENOENT, ENOTDIR, KernelError
from virtlevels.kernel.vfs import perm
from virtlevels.kernel.vfs.constants import MAXSYMLINKS, MAY_EXEC, MS_NOSYMFOLLOW, NAME_MAX, PATH_MAX
from virtlevels.kernel.vfs.mount import Path

if TYPE_CHECKING:
    from virtlevels.kernel.vfs.file import OpenFile
    from virtlevels.kernel.vfs.fscontext import FsContext


def follow_mounts(p: Path) -> Path:
    """Step into whatever is mounted on ``p`` (and on top of that), as lookup does."""
    mnt, d = p.mnt, p.dentry
    children = mnt.children
    if d not in children:
        return p
    while d in children:
        mnt = children[d]
        d = mnt.root
        children = mnt.children
    return Path(mnt, d)


@attrs.define
class Parent:
    """The result of resolving all but the last component (for create, unlink, rename...)."""

    dir: Path
    #: The last component: "" when the path names the root ("/"), or "." / "..".
    last: str
    trailing_slash: bool

    @property
    def is_dot(self) -> bool:
        return self.last in ("", ".", "..")


@attrs.define(eq=False)
class Walker:
    fs: FsContext
    creds: Credentials
    links: int = 0

    @property
    def caller(self) -> Any:
        return self.fs.task

    def start(self, path: str, dirfd: OpenFile | None) -> Path:
        if not path:
            raise KernelError(ENOENT, "empty path")
        if len(path.encode()) >= PATH_MAX:
            raise KernelError(ENAMETOOLONG, "path longer than PATH_MAX")
        if path.startswith("/"):
            return self.fs.root
        if dirfd is None:
            return self.fs.cwd
        if dirfd.path is None or not dirfd.inode.is_dir:
            raise KernelError(ENOTDIR, "dirfd is not a directory")
        return dirfd.path

    def step(self, cur: Path, name: str) -> Path:
        """One component from directory ``cur`` (walk_component); symlinks are not followed here."""
        inode = cur.dentry.inode
        if not inode.is_dir:
            raise KernelError(ENOTDIR, f"{cur.dentry.name!r} is not a directory")
        if not perm.permission(self.creds, inode, MAY_EXEC):
            raise KernelError(EACCES, f"search permission denied on {cur.dentry.name!r}")
        if name == ".":
            return cur
        if name == "..":
            return self.dotdot(cur)
        if len(name.encode()) > NAME_MAX:
            raise KernelError(ENAMETOOLONG, f"component longer than NAME_MAX: {name[:20]}...")
        child = cur.dentry.sb.fs.lookup(cur.dentry, name, self.caller)
        if child is None:
            raise KernelError(ENOENT, name)
        return follow_mounts(Path(cur.mnt, child))

    def dotdot(self, cur: Path) -> Path:
        """follow_dotdot: stop at the process root; at a mount's root, continue from its mountpoint."""
        root = self.fs.root
        mnt, d = cur.mnt, cur.dentry
        while True:
            if mnt is root.mnt and d is root.dentry:
                return root
            if d is mnt.root:
                if mnt.parent is None or mnt.mountpoint is None:
                    return Path(mnt, d)  # the namespace root: ".." is itself
                d, mnt = mnt.mountpoint, mnt.parent
                continue
            return follow_mounts(Path(mnt, d.up()))

    def follow(self, link: Path, parent: Path) -> Path:
        """Resolve a symlink's target from the directory holding it."""
        self.links += 1
        if self.links > MAXSYMLINKS:
            raise KernelError(ELOOP, "too many levels of symbolic links")
        if link.mnt.flags & MS_NOSYMFOLLOW:
            raise KernelError(ELOOP, "symlink on a nosymfollow mount")
        magic = getattr(link.dentry.inode.private, "magic", None)
        if magic is not None:
            # proc(5) magic links jump straight to their object, whatever the text says.
            obj = magic(self.caller)
            if isinstance(obj, Path):
                return obj
            return Path(link.mnt, link.dentry.sb.fs.magic_file(link.dentry, obj))  # type: ignore[attr-defined]
        target = link.dentry.sb.fs.readlink(link.dentry.inode, self.caller)
        if not target:
            raise KernelError(ENOENT, "empty symlink")
        start = self.fs.root if target.startswith("/") else parent
        return self.walk(start, target, follow_last=True)

    def walk(self, start: Path, path: str, *, follow_last: bool) -> Path:
        names = [c for c in path.split("/") if c]
        trailing = path.endswith("/")
        cur = start
        last_i = len(names) - 1
        for i, name in enumerate(names):
            nxt = self.step(cur, name)
            if nxt.dentry.inode.is_symlink and (i < last_i or follow_last or trailing):
                nxt = self.follow(nxt, cur)
            cur = nxt
        if trailing and not cur.dentry.inode.is_dir:
            raise KernelError(ENOTDIR, f"{path!r}: trailing slash on a non-directory")
        return cur

    def resolve(self, path: str, dirfd: OpenFile | None = None, *, follow: bool = True,
                empty_ok: bool = False) -> Path:
        """The (mount, dentry) a path names. ``empty_ok`` (AT_EMPTY_PATH): "" means the dirfd itself."""
        if not path and empty_ok:
            if dirfd is None:
                return self.fs.cwd
            if dirfd.path is None:
                raise KernelError(ENOENT, "dirfd has no path")
            return dirfd.path
        start = self.start(path, dirfd)
        return self.walk(start, path, follow_last=follow)

    def resolve_parent(self, path: str, dirfd: OpenFile | None = None) -> Parent:
        """Resolve all but the last component (the parent must be a directory)."""
        return self.parent_from(self.start(path, dirfd), path)

    def parent_from(self, start: Path, path: str) -> Parent:
        if not path:
            raise KernelError(ENOENT, "empty path")
        if path.startswith("/"):
            start = self.fs.root
        stripped = path.rstrip("/")
        trailing = len(stripped) != len(path)
        if not stripped:
            return Parent(self.fs.root, "", trailing)
        head, sep, last = stripped.rpartition("/")
        if len(last.encode()) > NAME_MAX:
            raise KernelError(ENAMETOOLONG, "last component longer than NAME_MAX")
        if sep and not head:
            head = "/"
        d = self.walk(start, head, follow_last=True) if head else start
        if not d.dentry.inode.is_dir:
            raise KernelError(ENOTDIR, f"{head!r} is not a directory")
        return Parent(d, last, trailing)

    def lookup_last(self, parent: Parent, *, mounts: bool = True) -> Path | None:
        """The last component under its parent, not following a final symlink; None if absent.
        ``mounts=False`` gives the dentry in the parent's mount even if something is mounted on it
        (what unlink, rmdir and rename act on)."""
        d = parent.dir
        if parent.last in ("", ".", ".."):
            return self.step(d, parent.last or ".")
        inode = d.dentry.inode
        if not inode.is_dir:
            raise KernelError(ENOTDIR, f"{d.dentry.name!r} is not a directory")
        if not perm.permission(self.creds, inode, MAY_EXEC):
            raise KernelError(EACCES, f"search permission denied on {d.dentry.name!r}")
        child = d.dentry.sb.fs.lookup(d.dentry, parent.last, self.caller)
        if child is None:
            return None
        p = Path(d.mnt, child)
        return follow_mounts(p) if mounts else p
