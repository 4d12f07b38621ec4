"""Mounts, mount namespaces and mount propagation (fs/namespace.c, fs/pnode.c; mount_namespaces(7),
Documentation/filesystems/sharedsubtree.rst).

A :class:`Mount` shows a superblock's subtree (from ``root``) at a ``mountpoint`` dentry of its
``parent`` mount. Each :class:`MountNamespace` owns its own copies of mounts; a
:class:`PeerGroup` ties shared mounts together so a mount or unmount under one happens under
every peer, and a slave receives from its ``master`` without sending back.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from virtlevels.kernel.errno import EINVAL, KernelError
from virtlevels.kernel.vfs.constants import (
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_RDONLY,
    MS_RELATIME,
)
from virtlevels.kernel.vfs.core import VfsCore
from virtlevels.kernel.vfs.inode import Dentry, SuperBlock, UserNs


@attrs.frozen(repr=False)
class Path:
    """A (mount, dentry) pair: where a name resolves to (struct path)."""

    mnt: Mount
    dentry: Dentry

    @property
    def inode(self):  # noqa: ANN201 - Inode; kept short for the hot resolution path
        return self.dentry.inode

    def __repr__(self) -> str:
        return f"<Path mnt={self.mnt.mnt_id} {self.dentry.name!r}>"


@attrs.define(eq=False)
class PeerGroup:
    """Mounts that propagate mount events to each other (sharedsubtree.rst, "shared mount")."""

    id: int
    members: list[Mount] = attrs.field(factory=list)


@attrs.define(eq=False, repr=False)
class Mount:
    core: VfsCore
    sb: SuperBlock
    root: Dentry
    mnt_id: int
    #: MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | atime flags, per mount.
    flags: int = MS_RELATIME
    parent: Mount | None = None
    mountpoint: Dentry | None = None
    #: Mounts on dentries of this mount, by mountpoint (one per dentry; stacking goes on top).
    children: dict[Dentry, Mount] = attrs.field(factory=dict)
    ns: MountNamespace | None = None
    group: PeerGroup | None = None
    master: Mount | None = None
    slaves: list[Mount] = attrs.field(factory=list)
    unbindable: bool = False
    #: MNT_LOCKED: copied into a less privileged namespace; cannot be unmounted to reveal what
    #: is below, and its ro/nosuid/nodev/noexec flags cannot be cleared (mount_namespaces(7)).
    locked: bool = False
    locked_flags: int = 0
    #: References from open files and process roots/cwds (umount of a used mount is EBUSY).
    users: int = 0
    detached: bool = False
    sb_released: bool = False
    graph_id: str | None = None

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MS_RDONLY) or self.sb.ro

    @property
    def shared(self) -> bool:
        return self.group is not None

    def get(self) -> None:
        self.users += 1

    def put(self) -> None:
        self.users -= 1
        if self.users == 0 and self.detached:
            self._release()

    def _release(self) -> None:
        if not self.sb_released:
            self.sb_released = True
            self.sb.put()

    def subtree(self) -> Iterator[Mount]:
        """This mount and every mount below it, parents before children."""
        stack = [self]
        while stack:
            m = stack.pop()
            yield m
            stack.extend(reversed(list(m.children.values())))

    def __repr__(self) -> str:
        return f"<Mount {self.mnt_id} {self.sb.fstype}>"


def new_mount(core: VfsCore, sb: SuperBlock, root: Dentry | None = None, flags: int = MS_RELATIME,
              layers: tuple[SuperBlock, ...] = ()) -> Mount:
    """A detached mount of ``sb`` (vfs_create_mount); it joins the graph at once."""
    core.register_sb(sb, layers)
    sb.get()
    m = Mount(core, sb, root if root is not None else sb.root, core.new_mnt_id(), flags)
    core.register_mount(m)
    return m


def clone_mount(src: Mount, root: Dentry) -> Mount:
    """A copy of ``src`` showing ``root`` (clone_mnt); propagation is set by the caller."""
    m = new_mount(src.core, src.sb, root, src.flags)
    return m


@attrs.define(eq=False, repr=False)
class MountNamespace:
    """One mount tree (mount_namespaces(7)). ``mounts`` is in /proc/mounts order."""

    core: VfsCore
    root: Mount
    user_ns: UserNs = None
    mounts: list[Mount] = attrs.field(factory=list)
    graph_id: str | None = None

    def __attrs_post_init__(self) -> None:
        if not self.mounts:
            for m in self.root.subtree():
                m.ns = self
                self.mounts.append(m)
                self.core.link_mount(m)

    def set_graph_id(self, node_id: str | None) -> None:
        """Tell the namespace its graph node (made by the namespace code) and link its mounts."""
        self.graph_id = node_id
        for m in self.mounts:
            self.core.link_mount(m)

    def clone(self, *, less_privileged: bool = False, user_ns: UserNs = None
              ) -> tuple[MountNamespace, dict[Mount, Mount]]:
        """copy_mnt_ns for CLONE_NEWNS: every mount copied; shared copies are peers of their
        originals, slaves stay slaves of the same master. A namespace owned by a less privileged
        user namespace gets shared mounts as slaves, and its mounts locked (mount_namespaces(7))."""
        mapping: dict[Mount, Mount] = {}
        for o in self.root.subtree():
            c = clone_mount(o, o.root)
            mapping[o] = c
            c.unbindable = o.unbindable
            c.locked, c.locked_flags = o.locked, o.locked_flags
            if o.group is not None:
                if less_privileged:
                    _set_master(c, o)
                else:
                    o.group.members.append(c)
                    c.group = o.group
            elif o.master is not None:
                _set_master(c, o.master)
            if less_privileged and o is not self.root:
                c.locked = True
                c.locked_flags = o.flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
            if o.parent is not None and o is not self.root:
                p = mapping[o.parent]
                assert o.mountpoint is not None
                c.parent, c.mountpoint = p, o.mountpoint
                p.children[o.mountpoint] = c
                o.mountpoint.mount_count += 1
        new = MountNamespace(self.core, mapping[self.root], self.user_ns if user_ns is None else user_ns,
                             mounts=[mapping[m] for m in self.mounts if m in mapping])
        for c in new.mounts:
            c.ns = new
            self.core.link_mount(c)
        return new, mapping

    def destroy(self) -> None:
        """The last process left the namespace: unmount everything (free_mnt_ns -> umount_tree)."""
        umount_tree(self.root)


def _set_master(m: Mount, master: Mount) -> None:
    m.master = master
    master.slaves.append(m)


def _leave_group(m: Mount) -> None:
    if m.group is not None:
        m.group.members.remove(m)
        m.group = None


def _leave_master(m: Mount) -> None:
    if m.master is not None:
        m.master.slaves.remove(m)
        m.master = None


def set_propagation(m: Mount, kind: str) -> None:
    """change_mnt_propagation: kind is "shared", "private", "slave" or "unbindable"."""
    if kind == "shared":
        if m.group is None:
            m.group = PeerGroup(m.core.new_group_id(), [m])
        m.unbindable = False
        return
    # Leaving a peer group or becoming private: hand our slaves to a peer, else to our master
    # (fs/pnode.c do_make_slave).
    peers = [p for p in (m.group.members if m.group else []) if p is not m]
    new_master = peers[0] if peers else m.master
    for s in list(m.slaves):
        s.master = new_master
        if new_master is not None:
            new_master.slaves.append(s)
    m.slaves.clear()
    _leave_group(m)
    if kind == "slave":
        if peers:
            _leave_master(m)
            _set_master(m, peers[0])
        m.unbindable = False
        return
    _leave_master(m)
    m.unbindable = kind == "unbindable"


# -- attaching and detaching ----------------------------------------------------------------------
def top_of(mnt: Mount, dentry: Dentry) -> tuple[Mount, Dentry]:
    """The place a new mount on (mnt, dentry) goes: on top of whatever is already there."""
    while dentry in mnt.children:
        mnt = mnt.children[dentry]
        dentry = mnt.root
    return mnt, dentry


def attach(child: Mount, parent: Mount, mountpoint: Dentry) -> None:
    """Attach the tree under ``child`` at (parent, mountpoint) in parent's namespace."""
    assert mountpoint not in parent.children, "caller stacks with top_of()"
    child.parent, child.mountpoint = parent, mountpoint
    parent.children[mountpoint] = child
    mountpoint.mount_count += 1
    ns = parent.ns
    for m in child.subtree():
        m.ns = ns
        if ns is not None and m not in ns.mounts:
            ns.mounts.append(m)
        m.core.link_mount(m)


