"""``virtlevels isa analyze|list``: Popek-Goldberg analysis of an ISA profile, and the registered profiles.

Exit status of ``isa analyze``: 0, whatever the theorems' verdicts (a failing theorem is a
result, not an error); 1 with ``--empirical`` when an observed class disagrees with the table
(the table is then wrong), or for an unknown profile.
"""

from __future__ import annotations

import argparse
import json

from virtlevels.machine.isa.analysis import (
    BASE_PROFILE,
    CLASS_NAMES,
    POPEK_GOLDBERG,
    ROBIN_IRVINE,
    Analysis,
    Classes,
    Verdict,
    analyze,
    table_for,
)
from virtlevels.registry import Command

_SHORT = {"privileged": "P", "control-sensitive": "C", "behaviour-sensitive": "B", "user-sensitive": "U",
          "innocuous": "I"}  # fmt: skip


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="isa_command", metavar="VERB", required=True)
    an = sub.add_parser("analyze", help="Popek-Goldberg classes of each instruction and Theorems 1 and 3")
    an.add_argument("--profile", default=BASE_PROFILE, metavar="NAME",
                    help=f"ISA profile (default {BASE_PROFILE}; see `virtlevels isa list`)")
    an.add_argument("--extension", action="append", default=[], metavar="NAME",
                    help="also apply this registered ISA extension (repeatable)")
    an.add_argument("--empirical", action="store_true",
                    help="run each instruction in U, S and M mode and compare what it did with the table")
    an.add_argument("--json", action="store_true", help="print the analysis as JSON")
    ls = sub.add_parser("list", help="list the ISA profiles and extensions plugins registered")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")


def _run(args: argparse.Namespace) -> int:
    if args.isa_command == "list":
        return _run_list(args)
    table = table_for(args.profile, args.world, args.extension)
    result = analyze(table, empirical=args.empirical)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(render(result))
    return 1 if result.mismatches else 0


def _mark(member: bool) -> str:
    return "yes" if member else "-"


def _letters(c: Classes) -> str:
    return "".join(_SHORT[n] for n in c.names())


def render(result: Analysis) -> str:
    """The text report: the class table, then the verdicts with the violators and why."""
    headers = ["instruction", "ext", *CLASS_NAMES]
    if result.empirical:
        headers += ["traps in U", "observed", "agrees"]
    lines_ = []
    for r in result.rows:
        cells = [r.name, r.ext, *(_mark(v) for v in r.declared.marks().values())]
        if r.empirical is not None:
            e = r.empirical
            cells += [e.user_trap or "no", _letters(e.classes),
                      "yes" if not e.mismatches else "NO: " + ", ".join(e.mismatches)]  # fmt: skip
        lines_.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines_)) for i, h in enumerate(headers)]
    out = [f"Popek-Goldberg classes of profile {result.profile} ({len(result.rows)} instructions)", ""]
    out.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for cells in lines_:
        out.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    out.append("")
    if result.empirical:
        out.append("observed: P privileged, C control-sensitive, B behaviour-sensitive, U user-sensitive, "
                   "I innocuous (one representative encoding, run in U, S and M under two configurations)")
        bad = result.mismatches
        out.append(f"empirical check: {len(bad)} mismatch(es)" + (": " + ", ".join(bad) if bad else ""))
        out.append("")
    counts = {name: sum(r.declared.marks()[name] for r in result.rows) for name in CLASS_NAMES}
    out.append(", ".join(f"{n} {name}" for name, n in counts.items()))
    out.append("")
    out += _verdict_lines(result.theorem1)
    out += _verdict_lines(result.theorem3)
    if not result.theorem1.holds:
        out.append("")
        out.append(
            "so trap-and-emulate cannot be equivalent on this profile: the VMM never sees these instructions"
            + ("; a hybrid VMM (interpreting virtual supervisor mode) would be." if result.theorem3.holds
               else ", and not even a hybrid VMM helps: use full emulation, binary translation, "
               "paravirtualization or hardware assistance.")  # fmt: skip
        )
    out.append("")
    out.append(f"references: {POPEK_GOLDBERG}; {ROBIN_IRVINE}")
    return "\n".join(out)


def _verdict_lines(v: Verdict) -> list[str]:
    lines_ = [v.line()]
    for viol in v.violators:
        models = f" (models {viol.models})" if viol.models else ""
        lines_.append(f"  {viol.name}{models}: {viol.why}")
    return lines_


def _run_list(args: argparse.Namespace) -> int:
    registry = args.world.registry
    base = len(table_for(BASE_PROFILE).instructions)
    rows: list[dict[str, str | int]] = [
        {"name": BASE_PROFILE, "kind": "profile", "plugin": "builtin", "instructions": base,
         "description": "RV32IMA + Zicsr + Zifencei + the M/S/U privileged instructions (the base)"},
    ]  # fmt: skip
    for name, entry in sorted(registry.entries["isa_extension"].items()):
        ext = entry.value
        table = table_for(BASE_PROFILE)
        ext.apply(table)
        rows.append({"name": name, "kind": "profile" if ext.profile else "extension", "plugin": entry.plugin,
                     "description": ext.description, "instructions": len(table.instructions)})  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        size = f"{row['instructions']} instructions"
        if row["name"] != BASE_PROFILE:
            size += f", {int(row['instructions']) - base} added"
        print(f"{row['name']} ({row['kind']}, from {row['plugin']}; {size})")
        print(f"  {row['description']}")
    return 0


COMMANDS = (Command("isa", "Popek-Goldberg analysis of ISA profiles; list the registered profiles",
                    _configure, _run),)
