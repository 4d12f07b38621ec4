"""``virtlevels compare``: every workload at every level, as a table, JSON or CSV, with plots."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from virtlevels.registry import Command


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v for item in values for v in item.split(",") if v]


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workloads", nargs="+", metavar="NAME",
                   help="workloads (default: every registered one)")
    p.add_argument("--levels", nargs="+", metavar="SPEC",
                   help="level specs, e.g. native hw:trap os:container@hw:hw (default: all installed)")
    p.add_argument("--profile", default="default", help="cost profile (default, modern-x86, 2006-p4)")
    p.add_argument("--isa", default=None, help="ISA profile for every machine, e.g. x86-like")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--plot", metavar="OUT.png", help="write the overhead chart (and OUT-breakdown.png)")
    p.add_argument("--graph", nargs=2, metavar=("LEVEL", "OUT"),
                   help="draw LEVEL's resource graph (the stack with a workload in it) to OUT.png or OUT.dot")
    p.add_argument("--jobs", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--executor", choices=("local", "dask"), default="local")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (with --executor dask)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    from virtlevels.compare import compare

    progress: Any = None
    if not args.no_progress and sys.stderr.isatty():

        def progress(done: int, total: int, job: Any) -> None:
            bar = "#" * (30 * done // total)
            print(f"\r[{bar:<30}] {done}/{total} {job.workload}@{job.level}"[:100].ljust(100),
                  end="" if done < total else "\n", file=sys.stderr, flush=True)  # fmt: skip

    report = compare(
        _split(args.workloads), _split(args.levels), args.profile, args.jobs,
        None if args.executor == "local" else args.executor, scheduler=args.scheduler, isa=args.isa,
        seed=args.seed, progress=progress, world=args.world,
    )  # fmt: skip
    if not (args.format == "table" and sys.stdout.isatty() and report.print_rich()):
        print(report.render(args.format))
    if args.plot:
        for path in report.plot(args.plot):
            print(f"wrote {path}", file=sys.stderr)
    if args.graph:
        from virtlevels.compare.runner import draw_level

        level, out = args.graph
        print(f"wrote {draw_level(level, out, profile=args.profile, isa=args.isa, seed=args.seed)}",
              file=sys.stderr)
    return 0 if all(r["status"] == "ok" for r in report.results) else 3


COMMANDS = [Command("compare", "run workloads at every level side by side", configure, run)]
