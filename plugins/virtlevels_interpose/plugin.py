"""The interpose plugin's hooks (entry point ``interpose`` in the ``virtlevels`` group)."""

from __future__ import annotations

from typing import Any

import virtlevels
from virtlevels.registry import Registry


@virtlevels.hookimpl
def virtlevels_register_backends(registry: Registry) -> None:
    from virtlevels_interpose.backend import InterposeBackend

    registry.add_backend(InterposeBackend())


@virtlevels.hookimpl
def virtlevels_register_commands(registry: Registry) -> None:
    from virtlevels_interpose.cli import COMMANDS

    for command in COMMANDS:
        registry.add_command(command)


@virtlevels.hookimpl
def virtlevels_on_process(kernel: Any, pid: int, event: str) -> None:
    # Keep the resource graph's library nodes in step: a fork child maps its parent's
    # libraries, an exited process maps none. Kernels without a linker cost one lookup.
    ld = getattr(kernel, "_virtlevels_linker", None)
    if ld is not None and event in ("created", "exited"):
        ld.graph_sync()
