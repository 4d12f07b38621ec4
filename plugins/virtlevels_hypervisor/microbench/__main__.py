"""``python -m virtlevels_hypervisor.microbench``: run the microbenchmarks and print the results.

    python -m virtlevels_hypervisor.microbench --table                      # native, default profile
    python -m virtlevels_hypervisor.microbench --table --columns native,hw --profile 2006-p4
    python -m virtlevels_hypervisor.microbench --json --benches syscall,ptemod --iterations 200

Errors (an unknown column, benchmark or profile; a guest that failed) print one line on stderr and
exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from virtlevels.cost import load_profile
from virtlevels.errors import VirtlevelsError

from .build import BENCHMARKS
from .runner import COLUMNS, DEFAULT_ITERATIONS, run_columns
from .table import results_doc, table_report


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m virtlevels_hypervisor.microbench",
        description="Adams & Agesen (ASPLOS 2006) microbenchmarks: cycles per operation.",
    )
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--table", action="store_true",
                     help="print a markdown table (as in docs/hypervisor-microbench.md)")
    out.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--columns", default="native",
                    help=f"comma-separated columns (known: {', '.join(COLUMNS)}); default: native")
    ap.add_argument("--benches", default=",".join(BENCHMARKS),
                    help="comma-separated benchmarks (default: all)")
    ap.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS, help="N (default %(default)s)")
    ap.add_argument("--profile", default="default",
                    help="cost profile (default, modern-x86, 2006-p4, or a path)")
    ap.add_argument("--engine", default="interp", choices=("interp", "fast"), help="execution engine")
    ap.add_argument("--raw", action="store_true",
                    help="report (cycles(N) - cycles(0)) / N without subtracting the empty loop")
    ap.add_argument("--no-paper", action="store_true", help="leave out the paper's columns")
    ap.add_argument("--debug", action="store_true", help="show a traceback on errors")
    args = ap.parse_args(argv)
    try:
        load_profile(args.profile)  # a bad profile name fails here, before any run
        results = run_columns(
            _split(args.columns), profile=args.profile, engine=args.engine, benches=_split(args.benches),
            iterations=args.iterations, subtract_loop=not args.raw,
        )
    except VirtlevelsError as exc:
        if args.debug:
            raise
        print(f"microbench: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results_doc(results, args.profile, args.iterations), indent=2))
    elif args.table:
        print(table_report(results, paper=not args.no_paper, raw=args.raw))
    else:
        for col, rows in results.items():
            for name, r in rows.items():
                value = r.per_op if args.raw else r.net
                print(f"{col:10} {name:10} {value:10.1f} cycles/op")
    return 0


if __name__ == "__main__":
    sys.exit(main())
