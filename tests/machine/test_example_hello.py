"""examples/hello.S runs as the README says."""

from __future__ import annotations

from vl_testutil import ROOT


def test_readme_hello_example(run_cli) -> None:
    result = run_cli("machine", "run", str(ROOT / "examples" / "hello.S"), "--stats")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "hello\n"
    assert "status: pass (code 0)" in result.stderr