def detach(child: Mount) -> None:
    """Take ``child`` (with its subtree) off its parent; it stays a tree of its own."""
    parent, mp = child.parent, child.mountpoint
    if parent is None or mp is None:
        return
    del parent.children[mp]
    mp.mount_count -= 1
    child.parent = child.mountpoint = None
    ns = child.ns
    for m in child.subtree():
        if ns is not None and m in ns.mounts:
            ns.mounts.remove(m)
        m.ns = None
        m.core.link_mount(m)


def umount_tree(m: Mount) -> list[Mount]:
    """Detach ``m`` and everything below it, drop them from the graph and from propagation;
    each releases its superblock once no file or process uses it (lazy unmount)."""
    victims = list(m.subtree())
    detach(m)
    for v in reversed(victims):
        for c in list(v.children.values()):
            detach(c)
        set_propagation(v, "private")
        v.detached = True
        v.core.unregister_mount(v)
        if v.users == 0:
            v._release()
    return victims


# -- propagation ----------------------------------------------------------------------------------
def receivers(parent: Mount) -> list[Mount]:
    """Every mount that receives mount events from ``parent``: its peers and, transitively, the
    slaves of its group and their peers (propagation_next in fs/pnode.c)."""
    out: list[Mount] = []
    seen = {id(parent)}
    stack = [parent]
    while stack:
        x = stack.pop()
        group = x.group.members if x.group is not None else [x]
        for y in group:
            for z in [y, *y.slaves]:
                if id(z) not in seen:
                    seen.add(id(z))
                    out.append(z)
                    stack.append(z)
    return out


