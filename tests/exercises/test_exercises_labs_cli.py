"""Labs (graders fail on the skeleton, pass on the reference) and the `exercise` CLI."""

from __future__ import annotations

import json

import pytest

from virtlevels.exercises import labs


@pytest.mark.parametrize("name", sorted(labs.LABS))
def test_grader_fails_skeleton_passes_reference(name, tmp_path):
    labs.init_lab(name, tmp_path / "student")
    labs.init_lab(name, tmp_path / "ref", reference=True)
    skeleton = labs.grade(name, tmp_path / "student")
    reference = labs.grade(name, tmp_path / "ref")
    assert skeleton.total > 0 and not skeleton.ok and skeleton.failures
    assert reference.ok and reference.total == skeleton.total


def test_init_refuses_to_overwrite(tmp_path):
    labs.init_lab("seccomp-profile", tmp_path)
    with pytest.raises(Exception, match="already exists"):
        labs.init_lab("seccomp-profile", tmp_path)


def test_cli_list_new_solve(run_cli):
    r = run_cli("exercise", "list", "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert len(doc["exercises"]) >= 8 and len(doc["labs"]) >= 3
    new = run_cli("exercise", "new", "nat-table", "--seed", "4")
    assert new.exit_code == 0 and "Answer" not in new.stdout
    with_c = run_cli("exercise", "new", "nat-table", "--seed", "4", "-c")
    assert with_c.stdout.startswith(new.stdout.rstrip("\n")) and "Answer" in with_c.stdout
    solve = run_cli("exercise", "solve", "nat-table", "--seed", "4")
    assert solve.exit_code == 0 and solve.stdout.strip() in with_c.stdout


def test_cli_errors_are_one_line(run_cli, tmp_path):
    r = run_cli("exercise", "new", "no-such", "--seed", "1")
    assert r.exit_code == 1 and "unknown exercise 'no-such'" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("exercise", "grade", "cgroup-slo", str(tmp_path))
    assert r.exit_code == 1 and "missing cgroup.json" in r.stderr


def test_cli_lab_and_grade(run_cli, tmp_path):
    d = tmp_path / "lab"
    assert run_cli("exercise", "lab", "seccomp-profile", "--init", str(d)).exit_code == 0
    r = run_cli("exercise", "grade", "seccomp-profile", str(d))
    assert r.exit_code == 1 and "FAILED" in r.stdout
    (d / "profile.json").write_text((labs.LABS["seccomp-profile"].reference / "profile.json").read_text())
    r = run_cli("exercise", "grade", "seccomp-profile", str(d))
    assert r.exit_code == 0 and "18/18" in r.stdout
