"""Workload parameters change the work; bad parameters are clear errors; the registry lists the
standard workloads; compute's assembly agrees with its Python model and its C variant."""

from __future__ import annotations

import shutil

import pytest
from workloads_util import run_native

from virtlevels.errors import ConfigError
from virtlevels.registry import Workload
from virtlevels.workloads import WorkloadImage, parameters, standard_workloads
from virtlevels.workloads import compute as wl_compute
from virtlevels.world import World

BUILD = {w.name: w.build for w in standard_workloads()}


def test_the_registry_lists_the_standard_workloads() -> None:
    reg = World(entry_points=False).registry
    wls = reg.workloads
    assert sorted(wls) == ["compute", "fileio", "forkwait", "memory", "net", "startup", "syscall"]
    for name, wl in wls.items():
        assert isinstance(wl, Workload) and wl.name == name and wl.description and wl.tags
        image = wl.build()
        assert isinstance(image, WorkloadImage) and image.name == name
        assert isinstance(image.needs, frozenset) and isinstance(image.files, dict)
    assert {e.plugin for e in reg.entries["workload"].values()} == {"builtin"}  # the core's own plugin
    assert wls["net"].build().needs == frozenset({"net", "fork"})
    assert wls["compute"].build().needs == frozenset()


@pytest.mark.parametrize(
    ("name", "small", "big"),
    [
        ("compute", {"iterations": 5}, {"iterations": 15}),
        ("syscall", {"calls": 10}, {"calls": 100}),
        ("fileio", {"kib": 2}, {"kib": 8}),
        ("memory", {"pages": 4}, {"pages": 40}),
        ("forkwait", {"children": 2}, {"children": 8}),
        ("net", {"pings": 2}, {"pings": 6}),
    ],
)
def test_parameters_change_the_work(name: str, small: dict[str, int], big: dict[str, int]) -> None:
    a, b = BUILD[name](**small), BUILD[name](**big)
    assert a.expected_stdout != b.expected_stdout and a.elf != b.elf
    assert a.params == {**{k: p.default for k, p in parameters(name).items()}, **small}
    ra, _ = run_native(a)
    rb, _ = run_native(b)
    assert ra.ok(a) and rb.ok(b), (ra, rb)
    assert rb.cycles > ra.cycles


def test_compute_sizes_all_feed_the_checksum() -> None:
    base = wl_compute.reference(6, 8, 3, 16)
    for change in ({"nodes": 9}, {"matrix": 4}, {"text": 17}):
        args = {"iterations": 6, "nodes": 8, "matrix": 3, "text": 16, **change}
        assert wl_compute.reference(**args) != base, change
        image = BUILD["compute"](**args)
        r, _ = run_native(image)
        assert r.ok(image), (change, r.stdout)


def test_presets() -> None:
    assert BUILD["syscall"](preset="large").params["calls"] == 20_000
    assert BUILD["syscall"](preset="small") == BUILD["syscall"]()
    assert BUILD["fileio"](preset="large", kib=3).params["kib"] == 3  # explicit values win


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("compute", {"iters": 3}, "workload 'compute': unknown parameter 'iters' (known: iterations, lang"),
        ("syscall", {"calls": 0}, "workload 'syscall': parameter 'calls' must be in 1..10000000, got 0"),
        ("memory", {"pages": "8"}, "workload 'memory': parameter 'pages' must be an integer, got '8'"),
        ("net", {"port": True}, "parameter 'port' must be an integer, got True"),
        ("fileio", {"preset": "huge"}, "workload 'fileio': unknown preset 'huge' (known: large, small)"),
        ("startup", {"x": 1}, "workload 'startup': unknown parameter 'x' (known: none)"),
    ],
)
def test_bad_parameters_are_clear_errors(name: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as ei:
        BUILD[name](**params)
    assert message in str(ei.value)


def test_builds_are_deterministic() -> None:
    for w in standard_workloads():
        assert w.build() == w.build()


NO_GCC = shutil.which("riscv64-unknown-elf-gcc") is None


@pytest.mark.skipif(NO_GCC, reason="riscv64-unknown-elf-gcc not installed")
def test_compute_in_c_prints_what_the_assembly_prints() -> None:
    asm = BUILD["compute"](iterations=12)
    c = BUILD["compute"](iterations=12, lang=1)
    assert c.elf != asm.elf and c.expected_stdout == asm.expected_stdout
    rc, _ = run_native(c)
    ra, _ = run_native(asm)
    assert rc.ok(c) and rc.stdout == ra.stdout


def test_compute_in_c_without_gcc_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from virtlevels.workloads import compute_c

    monkeypatch.setattr(compute_c.shutil, "which", lambda _name: None)
    compute_c.build_c_elf.cache_clear()
    with pytest.raises(ConfigError, match="lang=1 needs riscv64-unknown-elf-gcc"):
        BUILD["compute"](iterations=3, lang=1)
