"""What plugins register: backends, workloads, cost profiles, ISA extensions, exercises, commands.

Registration hooks receive a :class:`Registry` and call its ``add_*`` methods (as tox's
``tox_register_tox_env(register)`` and llm's ``register_models(register)`` do). Every entry
remembers which plugin added it, so ``virtlevels plugins`` can say who provides what.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from virtlevels.errors import PluginError
from virtlevels.taxonomy import BackendInfo


@runtime_checkable
class BackendLike(Protocol):
    """The least a registered backend has: its place in the taxonomy (see :mod:`virtlevels.backend`)."""

    info: BackendInfo


@attrs.frozen
class Workload:
    """A program that can run at any level; ``build`` returns what the level runs."""

    name: str
    description: str
    build: Callable[..., Any]
    tags: tuple[str, ...] = ()


@attrs.frozen
class IsaExtension:
    """Instructions added to an instruction table; ``apply(table)`` adds them."""

    name: str
    description: str
    apply: Callable[[Any], None]
    profile: bool = False  # a whole ISA profile (selectable by name) rather than an add-on


@attrs.frozen
class Exercise:
    """A seeded coursework problem generator (OSTEP homework style)."""

    name: str
    level: str
    description: str
    generate: Callable[[int], Any]
    solve: Callable[[int], Any]


@attrs.frozen
class Command:
    """A CLI subcommand: ``configure`` adds arguments, ``run`` returns the exit status."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


@attrs.frozen
class Entry:
    """One registered object and the plugin that added it."""

    kind: str
    name: str
    value: Any
    plugin: str


KINDS = ("backend", "workload", "cost_profile", "isa_extension", "exercise", "command")


@attrs.define
class Registry:
    """The registered objects of one World, by kind then name."""

    entries: dict[str, dict[str, Entry]] = attrs.field(
        factory=lambda: {k: {} for k in KINDS}
    )
    current_plugin: str = "<code>"

    def _add(self, kind: str, name: str, value: Any, replace: bool) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {self.current_plugin!r} registered a {kind} with no name")
        table = self.entries[kind]
        if name in table and not replace:
            raise PluginError(
                f"plugin {self.current_plugin!r} registered {kind} {name!r}, "
                f"already registered by {table[name].plugin!r} (pass replace=True to override)"
            )
        table[name] = Entry(kind, name, value, self.current_plugin)

    def add_backend(self, backend: BackendLike, *, replace: bool = False) -> None:
        info = getattr(backend, "info", None)
        if not isinstance(info, BackendInfo):
            raise PluginError(
                f"plugin {self.current_plugin!r} registered a backend without a BackendInfo `info`"
            )
        self._add("backend", info.name, backend, replace)

    def add_workload(self, workload: Workload, *, replace: bool = False) -> None:
        self._add("workload", workload.name, workload, replace)

    def add_cost_profile(self, name: str, path: str | Path, *, replace: bool = False) -> None:
        self._add("cost_profile", name, Path(path), replace)

    def add_isa_extension(self, extension: IsaExtension, *, replace: bool = False) -> None:
        self._add("isa_extension", extension.name, extension, replace)

    def add_exercise(self, exercise: Exercise, *, replace: bool = False) -> None:
        self._add("exercise", exercise.name, exercise, replace)

    def add_command(self, command: Command, *, replace: bool = False) -> None:
        self._add("command", command.name, command, replace)

    # -- reading -----------------------------------------------------------------------------
    def _values(self, kind: str) -> dict[str, Any]:
        return {name: e.value for name, e in sorted(self.entries[kind].items())}

    @property
    def backends(self) -> dict[str, Any]:
        return self._values("backend")

    @property
    def workloads(self) -> dict[str, Workload]:
        return self._values("workload")

    @property
    def cost_profiles(self) -> dict[str, Path]:
        return self._values("cost_profile")

    @property
    def isa_extensions(self) -> dict[str, IsaExtension]:
        return self._values("isa_extension")

    @property
    def exercises(self) -> dict[str, Exercise]:
        return self._values("exercise")

    @property
    def commands(self) -> dict[str, Command]:
        return self._values("command")

    def by_plugin(self, plugin: str) -> list[Entry]:
        return [e for table in self.entries.values() for e in table.values() if e.plugin == plugin]
