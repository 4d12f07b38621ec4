"""A process's filesystem context: root, working directory, umask (include/linux/fs_struct.h).

``clone`` without CLONE_FS gives the child a copy; with it, parent and child share one object.
Root and cwd pin their mounts (an unmount of a mount someone stands in is EBUSY).
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.kernel.vfs.mount import Mount, MountNamespace, Path


@attrs.define(eq=False)
class FsContext:
    root: Path
    cwd: Path
    #: The mount namespace the owner lives in (mount(2) and friends act on it). Linux keeps it in
    #: nsproxy; unshare(CLONE_NEWNS) is refused while fs_struct is shared, so keeping it here is exact.
    ns: MountNamespace | None = None
    umask: int = 0o022
    #: The task on whose behalf lookups happen: what synthetic files (/proc/self...) are relative to.
    task: Any = None
    released: bool = False

    def __attrs_post_init__(self) -> None:
        self.root.mnt.get()
        self.cwd.mnt.get()

    def set_root(self, path: Path) -> None:
        path.mnt.get()
        self.root.mnt.put()
        self.root = path

    def set_cwd(self, path: Path) -> None:
        path.mnt.get()
        self.cwd.mnt.put()
        self.cwd = path

    def copy(self) -> FsContext:
        """copy_fs_struct (fork/clone without CLONE_FS)."""
        return FsContext(self.root, self.cwd, self.ns, self.umask, self.task)

    def translate(self, mapping: dict[Mount, Mount], ns: MountNamespace) -> None:
        """After CLONE_NEWNS: point root and cwd at the copies of their mounts (copy_mnt_ns)."""
        root, cwd = self.root, self.cwd
        if root.mnt in mapping:
            self.set_root(Path(mapping[root.mnt], root.dentry))
        if cwd.mnt in mapping:
            self.set_cwd(Path(mapping[cwd.mnt], cwd.dentry))
        self.ns = ns

    def release(self) -> None:
        """The last user of this context exited (free_fs_struct)."""
        if not self.released:
            self.released = True
            self.root.mnt.put()
            self.cwd.mnt.put()
