"""Every hook is documented in docs/plugins.md and exercised by a test (as datasette checks)."""

from __future__ import annotations

import inspect

import pytest
from vl_testutil import ROOT

from virtlevels import hookspecs

HOOKS = sorted(name for name, obj in vars(hookspecs).items()
               if name.startswith("virtlevels_") and inspect.isfunction(obj))


def test_hooks_are_found() -> None:
    assert "virtlevels_register_backends" in HOOKS and "virtlevels_on_trap" in HOOKS
    assert set(hookspecs.REGISTRATION_HOOKS) <= set(HOOKS)
    assert set(hookspecs.OBSERVER_HOOKS.values()) <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc) > 40, f"{hook} needs a docstring saying its parameters and when it is called"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert f"#### {hook}\n" in docs, f"docs/plugins.md has no section for {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_tested(hook: str) -> None:
    this = __file__.rsplit("/", 1)[-1]
    sources = [p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != this]
    assert any(f"def {hook}(" in src for src in sources), f"no test implements {hook}"
