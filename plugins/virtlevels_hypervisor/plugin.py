"""The hypervisor plugin's hooks (entry point ``hypervisor`` in the ``virtlevels`` group)."""

from __future__ import annotations

import virtlevels
from virtlevels.registry import Registry


@virtlevels.hookimpl
def virtlevels_register_backends(registry: Registry) -> None:
    from virtlevels_hypervisor.backend import HypervisorBackend

    registry.add_backend(HypervisorBackend())


@virtlevels.hookimpl
def virtlevels_register_commands(registry: Registry) -> None:
    from virtlevels_hypervisor.cli import COMMANDS

    for command in COMMANDS:
        registry.add_command(command)
