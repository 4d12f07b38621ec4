"""Network namespaces (network_namespaces(7)) and the network-stack seam.

A network namespace owns a *network stack*: its interfaces, addresses and routes. The kernel
only defines the seam (:class:`NetworkStack`); the virtual-network plugin supplies a full stack
through ``NsContext.net_stack_factory``. The default, :class:`LoopbackStack`, has just ``lo``.

As in Linux, ``lo`` in a *new* namespace starts down and without addresses; bringing it up
(``ip link set lo up``, as runc does) gives it 127.0.0.1/8 and ::1/128. The initial namespace's
``lo`` is up, as after boot.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import attrs

from virtlevels.kernel.errno import ENODEV, KernelError
from virtlevels.kernel.ns.common import NS_TYPES, Namespace, NsContext
from virtlevels.kernel.ns.user import UserNamespace

IFF_UP = 0x1  # include/uapi/linux/if.h
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40


@attrs.frozen
class InterfaceInfo:
    """What ``ip addr`` shows of one interface."""

    index: int
    name: str
    flags: int
    mtu: int
    addresses: tuple[str, ...]  # CIDR strings, e.g. "127.0.0.1/8"
    mac: str = "00:00:00:00:00:00"

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


@runtime_checkable
class NetworkStack(Protocol):
    """What a network namespace needs of its stack; the vnet plugin implements a fuller one."""

    def interfaces(self) -> list[InterfaceInfo]:
        """Every interface in the namespace, by index."""
        ...

    def set_link_up(self, name: str, up: bool) -> None:
        """``ip link set NAME up|down``; KernelError(ENODEV) if there is no such interface."""
        ...

    def close(self) -> None:
        """The namespace is gone: release interfaces (veth peers vanish, as in Linux)."""
        ...


@attrs.define(eq=False)
class LoopbackStack:
    """The default stack: only ``lo`` (drivers/net/loopback.c, ifindex 1, MTU 65536)."""

    up: bool = False
    closed: bool = False

    def interfaces(self) -> list[InterfaceInfo]:
        flags = IFF_LOOPBACK | (IFF_UP | IFF_RUNNING if self.up else 0)
        addrs = ("127.0.0.1/8", "::1/128") if self.up else ()
        return [InterfaceInfo(1, "lo", flags, 65536, addrs)]

    def set_link_up(self, name: str, up: bool) -> None:
        if name != "lo":
            raise KernelError(ENODEV, f"no interface {name!r}")
        self.up = up

    def close(self) -> None:
        self.closed = True


@attrs.define(eq=False)
class NetNamespace(Namespace):
    TYPE = NS_TYPES["net"]

    stack: Any = None  # a NetworkStack

    def _release(self) -> None:
        if self.stack is not None:
            self.stack.close()


def _make_stack(ctx: NsContext, ns: NetNamespace, initial: bool) -> Any:
    if ctx.net_stack_factory is not None:
        return ctx.net_stack_factory(ns)
    return LoopbackStack(up=initial)


def initial_net_ns(ctx: NsContext, user_ns: UserNamespace) -> NetNamespace:
    ns = NetNamespace(ctx, NS_TYPES["net"].init_ino, user_ns)
    ns.stack = _make_stack(ctx, ns, True)
    return ns


def create_net_ns(user_ns: UserNamespace, old: NetNamespace) -> NetNamespace:
    """A new network namespace with a fresh stack (copy_net_ns): nothing is shared with ``old``."""
    ns = NetNamespace(old.ctx, old.ctx.alloc_ino(), user_ns)
    ns.stack = _make_stack(old.ctx, ns, False)
    return ns
