"""A Linux-like virtual filesystem: inodes and dentries, tmpfs, overlayfs, synthetic filesystems
(procfs/cgroupfs pattern), /dev, mounts with namespaces and propagation, path resolution, open
files, descriptor tables and pipes. See docs/kernel-vfs.md for the map to Linux.

The system-call layer talks to :class:`Vfs` with a process's :class:`FsContext` and credentials.
"""

from virtlevels.kernel.vfs.file import FdTable, OpenFile
from virtlevels.kernel.vfs.fscontext import FsContext
from virtlevels.kernel.vfs.inode import Dentry, FileSystem, Inode, SuperBlock
from virtlevels.kernel.vfs.mount import Mount, MountNamespace, Path, render_mountinfo, render_mounts
from virtlevels.kernel.vfs.ops import Vfs
from virtlevels.kernel.vfs.pipe import BrokenPipe, Pipe
from virtlevels.kernel.vfs.stat import Stat, pack_stat, pack_stat64
from virtlevels.kernel.vfs.synthetic import SynDir, SynFile, SynSymlink, SyntheticFS

__all__ = [
    "BrokenPipe", "Dentry", "FdTable", "FileSystem", "FsContext", "Inode", "Mount", "MountNamespace",
    "OpenFile", "Path", "Pipe", "Stat", "SuperBlock", "SynDir", "SynFile", "SynSymlink", "SyntheticFS",
    "Vfs", "pack_stat", "pack_stat64", "render_mountinfo", "render_mounts",
]  # fmt: skip
