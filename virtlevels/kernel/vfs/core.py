"""State one kernel's VFS shares: the clock, id counters, and its place in the resource graph.

Superblocks and mounts become graph nodes ("filesystem", "mount") when they come into being and
leave it when they go, so a failed mount leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.kernel.vfs.inode import Clock, FileSystem, SuperBlock, UserNs

if TYPE_CHECKING:
    from virtlevels.kernel.vfs.mount import Mount


def _zero_clock() -> int:
    return 0


@attrs.define(eq=False)
class VfsCore:
    clock: Clock = _zero_clock
    graph: Any = None
    #: Graph ids are "<prefix>/fs:<minor>" and "<prefix>/mount:<id>" (e.g. prefix "kernel:0/vfs").
    prefix: str = "vfs"
    #: A graph node every filesystem runs on (the kernel's node), if any.
    owner_node: str | None = None
    next_minor: int = 1
    next_mnt_id: int = 1
    next_group_id: int = 1

    def new_group_id(self) -> int:
        gid = self.next_group_id
        self.next_group_id += 1
        return gid

    def new_mnt_id(self) -> int:
        mid = self.next_mnt_id
        self.next_mnt_id += 1
        return mid

    def new_sb(self, fs: FileSystem, fstype: str, *, source: str = "none",
               user_ns: UserNs = None) -> SuperBlock:
        """A superblock with a fresh anonymous device number (major 0, as get_anon_bdev gives).
        It joins the graph on its first mount (see :meth:`register_sb`)."""
        sb = SuperBlock(fs, fstype, self.next_minor, self.clock, source, user_ns)
        self.next_minor += 1
        return sb

    # -- resource graph --------------------------------------------------------------------------
    def register_sb(self, sb: SuperBlock, layers: tuple[SuperBlock, ...] = ()) -> None:
        """Put ``sb`` in the graph (once) and arrange for it to leave when its last user goes."""
        if sb.graph_id is not None or self.graph is None:
            if sb.on_release is None:
                sb.on_release = lambda: self._release_sb(sb, layers)
            return
        gid = f"{self.prefix}/fs:{sb.minor}"
        self.graph.add(gid, "filesystem", fstype=sb.fstype, source=sb.source, dev=f"0:{sb.minor}")
        sb.graph_id = gid
        if self.owner_node is not None and self.owner_node in self.graph:
            self.graph.link(gid, self.owner_node, "runs_on")
        for layer in layers:
            if layer.graph_id is not None:
                self.graph.link(gid, layer.graph_id, "runs_on")
        sb.on_release = lambda: self._release_sb(sb, layers)

    def _release_sb(self, sb: SuperBlock, layers: tuple[SuperBlock, ...]) -> None:
        sb.fs.release(sb)
        if sb.graph_id is not None and self.graph is not None and sb.graph_id in self.graph:
            self.graph.remove(sb.graph_id)
        sb.graph_id = None
        for layer in layers:
            layer.put()

    def register_mount(self, m: Mount) -> None:
        if self.graph is None:
            return
        gid = f"{self.prefix}/mount:{m.mnt_id}"
        self.graph.add(gid, "mount", mnt_id=m.mnt_id, fstype=m.sb.fstype, source=m.sb.source)
        m.graph_id = gid
        if m.sb.graph_id is not None:
            self.graph.link(gid, m.sb.graph_id, "runs_on")

    def link_mount(self, m: Mount) -> None:
        """(Re)draw the mount's edges to its parent mount and namespace after attach/detach."""
        if self.graph is None or m.graph_id is None:
            return
        g = self.graph
        for _a, b, data in list(g.g.out_edges(m.graph_id, data=True)):
            if data["kind"] in ("attached_to", "part_of"):
                g.unlink(m.graph_id, b, data["kind"])
        if m.parent is not None and m.parent.graph_id is not None:
            g.link(m.graph_id, m.parent.graph_id, "attached_to")
        ns_id = m.ns.graph_id if m.ns is not None else None
        if ns_id is not None and ns_id in g:
            g.link(m.graph_id, ns_id, "part_of")

    def unregister_mount(self, m: Mount) -> None:
        if self.graph is not None and m.graph_id is not None and m.graph_id in self.graph:
            self.graph.remove(m.graph_id)
        m.graph_id = None


CoreFactory = Callable[[], VfsCore]
