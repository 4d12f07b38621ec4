"""The comparison harness: level specs, runs at every level, JSON schema, executors, equivalence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import virtlevels
from virtlevels.compare import LevelError, LevelSpec, compare, run_job, schema
from virtlevels.compare.runner import Job

FAST = [
    "native", "hw:emulate", "hw:trap", "hw:hw", "os:container", "process:docker-default", "library:ltrace",
]


def test_level_specs_parse_and_impossible_stacks_say_why() -> None:
    assert LevelSpec.parse("os:container@hw:hardware-assisted").text == "os:container@hw:hw"
    assert [str(x) for x in LevelSpec.parse("hw:trap@hw:trap").layers] == ["hw:trap", "hw:trap"]
    with pytest.raises(LevelError, match="needs a kernel, but os:container offers only a process"):
        LevelSpec.parse("process:docker-default@os:container")
    with pytest.raises(LevelError, match="H extension"):
        LevelSpec.parse("hw:hw@hw:trap")
    with pytest.raises(LevelError, match="unknown technique"):
        LevelSpec.parse("hw:nope")


def test_every_level_runs_and_is_equivalent_and_json_follows_the_schema() -> None:
    from jsonschema import Draft202012Validator

    levels = [*FAST, "os:container@hw:hw", "hw:trap@hw:trap", "hw:trap:hosted"]
    report = virtlevels.compare(["hello"], levels)  # the module is callable
    doc = json.loads(report.to_json())
    Draft202012Validator(schema()).validate(doc)
    for lv in levels:
        r = report.get("hello", lv)
        assert r["status"] == "ok", r
        assert r["equivalent"] is True and r["stdout"] == "hello\n"
    native = report.get("hello", "native")
    assert native["overhead"] == 1.0 and native["exits"] == 0
    assert report.get("hello", "hw:trap")["exits"] > 0
    assert report.get("hello", "hw:trap@hw:trap")["cycles"] > report.get("hello", "hw:trap")["cycles"]
    assert report.get("hello", "process:docker-default")["filter_evaluations"] > 0
    assert report.get("hello", "os:container")["isolation"]["container"] is True
    assert report.get("hello", "hw:hw")["isolation"]["kernel"] == "own"
    bad = dict(doc, seed="x")
    with pytest.raises(Exception, match="is not of type"):
        Draft202012Validator(schema()).validate(bad)


def test_x86like_trap_and_emulate_is_not_equivalent() -> None:
    report = compare(["sensitive"], ["hw:emulate", "hw:trap", "hw:hw"], isa="x86-like")
    eq = {lv: report.get("sensitive", lv)["equivalent"] for lv in ("hw:emulate", "hw:trap", "hw:hw")}
    assert eq == {"hw:emulate": True, "hw:trap": False, "hw:hw": True}


def test_runs_are_deterministic() -> None:
    assert run_job(Job("hello", "hw:trap")) == run_job(Job("hello", "hw:trap"))


def test_identical_serial_jobs2_and_dask() -> None:
    levels = ["native", "hw:trap", "os:container"]
    serial = compare(["hello"], levels).to_json()
    assert compare(["hello"], levels, jobs=2).to_json() == serial
    distributed = pytest.importorskip("dask.distributed", reason="dask[distributed] is not installed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:  # fmt: skip
        got = compare(["hello"], levels, executor="dask", scheduler=cluster.scheduler_address).to_json()
    assert got == serial


def test_cli_formats_and_plot(tmp_path, run_cli) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("compare", "--workloads", "hello", "--levels", "native", "hw:trap", "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert {x["level"] for x in json.loads(r.stdout)["results"]} == {"native", "hw:trap"}
    r = run_cli("compare", "--workloads", "hello", "--levels", "hw:trap", "--format", "csv",
                "--plot", str(tmp_path / "o.png"))  # fmt: skip
    assert r.exit_code == 0 and r.stdout.startswith("workload,level,status")
    assert (tmp_path / "o.png").stat().st_size > 0 and (tmp_path / "o-breakdown.png").stat().st_size > 0
    r = run_cli("compare", "--levels", "hw:trap@os:container")
    assert r.exit_code != 0 and "offers only a process" in r.stderr


def test_rich_table_when_rich_is_installed() -> None:
    import io

    pytest.importorskip("rich")
    from virtlevels.compare import compare

    report = compare(["syscall"], ["native", "os:container"])
    out = io.StringIO()
    assert report.print_rich(file=out, width=160)
    text = out.getvalue()
    assert "os:container" in text and "syscall" in text


def test_every_workload_at_every_installed_level() -> None:
    from virtlevels.compare import compare
    from virtlevels.workloads import standard_workloads

    report = compare()  # the whole matrix, as `virtlevels compare` with no arguments
    names = {w.name for w in standard_workloads()}
    assert {r["workload"] for r in report.results} == names
    assert len({r["level"] for r in report.results}) >= 12
    bad = [(r["workload"], r["level"], r["error"]) for r in report.results if r["status"] != "ok"]
    assert bad == []
    assert all(r["equivalent"] for r in report.results)
    report.validate()


def test_resource_graph_picture_of_a_stack(tmp_path: Path) -> None:
    from virtlevels.compare.runner import draw_level

    out = draw_level("os:container@hw:hw", str(tmp_path / "stack.dot"))
    dot = Path(out).read_text()
    # The container, its kernel, the VM that kernel runs in, the hypervisor and the machine.
    for kind in ('kind="container"', 'kind="kernel"', 'kind="vm"', 'kind="hypervisor"', 'kind="machine"'):
        assert kind in dot
