"""The interpose plugin's hooks (entry point ``interpose`` in the ``virtlevels`` group)."""

from __future__ import annotations

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
