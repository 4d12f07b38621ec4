from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from vl_testutil import ROOT, write_distribution

import virtlevels
from virtlevels import __version__
from virtlevels.errors import ConfigError
from virtlevels.registry import Command, Registry

EXAMPLE = ROOT / "examples" / "third-party-plugin"


def test_version(run_cli) -> None:
    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"virtlevels {__version__}"


def test_levels_shows_levels_techniques_and_types(run_cli) -> None:
    result = run_cli("levels")
    assert result.exit_code == 0, result.stderr
    for text in ("hardware level", "OS level", "library level", "process level", "service level",
                 "full emulation", "trap-and-emulate", "binary translation", "paravirtualization",
                 "hardware-assisted", "native (Type 1)", "hosted (Type 2)"):
        assert text in result.stdout


def test_levels_json(run_cli) -> None:
    tree = json.loads(run_cli("levels", "--json").stdout)
    assert [c["label"].split(" level")[0] for c in tree["children"]] == ["hardware", "OS", "library",
                                                                         "process", "service"]


def test_plugins_lists_builtin(run_cli) -> None:
    result = run_cli("plugins", "--json")
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["builtin"]["builtin"] is True
    assert "command:levels" in rows["builtin"]["provides"]


def test_errors_are_one_line_without_traceback_and_debug_shows_it(run_cli) -> None:
    class Failing:
        @virtlevels.hookimpl
        def virtlevels_register_commands(self, registry: Registry) -> None:
            def run(args: object) -> int:
                raise ConfigError("spec.toml: field 'memory': not a size: 'lots'")

            registry.add_command(Command("explode", "fails", lambda p: None, run))

    result = run_cli("explode", plugins=[Failing()])
    assert result.exit_code == 1
    assert result.stderr == "virtlevels: error: spec.toml: field 'memory': not a size: 'lots'\n"
    with pytest.raises(ConfigError):  # --debug lets the exception (and its traceback) through
        run_cli("--debug", "explode", plugins=[Failing()])


def test_internal_errors_have_no_traceback(run_cli) -> None:
    class Buggy:
        @virtlevels.hookimpl
        def virtlevels_register_commands(self, registry: Registry) -> None:
            registry.add_command(Command("buggy", "bug", lambda p: None, lambda a: 1 // 0))

    result = run_cli("buggy", plugins=[Buggy()])
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert "internal error: ZeroDivisionError" in result.stderr


def test_usage_errors_exit_2(run_cli) -> None:
    assert run_cli("no-such-command").exit_code == 2
    assert run_cli().exit_code == 2


def _cli(args: list[str], site: Path, *extra_paths: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("VIRTLEVELS_DISABLE_PLUGINS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *map(str, extra_paths), str(ROOT)])
    return subprocess.run([sys.executable, "-m", "virtlevels.cli.main", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_third_party_plugin_appears_in_plugins_and_levels(tmp_path: Path) -> None:
    """The example package, with its entry-point metadata as pip would install it."""
    site = write_distribution(tmp_path, "virtlevels-example", "0.1.0", {"example": "virtlevels_example"})
    plugins = _cli(["plugins"], site, EXAMPLE)
    assert plugins.returncode == 0, plugins.stderr
    assert "example 0.1.0 (third-party) virtlevels_example" in plugins.stdout
    assert "provides: backend:greeter, workload:hello" in plugins.stdout
    levels = _cli(["levels"], site, EXAMPLE)
    assert levels.returncode == 0
    assert "call hooks: greeter [efficiency]" in levels.stdout


def test_plugin_raising_at_import_is_named_and_commands_still_work(tmp_path: Path) -> None:
    (tmp_path / "vl_explodes.py").write_text("raise RuntimeError('cannot import me')\n")
    site = write_distribution(tmp_path, "vl-explodes", "9.9", {"explodes": "vl_explodes"})
    for command in (["plugins"], ["levels"]):
        result = _cli(command, site)
        assert result.returncode == 0
        assert ("virtlevels: warning: plugin 'explodes' failed to load: "
                "RuntimeError: cannot import me") in result.stderr
        assert "Traceback" not in result.stderr
    assert "ERROR load: RuntimeError: cannot import me" in _cli(["plugins"], site).stdout
    env_disabled = _cli(["plugins"], site)
    assert env_disabled.returncode == 0


def test_disabled_plugin_is_not_loaded_by_cli(tmp_path: Path) -> None:
    (tmp_path / "vl_explodes.py").write_text("raise RuntimeError('cannot import me')\n")
    site = write_distribution(tmp_path, "vl-explodes", "9.9", {"explodes": "vl_explodes"})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]),
               VIRTLEVELS_DISABLE_PLUGINS="explodes")
    result = subprocess.run([sys.executable, "-m", "virtlevels.cli.main", "plugins"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 0 and "explodes" not in result.stderr + result.stdout
