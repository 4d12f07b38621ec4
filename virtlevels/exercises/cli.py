"""``virtlevels exercise ...``: list, new, solve (OSTEP-homework style) and the graded labs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from virtlevels.errors import ConfigError
from virtlevels.registry import Command, Exercise


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    sp = sub.add_parser("list", help="list exercises and labs")
    sp.add_argument("--json", action="store_true")
    for verb, help_ in (("new", "print a problem"), ("solve", "print a problem's answer")):
        sp = sub.add_parser(verb, help=help_)
        sp.add_argument("name")
        sp.add_argument("--seed", "-s", type=int, default=0, help="problem seed (default 0)")
        sp.add_argument("--json", action="store_true", help="print data as JSON")
        if verb == "new":
            sp.add_argument("-c", "--compute", action="store_true", help="also print the answer")
    sp = sub.add_parser("lab", help="copy a lab's skeleton and grader into a directory")
    sp.add_argument("name")
    sp.add_argument("--init", metavar="DIR", required=True, help="directory to create")
    sp.add_argument("--reference", action="store_true", help="copy the reference solution (instructors)")
    sp = sub.add_parser("grade", help="run a lab's grader in DIR and print the score")
    sp.add_argument("name")
    sp.add_argument("dir")
    sp.add_argument("-v", "--verbose", action="store_true", help="print pytest's output")


def _exercise(args: argparse.Namespace) -> Exercise:
    table: dict[str, Exercise] = args.world.registry.exercises
    ex = table.get(args.name)
    if ex is None:
        raise ConfigError(f"unknown exercise {args.name!r} (exercises: {', '.join(sorted(table))})")
    return ex


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _run(args: argparse.Namespace) -> int:
    from virtlevels.exercises import labs

    if args.verb == "list":
        exercises = args.world.registry.exercises
        if args.json:
            print(json.dumps({"exercises": [{"name": e.name, "level": e.level, "description": e.description}
                                            for e in exercises.values()],
                              "labs": [{"name": lab.name, "description": lab.description}
                                       for lab in labs.LABS.values()]}, indent=2))  # fmt: skip
            return 0
        print("exercises:")
        for e in exercises.values():
            print(f"  {e.name:18s} {e.level:9s} {e.description}")
        print("labs:")
        for lab in labs.LABS.values():
            print(f"  {lab.name:18s} {lab.description}")
        return 0
    if args.verb in ("new", "solve"):
        ex = _exercise(args)
        problem = ex.generate(args.seed)
        answer = ex.solve(args.seed) if args.verb == "solve" or args.compute else None
        if args.json:
            out: dict[str, Any] = {"name": ex.name, "seed": args.seed, "problem": problem.text}
            if answer is not None:
                out["answer"] = answer.text
                out["data"] = _jsonable(answer.data)
                out["method"] = answer.method
            print(json.dumps(out, indent=2))
            return 0
        if args.verb == "new":
            print(f"[{ex.name} seed {args.seed}]\n{problem.text}")
        if answer is not None:
            print(f"\nAnswer ({ex.name} seed {args.seed}):\n{answer.text}")
            if answer.method:
                print(f"(computed by: {answer.method})")
        return 0
    if args.verb == "lab":
        for path in labs.init_lab(args.name, args.init, reference=args.reference):
            print(path)
        return 0
    score = labs.grade(args.name, args.dir)
    if args.verbose:
        print(score.output)
    print(f"{args.name}: {score.passed}/{score.total} tests passed")
    for f in score.failures:
        print(f"  FAILED {f}")
    return 0 if score.ok else 1


COMMANDS = (
    Command(
        "exercise",
        "coursework: seeded exercises (list/new/solve) and graded labs (lab/grade)",
        _configure,
        _run,
    ),
)
