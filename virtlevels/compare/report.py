"""The comparison's Report: per workload and level, what it cost, what it shares, whether it
behaved like native. JSON (schema: virtlevels/compare/schema.json), table, CSV and plots."""

from __future__ import annotations

import csv
import io
import json
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from virtlevels.errors import VirtlevelsError

SCHEMA_VERSION = 1
COLUMNS = (
    "workload", "level", "status", "cycles", "overhead", "startup_cycles", "exits", "traps", "syscalls",
    "filter_evaluations", "memory_bytes", "equivalent", "isolation",
)  # fmt: skip


def schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) a report's ``to_dict()`` follows."""
    text = resources.files("virtlevels.compare").joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@attrs.frozen
class Report:
    """Results of one comparison (``results`` in workload, then level order)."""

    workloads: tuple[str, ...]
    levels: tuple[str, ...]
    profile: str
    isa: str | None
    seed: int
    results: tuple[dict[str, Any], ...]

    @classmethod
    def build(cls, workloads: list[str], levels: list[str], profile: str, isa: str | None, seed: int,
              raw: list[dict[str, Any]]) -> Report:  # fmt: skip
        """Add overhead and equivalence against each workload's native run."""
        native = {r["workload"]: r for r in raw if r["level"] == "native"}
        out = []
        for r in raw:
            r = dict(r)
            base = native.get(r["workload"])
            ok = r["status"] == "ok" and base is not None and base["status"] == "ok"
            r["overhead"] = round(r["cycles"] / base["cycles"], 4) if ok and base and base["cycles"] else None
            if base is None or "stdout_sha256" not in r or "stdout_sha256" not in base:
                r["equivalent"] = None
            else:
                r["equivalent"] = (r["stdout_sha256"], r.get("exit_status")) == (
                    base["stdout_sha256"], base.get("exit_status"))
            out.append(r)
        return cls(tuple(workloads), tuple(levels), profile, isa, seed, tuple(out))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "profile": self.profile,
            "isa": self.isa,
            "seed": self.seed,
            "workloads": list(self.workloads),
            "levels": list(self.levels),
            "results": [dict(r) for r in self.results],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def validate(self) -> None:
        from jsonschema import Draft202012Validator

        Draft202012Validator(schema()).validate(self.to_dict())

    def get(self, workload: str, level: str) -> dict[str, Any]:
        for r in self.results:
            if r["workload"] == workload and r["level"] == level:
                return r
        raise KeyError((workload, level))

    # -- views ------------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for r in self.results:
            iso = r.get("isolation") or {}
            rows.append({
                **{c: r.get(c) for c in COLUMNS},
                "isolation": f"kernel={iso.get('kernel', '?')}; "
                f"shares {','.join(iso.get('shared_with_host', []))}",
            })  # fmt: skip
        return rows

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        for row in self.rows():
            w.writerow({k: "" if v is None else v for k, v in row.items()})
        return buf.getvalue()

    def table_cells(self) -> list[tuple[str, ...]]:
        """The table's header and rows as strings (shared by the plain and the rich table)."""
        heads: tuple[str, ...] = ("workload", "level", "status", "cycles", "overhead", "startup", "exits",
                                  "syscalls", "filters", "memory", "equiv")  # fmt: skip
        cells: list[tuple[str, ...]] = [heads]
        for r in self.rows():
            ov = r["overhead"]
            cells.append((
                str(r["workload"]), str(r["level"]), str(r["status"]), _num(r["cycles"]),
                "-" if ov is None else f"{ov:.2f}x", _num(r["startup_cycles"]), _num(r["exits"]),
                _num(r["syscalls"]), _num(r["filter_evaluations"]), _num(r["memory_bytes"]),
                {True: "yes", False: "NO", None: "-"}[r["equivalent"]],
            ))  # fmt: skip
        return cells

    def to_table(self) -> str:
        """Plain text table."""
        cells = self.table_cells()
        heads = cells[0]
        widths = [max(len(row[i]) for row in cells) for i in range(len(heads))]
        lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                 strict=True))) for row in cells]  # fmt: skip
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def print_rich(self, file: Any = None, width: int | None = None) -> bool:
        """Print the table with rich (colours, borders) if rich is installed; False if it is not."""
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            return False
        cells = self.table_cells()
        table = Table(title=f"virtlevels compare (profile {self.profile})")
        for i, head in enumerate(cells[0]):
            table.add_column(head, justify="left" if i < 3 else "right")
        for row in cells[1:]:
            style = None if row[2] == "ok" and row[-1] != "NO" else "bold red"
            table.add_row(*row, style=style)
        Console(file=file, width=width).print(table)
        return True

    def render(self, fmt: str = "table") -> str:
        if fmt == "json":
            return self.to_json()
        if fmt == "csv":
            return self.to_csv()
        if fmt == "table":
            return self.to_table()
        raise VirtlevelsError(f"unknown format {fmt!r} (table, json, csv)")

    # -- plots ------------------------------------------------------------------------------------
    def plot(self, path: str | Path) -> list[Path]:
        """Two PNGs: overhead by level per workload (``path``) and the stacked cycle breakdown
        (``path`` with ``-breakdown`` before the suffix)."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise VirtlevelsError("plots need matplotlib: pip install 'virtlevels[plot]'") from exc
        out = Path(path)
        levels = list(self.levels)
        fig, ax = plt.subplots(figsize=(max(6, len(levels) * 1.2), 4))
        width = 0.8 / max(1, len(self.workloads))
        for j, wl in enumerate(self.workloads):
            ys = []
            for lv in levels:
                try:
                    ys.append(self.get(wl, lv).get("overhead") or 0)
                except KeyError:
                    ys.append(0)
            ax.bar([i + j * width for i in range(len(levels))], ys, width, label=wl)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(levels))], levels, rotation=30, ha="right")
        ax.set_ylabel("cycles / native cycles")
        ax.set_yscale("log")
        ax.set_title(f"overhead by level (profile {self.profile})")
        ax.legend(fontsize=7)
        fig.savefig(out, dpi=100, bbox_inches="tight")
        plt.close(fig)
        second = out.with_name(out.stem + "-breakdown" + out.suffix)
        cats = sorted({c for r in self.results for c in (r.get("cycles_by_category") or {})})
        labels = [f"{r['workload']}@{r['level']}" for r in self.results]
        fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.35), 4))
        bottom = [0.0] * len(labels)
        for c in cats:
            vals = [float((r.get("cycles_by_category") or {}).get(c, 0)) for r in self.results]
            ax.bar(range(len(labels)), vals, bottom=bottom, label=c)
            bottom = [a + b for a, b in zip(bottom, vals, strict=True)]
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_ylabel("cycles")
        ax.set_title("where the cycles went")
        ax.legend(fontsize=6)
        fig.savefig(second, dpi=100, bbox_inches="tight")
        plt.close(fig)
        return [out, second]


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)
