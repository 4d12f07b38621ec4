"""Entry point of the ``virtlevels`` command.

The CLI library is the standard library's argparse: no dependency, and a plugin adds a
subcommand by registering a :class:`~virtlevels.registry.Command` whose ``configure`` receives
its own ``ArgumentParser`` (which may add nested subparsers, as ``machine run`` does).
Errors are one line on stderr and a non-zero exit; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from virtlevels import __version__
from virtlevels.errors import VirtlevelsError

EXIT_ERROR = 1
EXIT_USAGE = 2


def _global_parser(add_help: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="virtlevels",
        description="The taxonomy of virtualization, runnable.",
        add_help=add_help,
    )
    parser.add_argument("--version", action="version", version=f"virtlevels {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    parser.add_argument("--seed", type=int, default=0, help="seed of the World's random source (default 0)")
    return parser


def main(argv: Sequence[str] | None = None, *, plugins: Sequence[Any] = ()) -> int:
    """Run the CLI; ``plugins`` are registered in its World (for tests and embedding)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    pre, _rest = _global_parser(add_help=False).parse_known_args(args_list)
    debug = pre.debug
    try:
        return _run(args_list, pre.seed, plugins)
    except KeyboardInterrupt:
        print("virtlevels: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`virtlevels levels | head`): stop quietly, as Unix tools do on
        # SIGPIPE; point stdout at devnull so the interpreter's final flush does not fail again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except VirtlevelsError as exc:
        if debug:
            raise
        print(f"virtlevels: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - the promise is: no traceback without --debug
        if debug:
            raise
        print(
            f"virtlevels: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _run(argv: list[str], seed: int, plugins: Sequence[Any]) -> int:
    from virtlevels.world import World

    world = World(seed)
    for plugin in plugins:
        world.register_plugin(plugin)
    commands = world.registry.commands  # runs the registration hooks, so their failures are known too
    for failure in world.plugins.failures:
        where = "failed to load" if failure.where == "load" else f"raised in {failure.where}"
        print(f"virtlevels: warning: plugin {failure.plugin!r} {where}: {failure.error}", file=sys.stderr)

    parser = _global_parser(add_help=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in commands.items():
        cmd_parser = sub.add_parser(name, help=command.help, description=command.help)
        command.configure(cmd_parser)
        cmd_parser.set_defaults(_command=command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    args.world = world
    return int(args._command.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
