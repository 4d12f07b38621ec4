"""The core's own subcommands: ``levels`` and ``plugins``."""

from __future__ import annotations

import argparse
import json

from virtlevels.registry import Command
from virtlevels.taxonomy import BackendInfo, render_tree, taxonomy_tree, tree_to_dict


def _configure_levels(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the tree as JSON")


def _run_levels(args: argparse.Namespace) -> int:
    infos: list[BackendInfo] = [b.info for b in args.world.registry.backends.values()]
    tree = taxonomy_tree(infos)
    if args.json:
        print(json.dumps(tree_to_dict(tree), indent=2))
    else:
        print(render_tree(tree))
        if not infos:
            print("\n(no level backends installed)")
    return 0


def _configure_plugins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")


def _run_plugins(args: argparse.Namespace) -> int:
    world = args.world
    registry = world.registry
    rows = []
    for name in world.plugins.order:
        rec = world.plugins.records[name]
        rows.append(
            {
                "name": rec.name,
                "version": rec.version,
                "builtin": rec.builtin,
                "module": rec.module,
                "hooks": list(rec.hooks),
                "provides": [f"{e.kind}:{e.name}" for e in registry.by_plugin(name)],
                "errors": [f"{f.where}: {f.error}" for f in world.plugins.failures if f.plugin == name],
            }
        )
    loaded = set(world.plugins.order)
    for failure in world.plugins.failures:
        if failure.plugin not in loaded:
            rows.append(
                {"name": failure.plugin, "version": "?", "builtin": False, "module": "", "hooks": [],
                 "provides": [], "errors": [f"{failure.where}: {failure.error}"]}
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        origin = "built-in" if row["builtin"] else "third-party"
        print(f"{row['name']} {row['version']} ({origin}) {row['module']}".rstrip())
        if row["hooks"]:
            print(f"  hooks: {', '.join(row['hooks'])}")
        if row["provides"]:
            print(f"  provides: {', '.join(row['provides'])}")
        for err in row["errors"]:
            print(f"  ERROR {err}")
    return 0


COMMANDS = (
    Command("levels", "print the taxonomy with the installed backends at each node",
            _configure_levels, _run_levels),
    Command("plugins", "list plugins: version, origin, hooks, what they provide, errors",
            _configure_plugins, _run_plugins),
)
