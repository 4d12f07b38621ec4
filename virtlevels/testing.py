"""A pytest plugin for virtlevels and its plugin authors (entry point ``pytest11``).

Fixtures:

``world``
    A fresh :class:`~virtlevels.World` (seed 0) with every installed plugin loaded.
``bare_world``
    A fresh World with only the core's built-in plugins (no entry points).
``register_plugin``
    ``register_plugin(obj, name=None, world=None) -> World``: register a plugin object for this
    test only (in ``world``, default the ``world`` fixture's); it is unregistered afterwards.
``run_cli``
    ``run_cli(*args, plugins=()) -> CliResult``: run the ``virtlevels`` CLI in-process and
    capture its exit code, stdout and stderr; ``plugins`` are registered for that run.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import pytest

from virtlevels.world import World


@attrs.frozen
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def world() -> World:
    return World(0)


@pytest.fixture
def bare_world() -> World:
    return World(0, entry_points=False)


@pytest.fixture
def register_plugin(world: World) -> Iterator[Callable[..., World]]:
    registered: list[tuple[World, str]] = []

    def register(plugin: Any, name: str | None = None, world_: World | None = None) -> World:
        target = world_ or world
        registered.append((target, target.register_plugin(plugin, name)))
        return target

    yield register
    for target, name in reversed(registered):
        target.unregister_plugin(name)


def invoke_cli(args: Sequence[str], plugins: Sequence[Any] = ()) -> CliResult:
    """Run the CLI in-process; ``plugins`` are registered in the World it creates."""
    from virtlevels.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main.main(list(args), plugins=plugins)
        except SystemExit as exc:  # argparse exits for --help, --version and usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def run_cli() -> Callable[..., CliResult]:
    def run(*args: str, plugins: Sequence[Any] = ()) -> CliResult:
        return invoke_cli(args, plugins)

    return run
