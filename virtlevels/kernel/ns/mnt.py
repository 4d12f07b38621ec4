"""Mount namespaces (mount_namespaces(7)): each holds its own copy of the mount tree.

The mount tree itself belongs to the VFS (virtlevels.kernel.vfs); here it is an opaque object
with a ``clone()`` method that copies it for a new namespace (copy_mnt_ns), where the VFS applies
the propagation rules (shared mounts stay peers, mounts copied into a less privileged user
namespace are locked and shared ones become slaves).
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from virtlevels.kernel.ns.common import NS_TYPES, Namespace, NsContext
from virtlevels.kernel.ns.user import UserNamespace


class MountTreeLike(Protocol):
    def clone(self) -> Any:
        """A copy of the tree for a new mount namespace."""
        ...


@attrs.define(eq=False)
class MntNamespace(Namespace):
    TYPE = NS_TYPES["mnt"]

    tree: Any = None  # the VFS's mount tree (MountTreeLike), opaque here


def initial_mnt_ns(ctx: NsContext, user_ns: UserNamespace, tree: Any = None) -> MntNamespace:
    return MntNamespace(ctx, NS_TYPES["mnt"].init_ino, user_ns, tree=tree)


def create_mnt_ns(user_ns: UserNamespace, old: MntNamespace) -> MntNamespace:
    """CLONE_NEWNS: the new namespace starts with a copy of the old one's mounts."""
    tree = old.tree.clone() if old.tree is not None else None
    return MntNamespace(old.ctx, old.ctx.alloc_ino(), user_ns, tree=tree)
