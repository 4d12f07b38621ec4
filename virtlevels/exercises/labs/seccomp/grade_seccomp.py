"""Grader of the seccomp-profile lab: the compiled filter's verdict for every call in the spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtlevels.exercises.labs import support

HERE = Path(__file__).parent
ALLOW, ERRNO, KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
EPERM = 1


@pytest.fixture(scope="module")
def profile():
    return support.load_json(HERE / "profile.json")


@pytest.mark.parametrize("name", support.SPEC_ALLOW)
def test_allowed(profile, name):
    assert support.decide(profile, name) == ALLOW


@pytest.mark.parametrize("name", support.SPEC_EPERM)
def test_eperm(profile, name):
    assert support.decide(profile, name) == ERRNO | EPERM


@pytest.mark.parametrize("name", support.SPEC_KILL_SAMPLES)
def test_killed(profile, name):
    assert support.decide(profile, name) & 0xFFFF0000 == KILL_PROCESS
