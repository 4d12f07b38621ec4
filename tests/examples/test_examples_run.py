"""Each script in examples/ runs as ``python examples/NAME.py`` (in a subprocess, small sizes) and
prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, cwd=EXAMPLES.parent, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_compare_levels_prints_table_and_per_call_cost() -> None:
    out = run_example("compare_levels.py", "--calls", "20")
    for level in ("native", "hw:trap", "hw:hw"):
        assert re.search(rf"^syscall\s+{re.escape(level)}\s+ok\s", out, re.M), out
    assert re.search(r"^compute\s+hw:hw\s+ok\s", out, re.M)
    per_call = dict(re.findall(r"^\s+(hw:\w+)\s+(\d+)\s+\(exits", out, re.M))
    assert set(per_call) == {"hw:trap", "hw:hw"}
    # A VM makes every system call dearer than native's; trap-and-emulate more than hardware assist.
    assert int(per_call["hw:trap"]) > int(per_call["hw:hw"]) > 0
    assert "same output as native: True" in out


def test_write_a_plugin_registers_and_runs_a_new_workload() -> None:
    out = run_example("write_a_plugin.py", "--rounds", "7")
    assert "registered: sumsq" in out
    expected = sum(i * i for i in range(1, 8))
    assert f"native printed: sumsq: rounds=7 sum=0x{expected:08x}" in out
    for level in ("native", "hw:emulate", "hw:trap", "hw:hw"):
        assert re.search(rf"^sumsq\s+{re.escape(level)}\s+ok\s.*yes$", out, re.M), out
    assert "every level printed what native printed" in out


def test_coursework_session_solves_and_grades() -> None:
    out = run_example("coursework_session.py", "--exercise", "nat-table", "--seed", "3")
    assert "== nat-table (service), seed 3: problem ==" in out
    assert "== answer" in out
    m = re.search(r"grade: (\d+)/(\d+) tests passed", out)
    assert m is not None and m.group(1) == m.group(2) and int(m.group(2)) > 0