def _visible_in(target: Mount, sb: SuperBlock, mp: Dentry) -> bool:
    return target.sb is sb and target.root.is_ancestor_of(mp)


def copy_tree(src: Mount, root: Dentry, *, recursive: bool, skip_unbindable: bool = True
              ) -> tuple[Mount, dict[Mount, Mount]]:
    """Copies of ``src`` (shown from ``root``) and, if ``recursive``, of the mounts below ``root``
    (copy_tree). Returns the root copy and a map original -> copy; propagation is left to the caller."""
    top = clone_mount(src, root)
    mapping = {src: top}
    if recursive:
        stack = [src]
        while stack:
            o = stack.pop()
            for mp, child in o.children.items():
                if o is src and not root.is_ancestor_of(mp):
                    continue
                if skip_unbindable and child.unbindable:
                    continue
                c = clone_mount(child, child.root)
                c.locked, c.locked_flags = child.locked, child.locked_flags
                mapping[child] = c
                p = mapping[o]
                c.parent, c.mountpoint = p, mp
                p.children[mp] = c
                mp.mount_count += 1
                stack.append(child)
    return top, mapping


def bind_propagation(mapping: dict[Mount, Mount]) -> None:
    """clone_mnt for a bind: a copy of a shared mount is its peer; of a slave, a slave of the same master."""
    for o, c in mapping.items():
        if o.group is not None:
            o.group.members.append(c)
            c.group = o.group
        if o.master is not None:
            _set_master(c, o.master)


