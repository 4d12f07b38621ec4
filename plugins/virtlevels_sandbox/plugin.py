"""The sandbox plugin's hooks (entry point ``sandbox = "virtlevels_sandbox.plugin"``)."""

from __future__ import annotations

from typing import Any

import virtlevels
from virtlevels.registry import Registry


@virtlevels.hookimpl
def virtlevels_register_backends(registry: Registry) -> None:
    from virtlevels_sandbox.backend import SandboxBackend

    registry.add_backend(SandboxBackend())


@virtlevels.hookimpl
def virtlevels_register_commands(registry: Registry) -> None:
    from virtlevels_sandbox.cli import COMMANDS

    for command in COMMANDS:
        registry.add_command(command)


@virtlevels.hookimpl
def virtlevels_on_process(kernel: Any, pid: int, event: str) -> None:
    # A kernel's first process (its init) is created while it boots: that is when a kernel in a
    # World with this plugin gets seccomp(2). Later events find it installed and cost one lookup.
    if event == "created" and getattr(kernel, "_virtlevels_sandbox", None) is None:
        if kernel.seccomp_provider is None:
            from virtlevels_sandbox.seccomp import install

            install(kernel)
