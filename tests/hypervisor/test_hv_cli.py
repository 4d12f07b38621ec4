"""``virtlevels vm``: run, check, microbench and the domain verbs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPEC = """
name = "web1"
memory = "16MiB"
technique = "emulate"
[kernel]
programs = ["hello", "counter"]
"""


def test_vm_run_prints_the_guest_console_and_stats(run_cli: Any) -> None:
    r = run_cli("vm", "run", "teachos:hello", "--technique", "emulate", "--stats")
    assert r.exit_code == 0
    assert r.stdout == "hello from teachos\n"
    assert "emulated_instructions" in r.stderr and "level: emulate:native" in r.stderr


def test_vm_run_json_and_exit_status_of_a_failing_guest(run_cli: Any) -> None:
    r = run_cli("vm", "run", "teachos:fault", "--technique", "emulate", "--mode", "hosted", "--json")
    doc = json.loads(r.stdout)
    assert doc["status"] == "fail" and doc["exit_code"] == 139 and r.exit_code == 139
    assert doc["level"] == "emulate:hosted" and "killed" in doc["uart"]


def test_vm_run_bad_input_is_one_line(run_cli: Any, tmp_path: Path) -> None:
    r = run_cli("vm", "run", str(tmp_path / "none.elf"))
    assert r.exit_code != 0 and r.stderr.count("\n") == 1 and "none.elf" in r.stderr
    r = run_cli("vm", "run", "teachos:nosuchprogram", "--technique", "emulate")
    assert r.exit_code != 0 and "nosuchprogram" in r.stderr and "Traceback" not in r.stderr


def test_vm_check_reports_equivalence(run_cli: Any) -> None:
    r = run_cli("vm", "check", "teachos:hello,counter", "--levels", "emulate,emulate:hosted", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["equivalent"] is True
    assert set(doc["levels"]) == {"emulate:native", "emulate:hosted"}


def test_vm_microbench_prints_cycles_per_operation(run_cli: Any) -> None:
    r = run_cli("vm", "microbench", "--techniques", "native,emulate", "--benches", "syscall",
                "--iterations", "4", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    native = doc["columns"]["native"]["syscall"]
    emulated = doc["columns"]["emulate"]["syscall"]
    assert 0 < native["net"] < emulated["net"]


def test_domain_verbs(run_cli: Any, tmp_path: Path) -> None:
    spec = tmp_path / "web1.toml"
    spec.write_text(SPEC)
    r = run_cli("vm", "define", str(spec))
    assert r.exit_code == 0 and json.loads(r.stdout)["name"] == "web1"
    snap = tmp_path / "web1.snap"
    full = run_cli("vm", "start", str(spec), "--snapshot-after", "30000", "-o", str(snap))
    assert full.exit_code == 0 and "hello from teachos" in full.stdout
    restored = run_cli("vm", "restore", str(snap))
    assert restored.exit_code == 0 and restored.stdout == full.stdout  # same guest, same console
    moved = run_cli("vm", "migrate", str(spec), "--after", "20000", "--json")
    doc = json.loads(moved.stdout)
    assert moved.exit_code == 0 and doc["console"] == full.stdout
    assert doc["migration"]["total_pages"] > 0


def test_domain_spec_errors_name_the_field(run_cli: Any, tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(SPEC.replace('technique = "emulate"', 'technique = "warp"'))
    r = run_cli("vm", "define", str(spec))
    assert r.exit_code != 0 and "bad.toml" in r.stderr and "technique" in r.stderr