def graft(tree: Mount, parent: Mount, mountpoint: Dentry) -> list[Mount]:
    """attach_recursive_mnt: put ``tree`` at (parent, mountpoint), stacking on what is there; if the
    destination is shared, the tree becomes shared and is copied to every receiver.
    Returns the copies made by propagation."""
    parent, mountpoint = top_of(parent, mountpoint)
    if parent.shared:
        for m in tree.subtree():
            if m.group is None:
                set_propagation(m, "shared")
    attach(tree, parent, mountpoint)
    return propagate_mount(parent, mountpoint, tree)


def propagate_mount(parent: Mount, mp: Dentry, src: Mount) -> list[Mount]:
    """propagate_mnt: ``src`` was just attached at (parent, mp); give every receiver a copy. Copies
    under peers are peers of ``src``; copies under slaves are slaves of the copy they came from."""
    created: list[Mount] = []
    if parent.group is None:
        return created
    done = {id(parent)}

    def deliver(members: list[Mount], master: Mount | None) -> None:
        group_copy: Mount | None = None
        for t in members:
            if id(t) in done:
                continue
            done.add(id(t))
            if not _visible_in(t, parent.sb, mp):
                continue
            copy, mapping = copy_tree(src, src.root, recursive=True)
            for o, c in mapping.items():
                if o is src and master is not None:
                    # A slave's copy is a slave of the sender's copy; if the receiving mount is
                    # shared its copies form a new peer group of their own.
                    _set_master(c, master)
                    if t.group is not None:
                        if group_copy is None or group_copy.group is None:
                            set_propagation(c, "shared")
                        else:
                            group_copy.group.members.append(c)
                            c.group = group_copy.group
                elif o.group is not None:
                    if master is None:
                        o.group.members.append(c)
                        c.group = o.group
                    else:
                        _set_master(c, o)
            if group_copy is None:
                group_copy = copy
            dest, dpoint = top_of(t, mp)
            attach(copy, dest, dpoint)
            created.extend(copy.subtree())
            holders[id(t)] = copy
        for t in members:
            for s in list(t.slaves):
                if id(s) not in done:
                    deliver(s.group.members if s.group is not None else [s], holders.get(id(t), src))

    holders: dict[int, Mount] = {id(parent): src}
    deliver(parent.group.members, None)
    return created


def propagated_victims(m: Mount) -> list[Mount]:
    """The mounts an unmount of ``m`` also removes: childless mounts at the same mountpoint under
    every receiver of m's parent (propagate_umount)."""
    parent, mp = m.parent, m.mountpoint
    if parent is None or mp is None or (parent.group is None and not parent.slaves):
        return []
    out = []
    for t in receivers(parent):
        c = t.children.get(mp)
        if c is not None and c is not m and not c.children:
            out.append(c)
    return out


# -- /proc/mounts ---------------------------------------------------------------------------------
def d_path(mnt: Mount, dentry: Dentry, root_mnt: Mount, root_dentry: Dentry) -> tuple[str, bool]:
    """The path of (mnt, dentry) as seen from a root, and whether the root is reachable from it
    (fs/d_path.c prepend_path: crossing mount points upward, stopping at the root)."""
    parts: list[str] = []
    while True:
        if mnt is root_mnt and dentry is root_dentry:
            return "/" + "/".join(reversed(parts)), True
        if dentry is mnt.root:
            if mnt.parent is None or mnt.mountpoint is None:
                return "/" + "/".join(reversed(parts)), False
            dentry, mnt = mnt.mountpoint, mnt.parent
            continue
        parts.append(dentry.name)
        dentry = dentry.up()


def mangle(s: str) -> str:
    """Escape space, tab, newline and backslash as octal, as /proc/mounts does (seq_escape)."""
    return "".join(f"\\{ord(ch):03o}" if ch in " \t\n\\" else ch for ch in s)


