"""The containers plugin's hooks (entry point ``containers`` in the ``virtlevels`` group)."""

from __future__ import annotations

import virtlevels
from virtlevels.registry import Registry


@virtlevels.hookimpl
def virtlevels_register_backends(registry: Registry) -> None:
    from virtlevels_containers.backend import ContainersBackend

    registry.add_backend(ContainersBackend())


@virtlevels.hookimpl
def virtlevels_register_commands(registry: Registry) -> None:
    from virtlevels_containers.cli import COMMANDS

    for command in COMMANDS:
        registry.add_command(command)
