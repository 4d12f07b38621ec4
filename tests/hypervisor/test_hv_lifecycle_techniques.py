"""Snapshots and live migration under every technique (the lifecycle tests use full emulation)."""

from __future__ import annotations

import pytest
from virtlevels_hypervisor.domain import Domain, spec_from
from virtlevels_hypervisor.equivalence import group_lines, host_machine
from virtlevels_hypervisor.hypervisor import Hypervisor
from virtlevels_hypervisor.migration import migrate

from virtlevels.world import World

TECHNIQUES = ["emulate", "trap", "bt", "pv", "hw"]


def spec(technique: str):  # type: ignore[no-untyped-def]
    return spec_from({"name": "d", "memory": "16MiB", "technique": technique,
                      "kernel": {"programs": ["hello", "counter", "counter"]}})  # fmt: skip


def reference(technique: str) -> dict[str, list[str]]:
    d = Domain.from_spec(World(entry_points=False), spec(technique))
    d.start()
    assert d.run(None).status == "pass"
    return group_lines(d.console_output())


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_snapshot_restore_and_migration_keep_the_guest_equivalent(technique: str) -> None:
    want = reference(technique)
    d = Domain.from_spec(World(entry_points=False), spec(technique))
    d.start()
    d.run(60_000)
    snap = d.snapshot()
    assert Domain.from_snapshot(World(entry_points=False), snap).snapshot() == snap  # byte-exact
    d.run(50_000)
    d.restore(snap)  # back in time, in place
    assert d.run(None).status == "pass" and group_lines(d.console_output()) == want
    elsewhere = Domain.from_snapshot(World(entry_points=False), snap)
    assert elsewhere.run(None).status == "pass" and group_lines(elsewhere.console_output()) == want
    world = World(entry_points=False)
    moving = Domain.from_spec(world, spec(technique))
    moving.start()
    moving.run(60_000)
    report = migrate(moving, Hypervisor(host_machine(world, technique)))
    assert report.status == "completed" and report.total_pages > 0
    assert moving.run(None).status == "pass" and group_lines(moving.console_output()) == want


@pytest.mark.parametrize("technique", ["trap", "hw"])
def test_snapshot_keeps_the_firmware_hart_states(technique: str) -> None:
    # Two vCPUs: the SBI firmware keeps vCPU 1 STOPPED (HSM) until the kernel starts it; a
    # snapshot carries that state, so the restored VM does not run a hart the guest never started.
    s = spec_from({"name": "d", "memory": "16MiB", "vcpus": 2, "technique": technique,
                   "kernel": {"programs": ["hello", "counter"]}})  # fmt: skip
    d = Domain.from_spec(World(entry_points=False), s)
    d.start()
    d.run(40_000)
    assert d.vm is not None and d.vm.hsm_stopped == {1}
    restored = Domain.from_snapshot(World(entry_points=False), d.snapshot())
    assert restored.vm is not None and restored.vm.hsm_stopped == {1}
    assert restored.run(None).status == "pass"


@pytest.mark.parametrize("technique", ["trap", "bt", "pv", "hw"])
def test_restore_in_place_on_the_fast_engine(technique: str) -> None:
    # The host's block translator caches guest code: a restore that rewrites guest RAM in place
    # must go through the host's store watchers, or stale translations would run.
    from virtlevels.guests import build_teachos

    image = build_teachos(["hello", "counter", "counter"], paravirt=technique == "pv")
    ref = Hypervisor(host_machine(None, technique)).create_vm(technique)
    ref.load(image)
    want = group_lines(ref.run(20_000_000, engine="fast").uart)
    vm = Hypervisor(host_machine(None, technique)).create_vm(technique)
    vm.load(image)
    vm.run(60_000, engine="fast")
    snap = vm.snapshot()
    vm.run(80_000, engine="fast")
    vm.restore(snap)
    assert vm.run(20_000_000, engine="fast").status == "pass"
    assert group_lines(vm.console_output()) == want