def mount_options(m: Mount) -> str:
    """The per-mount option list /proc/mounts prints (fs/proc_namespace.c show_mnt_opts)."""
    opts = ["ro" if m.readonly else "rw"]
    for bit, name in ((MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"), (MS_NOEXEC, "noexec"),
                      (MS_NOATIME, "noatime"), (MS_NODIRATIME, "nodiratime"), (MS_RELATIME, "relatime"),
                      (MS_NOSYMFOLLOW, "nosymfollow")):
        if m.flags & bit:
            opts.append(name)
    return ",".join(opts)


def render_mounts(ns: MountNamespace, root_mnt: Mount, root_dentry: Dentry | None = None) -> str:
    """/proc/PID/mounts text for a process whose root is (root_mnt, root_dentry): one line per
    mount reachable from that root, "source mountpoint fstype options 0 0" (proc(5))."""
    root_dentry = root_mnt.root if root_dentry is None else root_dentry
    lines = []
    for m in ns.mounts:
        where, ok = d_path(m, m.root, root_mnt, root_dentry)
        if not ok:
            continue
        opts = mount_options(m)
        extra = m.sb.fs.show_options(m.sb)
        if extra:
            opts += "," + extra
        lines.append(f"{mangle(m.sb.source)} {mangle(where)} {m.sb.fstype} {opts} 0 0\n")
    return "".join(lines)


def render_mountinfo(ns: MountNamespace, root_mnt: Mount, root_dentry: Dentry | None = None) -> str:
    """/proc/PID/mountinfo (proc(5)): ids, dev, root, mount point, options, propagation tags."""
    root_dentry = root_mnt.root if root_dentry is None else root_dentry
    lines = []
    for m in ns.mounts:
        where, ok = d_path(m, m.root, root_mnt, root_dentry)
        if not ok:
            continue
        parent_id = m.parent.mnt_id if m.parent is not None else m.mnt_id
        inner = _sb_relative(m.root)
        tags = []
        if m.group is not None:
            tags.append(f"shared:{m.group.id}")
        if m.master is not None and m.master.group is not None:
            tags.append(f"master:{m.master.group.id}")
        if m.unbindable:
            tags.append("unbindable")
        superopts = "ro" if m.sb.ro else "rw"
        extra = m.sb.fs.show_options(m.sb)
        if extra:
            superopts += "," + extra
        fields = [str(m.mnt_id), str(parent_id), f"{m.sb.major}:{m.sb.minor}", mangle(inner), mangle(where),
                  mount_options(m), *tags, "-", m.sb.fstype, mangle(m.sb.source), superopts]
        lines.append(" ".join(fields) + "\n")
    return "".join(lines)


def _sb_relative(d: Dentry) -> str:
    parts = []
    while not d.is_root:
        parts.append(d.name)
        d = d.up()
    return "/" + "/".join(reversed(parts))


def check_in_ns(m: Mount, ns: MountNamespace) -> None:
    """check_mnt: the mount must belong to the caller's namespace."""
    if m.ns is not ns:
        raise KernelError(EINVAL, "mount is not in the caller's mount namespace")


def rehang(child: Mount, parent: Mount | None, mountpoint: Dentry | None) -> None:
    """Move ``child`` to (parent, mountpoint) within its namespace (pivot_root's attach_mnt)."""
    if child.parent is not None and child.mountpoint is not None:
        del child.parent.children[child.mountpoint]
        child.mountpoint.mount_count -= 1
    child.parent, child.mountpoint = parent, mountpoint
    if parent is not None and mountpoint is not None:
        parent.children[mountpoint] = child
        mountpoint.mount_count += 1
    child.core.link_mount(child)


def reachable(mnt: Mount, dentry: Dentry, root_mnt: Mount, root_dentry: Dentry) -> bool:
    """is_path_reachable: (mnt, dentry) is at or below (root_mnt, root_dentry)."""
    while mnt is not root_mnt and mnt.parent is not None and mnt.mountpoint is not None:
        dentry, mnt = mnt.mountpoint, mnt.parent
    return mnt is root_mnt and root_dentry.is_ancestor_of(dentry)


def is_mountpoint_in(ns: MountNamespace | None, dentry: Dentry) -> bool:
    """is_local_mountpoint: something in this namespace is mounted on ``dentry``."""
    if dentry.mount_count == 0:
        return False
    if ns is None:
        return True
    return any(m.mountpoint is dentry for m in ns.mounts)
