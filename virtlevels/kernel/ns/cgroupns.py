"""Cgroup namespaces (cgroup_namespaces(7)): virtualize the view of /proc/PID/cgroup.

A cgroup namespace has a root cgroup: the cgroup of the process that created it. Paths are
shown relative to the reader's namespace root; a cgroup outside that root is reached with
``/..`` segments, as cgroup_namespaces(7) shows ("0::/../cg2").
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from virtlevels.kernel.ns.common import NS_TYPES, Namespace, NsContext
from virtlevels.kernel.ns.user import UserNamespace


class CgroupLike(Protocol):
    @property
    def path(self) -> str:
        """Absolute path in the hierarchy: "/" for the root, "/a/b" below it."""
        ...


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def relative_cgroup_path(path: str, root: str) -> str:
    """``path`` as seen from a namespace rooted at ``root`` (kernfs_path_from_node)."""
    p, r = _parts(path), _parts(root)
    common = 0
    while common < len(p) and common < len(r) and p[common] == r[common]:
        common += 1
    ups = [".."] * (len(r) - common)
    rel = ups + p[common:]
    return "/" + "/".join(rel)


@attrs.define(eq=False)
class CgroupNamespace(Namespace):
    TYPE = NS_TYPES["cgroup"]

    root: Any = None  # the root cgroup (CgroupLike); None means the hierarchy root

    @property
    def root_path(self) -> str:
        return "/" if self.root is None else str(self.root.path)

    def path_of(self, cgroup: CgroupLike | str) -> str:
        """The path of ``cgroup`` as a process in this namespace sees it."""
        path = cgroup if isinstance(cgroup, str) else cgroup.path
        return relative_cgroup_path(path, self.root_path)

    def proc_cgroup_line(self, cgroup: CgroupLike | str) -> str:
        """The /proc/PID/cgroup line for cgroup v2 (cgroups(7)): ``0::PATH``."""
        return f"0::{self.path_of(cgroup)}\n"


def initial_cgroup_ns(ctx: NsContext, user_ns: UserNamespace, root: Any = None) -> CgroupNamespace:
    return CgroupNamespace(ctx, NS_TYPES["cgroup"].init_ino, user_ns, root=root)


def create_cgroup_ns(user_ns: UserNamespace, old: CgroupNamespace, current: Any) -> CgroupNamespace:
    """CLONE_NEWCGROUP: the new root is the creator's current cgroup (``current``)."""
    return CgroupNamespace(
        old.ctx, old.ctx.alloc_ino(), user_ns, root=current if current is not None else old.root
    )
