"""The vnet plugin's hooks (entry point ``vnet = "virtlevels_vnet.plugin"``) and the seam filler."""

from __future__ import annotations

from typing import Any

import virtlevels
from virtlevels.registry import Registry


def install(kernel: Any) -> None:
    """Give ``kernel`` full network stacks: every new network namespace gets a NetStack
    (NsContext.net_stack_factory), and the initial namespace's loopback-only stack is replaced."""
    from virtlevels_vnet.context import context_for
    from virtlevels_vnet.stack import NetStack

    ctx = context_for(kernel.world)

    def factory(ns: Any) -> NetStack:
        return NetStack(ctx, f"{kernel.node_id}/netns:{ns.inode}")

    kernel.nsctx.net_stack_factory = factory
    init = kernel.init_nsproxy.net
    old = init.stack
    init.stack = NetStack(ctx, f"{kernel.node_id}/netns:{init.inode}", initial=True)
    if old is not None:
        old.close()


@virtlevels.hookimpl
def virtlevels_register_commands(registry: Registry) -> None:
    from virtlevels_vnet.cli import COMMANDS

    for command in COMMANDS:
        registry.add_command(command)


@virtlevels.hookimpl
def virtlevels_on_process(kernel: Any, pid: int, event: str) -> None:
    # A kernel's first process is created while it boots: from then on, in a World with this
    # plugin, every network namespace of that kernel has a full stack (the kernel's seam).
    if event == "created" and not getattr(kernel, "_virtlevels_vnet", False):
        kernel._virtlevels_vnet = True
        if not _has_vnet_stacks(kernel):
            install(kernel)


def _has_vnet_stacks(kernel: Any) -> bool:
    from virtlevels_vnet.stack import NetStack

    return isinstance(getattr(kernel.init_nsproxy.net, "stack", None), NetStack)
