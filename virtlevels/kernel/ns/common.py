"""What every namespace shares: its type, its inode number, its owner, its reference count.

namespaces(7): each namespace is identified by an inode number in the nsfs filesystem, which
``readlink /proc/PID/ns/TYPE`` shows as ``TYPE:[INODE]``. The initial namespaces have fixed
numbers (include/uapi/linux/nsfs.h, ``enum init_ns_ino``); later ones get numbers from the proc
inode allocator, which starts at PROC_DYNAMIC_FIRST (0xF0000000). Here the allocator is a counter
per :class:`NsContext` (one per kernel), so numbers are deterministic.

Lifetime follows Linux's refcounting (``get_*_ns``/``put_*_ns``): whoever holds a namespace
(an NsProxy, credentials, a Pid, a child namespace, an open /proc/PID/ns file) holds a reference;
when the last one is put, the namespace is destroyed and its resource-graph node removed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from virtlevels.graph import ResourceGraph

if TYPE_CHECKING:
    from virtlevels.kernel.ns.user import UserNamespace

# include/uapi/linux/sched.h
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NS_FLAGS = (
    CLONE_NEWTIME | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
    | CLONE_NEWPID | CLONE_NEWNET
)  # fmt: skip
# Other clone flags the namespace rules look at (clone(2), unshare(2)).
CLONE_THREAD = 0x00010000
CLONE_FS = 0x00000200
CLONE_SYSVSEM = 0x00040000

# include/uapi/linux/nsfs.h, enum init_ns_ino (Linux 6.x gives all eight initial ones fixed numbers).
IPC_NS_INIT_INO = 0xEFFFFFFF
UTS_NS_INIT_INO = 0xEFFFFFFE
USER_NS_INIT_INO = 0xEFFFFFFD
PID_NS_INIT_INO = 0xEFFFFFFC
CGROUP_NS_INIT_INO = 0xEFFFFFFB
TIME_NS_INIT_INO = 0xEFFFFFFA
NET_NS_INIT_INO = 0xEFFFFFF9
MNT_NS_INIT_INO = 0xEFFFFFF8
PROC_DYNAMIC_FIRST = 0xF0000000  # fs/proc/generic.c


@attrs.frozen
class NsType:
    """One of the eight namespace types (namespaces(7), table "Namespace types")."""

    name: str  # as in /proc/PID/ns/NAME and the readlink text
    flag: int  # CLONE_NEW*
    init_ino: int


NS_TYPES: dict[str, NsType] = {
    t.name: t
    for t in (
        NsType("cgroup", CLONE_NEWCGROUP, CGROUP_NS_INIT_INO),
        NsType("ipc", CLONE_NEWIPC, IPC_NS_INIT_INO),
        NsType("mnt", CLONE_NEWNS, MNT_NS_INIT_INO),
        NsType("net", CLONE_NEWNET, NET_NS_INIT_INO),
        NsType("pid", CLONE_NEWPID, PID_NS_INIT_INO),
        NsType("time", CLONE_NEWTIME, TIME_NS_INIT_INO),
        NsType("user", CLONE_NEWUSER, USER_NS_INIT_INO),
        NsType("uts", CLONE_NEWUTS, UTS_NS_INIT_INO),
    )
}
NS_TYPE_BY_FLAG: dict[int, NsType] = {t.flag: t for t in NS_TYPES.values()}


def _zero_clock() -> int:
    return 0


@attrs.define(eq=False)
class NsContext:
    """Per-kernel namespace bookkeeping: the inode allocator, the graph, the clock.

    ``node_prefix`` makes graph ids unique per kernel ("kernel:0/" gives "kernel:0/ns:uts:4026531838").
    ``net_stack_factory`` is the seam the virtual-network plugin fills: it builds the network
    stack of every new network namespace (default: loopback only).
    """

    graph: ResourceGraph | None = None
    node_prefix: str = ""
    clock: Callable[[], int] = _zero_clock
    net_stack_factory: Callable[[Any], Any] | None = None
    parent_node: str | None = None  # e.g. the kernel's node; initial namespaces "runs_on" it
    _next_ino: int = PROC_DYNAMIC_FIRST
    live: dict[int, Namespace] = attrs.field(factory=dict)  # inode -> namespace, for setns by inode

    def alloc_ino(self) -> int:
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def by_inode(self, ino: int) -> Namespace | None:
        return self.live.get(ino)


@attrs.define(eq=False)
class Namespace:
    """Base of the eight namespace classes: identity, owner, refcount, graph node."""

    TYPE: ClassVar[NsType]

    ctx: NsContext
    inode: int
    owner_ns: UserNamespace | None  # the owning user namespace (None only for the initial user ns)
    refcount: int = 1
    dead: bool = False

    def __attrs_post_init__(self) -> None:
        self.ctx.live[self.inode] = self
        if self.owner_ns is not None and self.owner_ns is not self:
            self.owner_ns.get()
        g = self.ctx.graph
        if g is not None:
            g.add(self.node_id, "namespace", type=self.TYPE.name, inode=self.inode)
            self._link_graph(g)
            if self.ctx.parent_node is not None and self.ctx.parent_node in g:
                g.link(self.node_id, self.ctx.parent_node, "runs_on")

    def _link_graph(self, g: ResourceGraph) -> None:
        """Edges to what this namespace depends on; user namespaces override this."""
        if self.owner_ns is not None:
            g.link(self.node_id, self.owner_ns.node_id, "maps_to")

    @property
    def type_name(self) -> str:
        return self.TYPE.name

    @property
    def inum(self) -> int:
        """The nsfs inode number (what stat(2) of an open namespace file shows)."""
        return self.inode

    @property
    def node_id(self) -> str:
        return f"{self.ctx.node_prefix}ns:{self.TYPE.name}:{self.inode}"

    def proc_link(self) -> str:
        """What ``readlink /proc/PID/ns/TYPE`` prints, e.g. ``uts:[4026531838]``."""
        return f"{self.TYPE.name}:[{self.inode}]"

    def get(self) -> Namespace:
        if self.dead:
            raise RuntimeError(f"get() on destroyed namespace {self.proc_link()}")
        self.refcount += 1
        return self

    def put(self) -> None:
        if self.dead:
            raise RuntimeError(f"put() on destroyed namespace {self.proc_link()}")
        self.refcount -= 1
        if self.refcount == 0:
            self._destroy()

    def _destroy(self) -> None:
        self.dead = True
        self.ctx.live.pop(self.inode, None)
        g = self.ctx.graph
        if g is not None and self.node_id in g:
            g.remove(self.node_id)
        self._release()
        if self.owner_ns is not None and self.owner_ns is not self:
            self.owner_ns.put()

    def _release(self) -> None:
        """Drop what this namespace holds (parents, queues, stacks); subclasses extend."""
