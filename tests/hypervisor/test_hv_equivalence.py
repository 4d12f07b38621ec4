"""The differential harness: the same guest natively and at every technique and mode."""

from __future__ import annotations

import pytest
from hv_guestgen import RESULT, RESULT_SIZE, build_guest, guests
from hypothesis import HealthCheck, given, settings
from virtlevels_hypervisor.equivalence import Level, all_levels, check, compare, observe

from virtlevels.guests import build_teachos

LEVELS = [str(lv) for lv in all_levels()]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("programs", [["hello"], ["hello", "counter", "counter"], ["fault", "hello"]])
def test_teachos_is_equivalent_at_every_level(level: str, programs: list[str]) -> None:
    lv = Level.parse(level)
    image = build_teachos(programs, paravirt=lv.technique == "pv")
    native = observe(build_teachos(programs), "native")
    obs = observe(image, lv)
    assert obs.status in ("pass", "fail")
    assert compare(native, obs) == []


def test_the_harness_reports_a_difference() -> None:
    # Two different guests must not compare equal: the checker can fail.
    a = observe(build_guest([1] * 10, ["addi t0, t0, 1"]), "native", memory=[(RESULT, RESULT_SIZE)])
    b = observe(build_guest([1] * 10, ["addi t0, t0, 2"]), "native", memory=[(RESULT, RESULT_SIZE)])
    diffs = compare(a, b)
    assert len(diffs) == 1 and "memory" in diffs[0].what


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(image=guests)
def test_random_guests_leave_the_same_state_at_every_native_level(image: object) -> None:
    levels = [lv for lv in all_levels(("native",)) if lv.technique != "pv"]
    report = check(image, levels, memory=[(RESULT, RESULT_SIZE)], per_process=False)  # type: ignore[arg-type]
    assert report.native.status == "pass"
    bad = {level: [str(d) for d in diffs] for level, _obs, diffs in report.results if diffs}
    assert bad == {}


def test_x86like_divergence_is_detected_under_trap_and_absent_elsewhere() -> None:
    from virtlevels_hypervisor.techniques.trap import SLEEPER_SOURCE, build_teachos_popf

    from virtlevels.guests.builder import UserProgram

    x86 = ("x86-like",)
    image = build_teachos_popf()
    levels = [Level(t) for t in ("emulate", "trap", "bt", "hw")] + [Level("emulate", "hosted")]
    report = check(image, levels, isa_extensions=x86, limit=2_000_000)
    assert report.native.status == "pass"
    eq = report.equivalent
    assert eq.pop("trap:native") is False
    assert eq == {str(lv): True for lv in levels if lv.technique != "trap"}
    diverged = dict((level, diffs) for level, _obs, diffs in report.results)["trap:native"]
    assert any("output" in d.what or d.what == "exit" for d in diverged)
    # Paravirtualization: the paravirtual build of the same kernel asks the VMM instead of using
    # popf, so it cannot be caught by the unprivileged sensitive instruction at all.
    pv_image = build_teachos([UserProgram("sleeper", SLEEPER_SOURCE, "sleeper.S")], paravirt=True)
    assert compare(report.native, observe(pv_image, Level("pv"), isa_extensions=x86)) == []
