"""Compare a few workloads at a few levels from a script, then derive one figure from the Report.

    python examples/compare_levels.py [--calls N] [--profile default|modern-x86|2006-p4]

Runs ``syscall`` (a getpid loop) and ``compute`` (a CoreMark-like kernel) natively, under
trap-and-emulate and under hardware assistance, prints the table ``virtlevels compare`` would
print, and works out what one system call costs at each level: the extra cycles of the getpid
loop over native, divided by the number of calls (lmbench's "null call", docs/compare.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import virtlevels.compare as vc

LEVELS = ("native", "hw:trap", "hw:hw")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200, help="getpid calls in the syscall workload")
    ap.add_argument("--profile", default="default", help="cost profile (default, modern-x86, 2006-p4)")
    args = ap.parse_args(argv)

    report = vc.compare(
        ["syscall", "compute"], list(LEVELS), profile=args.profile,
        params={"syscall": {"calls": args.calls}, "compute": {"iterations": 5}},
    )  # fmt: skip
    print(report.to_table())
    print()
    # One derived figure: cycles per system call above native's, per level. The workload's loop
    # body is the same at every level, so the difference is what the level adds to each call.
    native = report.get("syscall", "native")
    print(f"extra cycles per getpid call ({args.calls} calls, profile {args.profile}):")
    for level in LEVELS[1:]:
        row = report.get("syscall", level)
        extra = (row["cycles"] - native["cycles"]) / args.calls
        same = row["equivalent"]
        print(f"  {level:10s} {extra:10.0f}   (exits {row['exits']}, same output as native: {same})")
    return 0 if all(r["status"] == "ok" for r in report.rows()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
