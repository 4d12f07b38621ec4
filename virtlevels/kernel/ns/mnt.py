"""Mount namespaces (mount_namespaces(7)): each holds its own copy of the mount tree.

The mount tree itself belongs to the VFS (virtlevels.kernel.vfs.mount.MountNamespace); here it
is an object with ``clone(less_privileged=, user_ns=)`` returning ``(copy, mapping)`` (copy_mnt_ns,
where the VFS applies the propagation rules: shared mounts stay peers, mounts copied into a less
privileged user namespace are locked and shared ones become slaves), ``set_graph_id(node_id)``
and ``destroy()`` (the last reference is gone: unmount everything).
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from virtlevels.kernel.ns.common import NS_TYPES, Namespace, NsContext
from virtlevels.kernel.ns.user import UserNamespace


class MountTreeLike(Protocol):
    def clone(self, *, less_privileged: bool = False, user_ns: Any = None) -> tuple[Any, dict[Any, Any]]:
        """A copy of the tree for a new mount namespace and the old-mount -> new-mount mapping."""
        ...

    def set_graph_id(self, node_id: str | None) -> None: ...

    def destroy(self) -> None: ...


@attrs.define(eq=False)
class MntNamespace(Namespace):
    TYPE = NS_TYPES["mnt"]

    tree: Any = None  # the VFS's mount tree (MountTreeLike)
    #: copy_mnt_ns's mapping from the old namespace's mounts to their copies, until the creator's
    #: root and cwd have been moved into the copy (:meth:`take_mapping`).
    mapping: dict[Any, Any] = attrs.field(factory=dict)

    def take_mapping(self) -> dict[Any, Any]:
        m, self.mapping = self.mapping, {}
        return m

    def _release(self) -> None:
        # free_mnt_ns: the last process (or nsfs reference) is gone, so unmount the whole tree.
        tree, self.tree = self.tree, None
        self.mapping = {}
        if tree is not None:
            tree.destroy()


def initial_mnt_ns(ctx: NsContext, user_ns: UserNamespace, tree: Any = None) -> MntNamespace:
    ns = MntNamespace(ctx, NS_TYPES["mnt"].init_ino, user_ns, tree=tree)
    if tree is not None:
        tree.set_graph_id(ns.node_id if ctx.graph is not None else None)
    return ns


def create_mnt_ns(user_ns: UserNamespace, old: MntNamespace) -> MntNamespace:
    """CLONE_NEWNS: the new namespace starts with a copy of the old one's mounts, made for its
    owning user namespace (copy_mnt_ns: a different owner than the old namespace's means a less
    privileged copy, CL_SHARED_TO_SLAVE | CL_UNPRIVILEGED)."""
    tree: Any = None
    mapping: dict[Any, Any] = {}
    if old.tree is not None:
        tree, mapping = old.tree.clone(less_privileged=user_ns is not old.owner_ns, user_ns=user_ns)
    ns = MntNamespace(old.ctx, old.ctx.alloc_ino(), user_ns, tree=tree, mapping=mapping)
    if tree is not None:
        tree.set_graph_id(ns.node_id if old.ctx.graph is not None else None)
    return ns
