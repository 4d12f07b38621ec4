"""Shared test helpers. The `world`, `bare_world`, `register_plugin` and `run_cli` fixtures come
from virtlevels.testing (the pytest plugin shipped with the package)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from vl_testutil import write_distribution


@pytest.fixture
def fake_site(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``fake_site(dist, version, {name: module}, modules={file: source})``: a site dir on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    sys.path.insert(0, str(site))
    added: list[str] = []

    def make(
        dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str] | None = None
    ) -> Path:
        for filename, source in (modules or {}).items():
            (site / filename).write_text(source)
            added.append(filename.removesuffix(".py"))
        return write_distribution(site, dist, version, entry_points)

    yield make
    sys.path.remove(str(site))
    for mod in added:
        sys.modules.pop(mod, None)
