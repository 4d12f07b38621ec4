"""Grader of the cgroup-slo lab: the configuration applied to the kernel's cgroups and run."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtlevels.exercises.labs import support

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def config():
    return support.load_json(HERE / "cgroup.json")


@pytest.fixture(scope="module")
def memory(config):
    return support.memory_run(config)


def test_latency_cpu_share(config):
    share = support.cpu_shares(config)["latency"]
    assert share >= support.LATENCY_MIN_SHARE, f"/latency got {share:.1%} of the CPU"


def test_batch_is_oom_killed(memory):
    assert not memory["batch_survived"], "the batch job's leak was not stopped"


def test_batch_contained(memory):
    assert memory["batch_peak_pages"] <= support.BATCH_MAX_PAGES


def test_latency_survives(memory):
    assert memory["latency_survived"]
