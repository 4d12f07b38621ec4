"""A coursework session: generate a seeded exercise, show it, solve it; then set up a graded lab
in a temporary directory and grade its reference solution.

    python examples/coursework_session.py [--exercise shadow-pt] [--seed 7] [--lab seccomp-profile]

The same as ``virtlevels exercise new NAME --seed N``, ``exercise solve NAME --seed N``,
``exercise lab LAB --init DIR --reference`` and ``exercise grade LAB DIR`` (docs/coursework.md).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence

from virtlevels.exercises import labs
from virtlevels.world import World


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exercise", default="seccomp-decisions", help="an exercise name (exercise list)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--lab", default="seccomp-profile", help="a lab name, or 'none' to skip grading")
    args = ap.parse_args(argv)

    exercises = World(0).registry.exercises  # registered by the core's built-in plugin
    ex = exercises[args.exercise]
    problem = ex.generate(args.seed)
    print(f"== {ex.name} ({ex.level}), seed {args.seed}: problem ==")
    print(problem.text)
    answer = ex.solve(args.seed)
    print(f"== answer (computed by: {answer.method or 'the exercise solver'}) ==")
    print(answer.text)
    # Same seed, same problem: what lets an instructor regenerate any student's answer.
    assert ex.generate(args.seed).text == problem.text

    if args.lab == "none":
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        files = labs.init_lab(args.lab, tmp, reference=True)
        print(f"== lab {args.lab}: reference solution copied: {', '.join(p.name for p in files)} ==")
        score = labs.grade(args.lab, tmp)
        print(f"grade: {score.passed}/{score.total} tests passed")
        return 0 if score.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
