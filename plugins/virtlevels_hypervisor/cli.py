"""``virtlevels vm``: run a guest kernel under a technique, check equivalence, microbenchmarks."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from virtlevels.errors import ConfigError
from virtlevels.machine.image import Image
from virtlevels.registry import Command
from virtlevels_hypervisor.techniques import TECHNIQUES

TECHNIQUE_CHOICES = tuple(TECHNIQUES)


def load_guest(spec: str, technique: str | None = None, timer_interval: int | None = None) -> Image:
    """A guest image from ``spec``: ``teachos[:prog,prog...]`` (the paravirtual build under ``pv``),
    ``teachos-popf[:prog,...]`` (teachos whose idle loop enables interrupts with the x86-like
    ``popf``: run it with ``--isa x86-like``), an ELF file or a .S file (firmware + S-mode kernel,
    as teachos is built)."""
    if spec == "teachos-popf" or spec.startswith("teachos-popf:"):
        from virtlevels_hypervisor.techniques.trap import build_teachos_popf

        names = [p for p in spec.partition(":")[2].split(",") if p] or None
        return build_teachos_popf(names)  # type: ignore[no-any-return]
    if spec == "teachos" or spec.startswith("teachos:"):
        from virtlevels.guests import build_teachos

        progs = [p for p in spec.partition(":")[2].split(",") if p] or None
        kw: dict[str, Any] = {"paravirt": technique == "pv"}
        if timer_interval is not None:
            kw["timer_interval"] = timer_interval
        return build_teachos(progs, **kw)
    from virtlevels.machine.cli import load_program

    return load_program(spec)


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="vm_command", metavar="VERB", required=True)
    run = sub.add_parser("run", help="run a guest kernel in a VM (or natively with --technique native)")
    run.add_argument("kernel", help="teachos[:prog,...] or an ELF/.S image (firmware + S-mode kernel)")
    run.add_argument("--technique", default="hw", choices=(*TECHNIQUE_CHOICES, "native"))
    run.add_argument("--mode", default="native", choices=("native", "hosted"))
    run.add_argument("--profile", default="default", help="cost profile name or TOML file")
    run.add_argument("--isa", action="append", default=[], metavar="EXT", help="ISA extension, e.g. x86-like")
    run.add_argument("--max-instructions", type=int, default=50_000_000, metavar="N")
    run.add_argument("--stats", action="store_true", help="efficiency figures on stderr")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    chk = sub.add_parser("check", help="run a guest natively and under techniques; report divergence")
    chk.add_argument("kernel")
    chk.add_argument("--levels", default=None, help="comma-separated, e.g. trap,hw:hosted (default: all)")
    chk.add_argument("--isa", action="append", default=[], metavar="EXT")
    chk.add_argument("--max-instructions", type=int, default=20_000_000, metavar="N")
    chk.add_argument("--json", action="store_true")
    mb = sub.add_parser("microbench", help="Adams & Agesen (ASPLOS 2006) microbenchmarks (cycles/op)")
    mb.add_argument("--techniques", default="native,emulate,trap,bt,hw,trap-in-trap",
                    help="comma-separated columns (default: native, the techniques, trap-in-trap)")
    mb.add_argument("--benches", default=None, help="comma-separated benchmarks (default: all)")
    mb.add_argument("--iterations", type=int, default=50, metavar="N")
    mb.add_argument("--profile", default="2006-p4", help="cost profile (default: 2006-p4)")
    mb.add_argument("--raw", action="store_true", help="do not subtract the empty loop")
    mb.add_argument("--json", action="store_true")
    for verb, text in (("define", "validate a domain spec (TOML or JSON) and print it normalised"),
                       ("start", "define and start a domain from a spec and run it until it powers off")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("spec", help="a domain spec file (.toml or .json)")
        if verb == "start":
            p.add_argument("--max-instructions", type=int, default=None, metavar="N")
            p.add_argument("--snapshot-after", type=int, default=None, metavar="N",
                           help="pause after N guest instructions, save a snapshot to --output, resume")
            p.add_argument("-o", "--output", default=None, help="snapshot file for --snapshot-after")
            p.add_argument("--json", action="store_true")
    rst = sub.add_parser("restore", help="restore a domain snapshot and run it until it powers off")
    rst.add_argument("snapshot")
    rst.add_argument("--json", action="store_true")
    mig = sub.add_parser("migrate", help="start a domain, live-migrate it to a second machine, finish there")
    mig.add_argument("spec")
    mig.add_argument("--after", type=int, default=100_000, metavar="N", help="guest instructions first")
    mig.add_argument("--dirty-threshold", type=int, default=8, metavar="PAGES")
    mig.add_argument("--max-rounds", type=int, default=30)
    mig.add_argument("--json", action="store_true")


def _run(args: argparse.Namespace) -> int:
    if args.vm_command == "run":
        return _vm_run(args)
    if args.vm_command == "check":
        return _vm_check(args)
    if args.vm_command == "microbench":
        return _vm_microbench(args)
    if args.vm_command in ("define", "start", "restore", "migrate"):
        return _vm_domain(args)
    raise ConfigError(f"unknown vm verb {args.vm_command!r}")  # pragma: no cover - argparse refuses


def _vm_run(args: argparse.Namespace) -> int:
    from virtlevels.machine.cli import exit_status
    from virtlevels_hypervisor.equivalence import Level, observe

    if args.max_instructions < 1:
        raise ConfigError(f"--max-instructions must be at least 1, got {args.max_instructions}")
    tech = None if args.technique == "native" else args.technique
    image = load_guest(args.kernel, tech)
    level = Level() if tech is None else Level(tech, args.mode)
    obs = observe(
        image, level, limit=args.max_instructions, isa_extensions=tuple(args.isa), profile=args.profile
    )
    status = exit_status(obs.status, obs.exit_code)
    if args.json:
        print(json.dumps({"level": obs.level, "status": obs.status, "exit_code": obs.exit_code,
                          "exit_status": status, "uart": obs.uart.decode("utf-8", "replace"),
                          "stats": obs.stats}, indent=2, sort_keys=True))
    else:
        sys.stdout.write(obs.uart.decode("utf-8", "replace"))
        sys.stdout.flush()
    if args.stats:
        _print_stats(obs.level, obs.stats)
    return status


def _print_stats(level: str, stats: dict[str, Any]) -> None:
    err = sys.stderr
    err.write(f"level: {level}\n")
    keys = ("cycles", "guest_instructions", "direct_instructions", "direct_fraction", "emulated_instructions",
            "translated_instructions", "callouts", "hypercalls", "shadow_updates", "exits_total")
    for key in keys:
        if key in stats:
            err.write(f"  {key:<26}{stats[key]:>14}\n")
    for title in ("exits", "cycles_by_category"):
        if stats.get(title):
            err.write(f"{title.replace('_', ' ')}:\n")
            for k, v in sorted(stats[title].items()):
                err.write(f"  {k:<26}{v:>14}\n")


def _vm_check(args: argparse.Namespace) -> int:
    from virtlevels_hypervisor.equivalence import Level, all_levels, check

    levels = all_levels() if args.levels is None else [Level.parse(s) for s in args.levels.split(",") if s]
    results = []
    # The paravirtual technique runs the paravirtual build of teachos; the others the native one.
    for pv in (False, True):
        chosen = [lv for lv in levels if (lv.technique == "pv") == pv]
        if not chosen:
            continue
        image = load_guest(args.kernel, "pv" if pv else None)
        results.append(check(image, chosen, limit=args.max_instructions, isa_extensions=tuple(args.isa)))
    ok = all(all(r.equivalent.values()) for r in results)
    if args.json:
        out: dict[str, Any] = {"equivalent": ok, "levels": {}}
        for r in results:
            for level, obs, diffs in r.results:
                out["levels"][level] = {
                    "equivalent": not diffs, "status": obs.status, "exit_code": obs.exit_code,
                    "differences": [str(d) for d in diffs],
                }
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        for r in results:
            print(r.render())
    return 0 if ok else 1


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _vm_microbench(args: argparse.Namespace) -> int:
    from virtlevels.cost import load_profile
    from virtlevels_hypervisor.microbench.build import BENCHMARKS
    from virtlevels_hypervisor.microbench.runner import run_columns
    from virtlevels_hypervisor.microbench.table import results_doc, table_report

    if args.iterations < 1:
        raise ConfigError(f"--iterations must be at least 1, got {args.iterations}")
    load_profile(args.profile)  # a bad profile fails before any run
    results = run_columns(
        _split(args.techniques), profile=args.profile, engine="fast",
        benches=_split(args.benches) if args.benches else list(BENCHMARKS),
        iterations=args.iterations, subtract_loop=not args.raw,
    )
    if args.json:
        print(json.dumps(results_doc(results, args.profile, args.iterations), indent=2, sort_keys=True))
    else:
        print(table_report(results, paper=True, raw=args.raw))
    return 0


def _vm_domain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from virtlevels.machine.cli import exit_status
    from virtlevels.world import World
    from virtlevels_hypervisor.domain import Domain, host_machine_for, load_spec

    world = World(entry_points=False)
    if args.vm_command == "define":
        print(json.dumps(load_spec(args.spec).to_dict(), indent=2, sort_keys=True))
        return 0
    if args.vm_command == "restore":
        try:
            data = Path(args.snapshot).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{args.snapshot}: cannot read: {exc.strerror}") from None
        dom = Domain.from_snapshot(world, data)
        result = dom.run(None)
        return _domain_done(dom, result, args.json, exit_status)
    spec = load_spec(args.spec)
    dom = Domain.from_spec(world, spec)
    dom.start()
    if args.vm_command == "migrate":
        from virtlevels_hypervisor.hypervisor import Hypervisor
        from virtlevels_hypervisor.migration import migrate

        dom.run(args.after)
        # The destination: a second machine built as the domain's own (same harts, RAM, profile).
        dest_host = host_machine_for(world, spec, f"{spec.name}-dest")
        dest = Hypervisor(dest_host, world, name=f"{spec.name}-dest-hv")
        report = migrate(dom, dest, dirty_threshold=args.dirty_threshold, max_rounds=args.max_rounds)
        result = dom.run(None)
        if not args.json:
            r = report.to_dict()
            sys.stderr.write(f"migration: rounds {len(r['rounds'])}, pages per round {r['pages_per_round']}, "
                             f"downtime {r['downtime_cycles']} cycles\n")
        return _domain_done(dom, result, args.json, exit_status, migration=report.to_dict())
    if args.snapshot_after is not None:
        if args.output is None:
            raise ConfigError("--snapshot-after needs --output FILE")
        dom.run(args.snapshot_after)
        dom.pause()
        Path(args.output).write_bytes(dom.snapshot())
        dom.resume()
    result = dom.run(args.max_instructions)
    return _domain_done(dom, result, args.json, exit_status)


def _domain_done(dom: Any, result: Any, as_json: bool, exit_status: Any, **extra: Any) -> int:
    code = exit_status(result.status, result.exit_code)
    if as_json:
        doc = {"state": dom.state.value, "status": result.status, "exit_code": result.exit_code,
               "exit_status": code, "console": dom.console_output(), **extra}
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        sys.stdout.write(dom.console_output())
        sys.stdout.flush()
    return code


COMMANDS = (Command("vm", "run guest kernels under the five virtualization techniques, check equivalence",
                    _configure, _run),)
