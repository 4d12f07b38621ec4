"""The markdown table of docs/hypervisor-microbench.md: our cycles per operation beside the paper's.

Adams & Agesen (ASPLOS 2006, section 6) report their nanobenchmarks for three configurations:
native, their software VMM (binary translation) and their hardware VMM (first-generation VT-x).
:data:`PAPER` holds those figures where we could verify them; a figure we could not find is
``None`` and prints as "n/f" (not found) rather than a guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .build import BENCHMARKS
from .runner import BenchResult


@attrs.frozen
class PaperRow:
    """One benchmark in Adams & Agesen 2006 (cycles on a 3.8 GHz Pentium 4 672); None = not found."""

    native: float | None = None
    software: float | None = None  # their software VMM (binary translation)
    hardware: float | None = None  # their hardware VMM (VT-x)
    #: what public sources say about the direction (a technique column vs native), or "".
    direction: str = ""
    #: (column, relation) pairs our numbers are checked against: relation "≈" (within 25% of
    #: native) or ">" (at least twice native), for :func:`direction_checks`.
    expect: tuple[tuple[str, str], ...] = ()


_VSPHERE = (
    "VMware vSphere Resource Management, 'Hardware-Assisted CPU Virtualization': with hardware "
    "assistance 'system calls or trap-intensive workloads run very close to native speed' while "
    "'updates to page tables lead to a large number of exits'"
)
_AA06_ABSTRACT = (
    "Adams & Agesen 2006, abstract: the hardware support 'offers no support for MMU virtualization', "
    "so page-table work is where the hardware VMM loses"
)

#: The paper's figures. We searched the stored copies of the paper available to us and could not
#: retrieve the numbers of its nanobenchmark figure, so every figure is None ("n/f"); the
#: directions quote sources we could read. Fill the numbers in from the paper, not from memory.
PAPER: dict[str, PaperRow] = {
    "syscall": PaperRow(direction=_VSPHERE, expect=(("hw", "≈"),)),
    "in": PaperRow(),
    "out": PaperRow(),
    "cr8wr": PaperRow(),
    "call/ret": PaperRow(),
    "pgfault": PaperRow(direction=_AA06_ABSTRACT + "; " + _VSPHERE, expect=(("hw", ">"), ("trap", ">"))),
    "divzero": PaperRow(),
    "ptemod": PaperRow(direction=_AA06_ABSTRACT + "; " + _VSPHERE, expect=(("trap", ">"), ("bt", ">"))),
}

PAPER_COLUMNS = (
    ("native", "paper native"), ("software", "paper software VMM"), ("hardware", "paper hardware VMM"),
)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/f"
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def markdown_table(
    results: Mapping[str, Mapping[str, BenchResult]],
    *,
    paper: bool = True,
    raw: bool = False,
    benches: Sequence[str] | None = None,
) -> str:
    """A markdown table: one row per benchmark, one column per entry of ``results``
    (``{column: {bench: BenchResult}}``), then the paper's three columns.

    Cells are net cycles per operation (the empty loop subtracted); ``raw`` prints
    ``(cycles(N) - cycles(0)) / N`` instead.
    """
    columns = list(results)
    names = list(benches) if benches is not None else _row_order(results)
    header = ["benchmark", "our operation", *columns]
    if paper:
        header += [title for _, title in PAPER_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for name in names:
        b = BENCHMARKS.get(name)
        row = [name, b.what if b else ""]
        for col in columns:
            r = results[col].get(name)
            row.append("" if r is None else _fmt(r.per_op if raw else r.net))
        if paper:
            p = PAPER.get(name, PaperRow())
            row += [_fmt(getattr(p, attr)) for attr, _ in PAPER_COLUMNS]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _row_order(results: Mapping[str, Mapping[str, BenchResult]]) -> list[str]:
    seen: list[str] = [n for n in BENCHMARKS if any(n in rows for rows in results.values())]
    for rows in results.values():
        seen += [n for n in rows if n not in seen]
    return seen


def direction_checks(results: Mapping[str, Mapping[str, BenchResult]]) -> list[str]:
    """One line per expectation of :data:`PAPER` whose columns are present: does our direction match?"""
    out: list[str] = []
    native = results.get("native", {})
    for name, row in PAPER.items():
        base = native.get(name)
        if base is None:
            continue
        for col, rel in row.expect:
            r = results.get(col, {}).get(name)
            if r is None:
                continue
            ratio = r.net / base.net if base.net else float("inf")
            ok = 0.8 <= ratio <= 1.25 if rel == "≈" else ratio >= 2.0
            word = "close to" if rel == "≈" else "far above"
            verdict = "matches" if ok else "does NOT match"
            out.append(f"- {name}: {col} is {ratio:.2f}x native; the sources say {word} native: {verdict}")
    return out


def table_report(
    results: Mapping[str, Mapping[str, BenchResult]], *, paper: bool = True, raw: bool = False
) -> str:
    """The markdown table, then (after a blank line) the direction checks when there are any."""
    checks = direction_checks(results)
    table = markdown_table(results, paper=paper, raw=raw)
    return table + "\n\n" + "\n".join(checks) if checks else table


def results_doc(
    results: Mapping[str, Mapping[str, BenchResult]], profile: str, iterations: int
) -> dict[str, Any]:
    """The results as a JSON document: ``{profile, iterations, columns: {column: {bench: ...}}}``."""
    columns = {c: {n: r.to_dict() for n, r in rows.items()} for c, rows in results.items()}
    return {"profile": profile, "iterations": iterations, "columns": columns}
