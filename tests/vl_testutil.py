"""Helpers shared by the tests (importable as `vl_testutil`: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_distribution(site: Path, dist: str, version: str, entry_points: dict[str, str]) -> Path:
    """Write a minimal installed-distribution record (dist-info) so importlib.metadata finds it."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = ["[virtlevels]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site
