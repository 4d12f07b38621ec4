"""Every hook a virtlevels plugin can implement. This module is the plugin reference.

Conventions
-----------
* Every hook is prefixed ``virtlevels_``; implement it with ``@virtlevels.hookimpl``.
* **Registration hooks** (``virtlevels_register_*``) receive a :class:`~virtlevels.registry.Registry`
  and add to it. They are called once per World, the first time its registry is needed, in
  *load order*: built-in plugins first, then third-party entry points sorted by name, then
  plugins registered in code, in registration order. A name registered twice is an error
  reported against the later plugin unless it passes ``replace=True``.
* **Observer hooks** (``virtlevels_on_*``) are told about events as they happen. They return
  nothing. An object binds them once when it is created (``world.observer(name)``), and when no
  plugin implements a hook nothing is called at all: the hot path tests one local for None.
* A plugin that raises inside a hook is reported by name (``virtlevels plugins``) and the other
  plugins still run. No hook is ``firstresult``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels.registry import Registry
    from virtlevels.world import World

PROJECT = "virtlevels"
hookspec = pluggy.HookspecMarker(PROJECT)


# -- registration ---------------------------------------------------------------------------


@hookspec
def virtlevels_register_backends(registry: Registry) -> None:
    """Add level backends with ``registry.add_backend(backend)``.

    ``backend`` is an object with an ``info`` attribute (a :class:`~virtlevels.taxonomy.BackendInfo`
    declaring level, techniques, what it shares, which Popek-Goldberg properties it keeps) and a
    ``define(host, spec)`` method returning a guest (see :mod:`virtlevels.backend`).
    Called once per World, in load order.
    """


@hookspec
def virtlevels_register_workloads(registry: Registry) -> None:
    """Add workloads with ``registry.add_workload(workload)`` (a :class:`~virtlevels.registry.Workload`).

    Called once per World, in load order.
    """


@hookspec
def virtlevels_register_cost_profiles(registry: Registry) -> None:
    """Add cost-model profiles with ``registry.add_cost_profile(name, path)`` (a TOML file).

    Called once per World, in load order.
    """


@hookspec
def virtlevels_register_isa_extensions(registry: Registry) -> None:
    """Add ISA extensions or profiles with ``registry.add_isa_extension(extension)``.

    An extension is a :class:`~virtlevels.registry.IsaExtension`: a name and a callable that adds
    instructions to an instruction table. Called once per World, in load order.
    """


@hookspec
def virtlevels_register_exercises(registry: Registry) -> None:
    """Add coursework exercises with ``registry.add_exercise(exercise)``.

    Called once per World, in load order.
    """


@hookspec
def virtlevels_register_commands(registry: Registry) -> None:
    """Add CLI subcommands with ``registry.add_command(command)`` (a :class:`~virtlevels.registry.Command`).

    Called once when the CLI starts, in load order; a command named like an existing one is an error.
    """


# -- lifecycle ------------------------------------------------------------------------------


@hookspec
def virtlevels_world_created(world: World) -> None:
    """A World has been created and its plugins loaded. Called once per World, in load order."""


# -- observers ------------------------------------------------------------------------------


@hookspec
def virtlevels_on_trap(
    machine: Any, hart_id: int, cause: int, tval: int, epc: int, from_priv: int, to_priv: int, interrupt: bool
) -> None:
    """A hart took a trap (exception or interrupt), after the trap CSRs were written.

    ``cause`` is the exception code (without the interrupt bit), ``from_priv``/``to_priv`` the
    privilege levels (0 U, 1 S, 3 M). Called on every trap of a machine created while a plugin
    implements it.
    """


@hookspec
def virtlevels_on_vm_exit(vm: Any, vcpu: int, reason: str, cycles: int) -> None:
    """A virtual CPU left guest mode to the hypervisor for ``reason``; ``cycles`` is the exit's cost."""


@hookspec
def virtlevels_on_syscall(kernel: Any, pid: int, nr: int, args: tuple[int, ...], result: int) -> None:
    """A system call completed in a simulated kernel; ``result`` is the return value (negative errno).

    ``pid`` is the process's pid in the kernel's initial pid namespace (as for ``virtlevels_on_process``).
    """


@hookspec
def virtlevels_on_packet(device: Any, frame: bytes, direction: str) -> None:
    """A frame crossed a network device; ``direction`` is ``"rx"`` or ``"tx"``."""


@hookspec
def virtlevels_on_process(kernel: Any, pid: int, event: str) -> None:
    """A process lifecycle event in a simulated kernel: ``"created"``, ``"exec"`` or ``"exited"``.

    ``pid`` is the process's pid in the kernel's initial pid namespace.
    """


#: Registration hooks, in the order the registry calls them.
REGISTRATION_HOOKS: tuple[str, ...] = (
    "virtlevels_register_cost_profiles",
    "virtlevels_register_isa_extensions",
    "virtlevels_register_backends",
    "virtlevels_register_workloads",
    "virtlevels_register_exercises",
    "virtlevels_register_commands",
)

#: Observer hooks, by the short name :meth:`virtlevels.world.World.observer` takes.
OBSERVER_HOOKS: dict[str, str] = {
    "trap": "virtlevels_on_trap",
    "vm_exit": "virtlevels_on_vm_exit",
    "syscall": "virtlevels_on_syscall",
    "packet": "virtlevels_on_packet",
    "process": "virtlevels_on_process",
}
