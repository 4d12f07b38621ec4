"""VM creation is charged ([hypervisor] vm_create), so a VM starts slower than a container, as
published (Firecracker NSDI 2020, LightVM SOSP 2017); nested levels pay for every VM."""

from __future__ import annotations

from virtlevels.compare import compare
from virtlevels.cost import load_profile


def test_vm_startup_includes_vm_create_and_exceeds_container() -> None:
    report = compare(["startup"], ["os:container", "hw:hw", "hw:trap", "hw:trap@hw:trap"])
    create = load_profile("default").get("hypervisor", "vm_create")
    assert create > 0
    container = report.get("startup", "os:container")["startup_cycles"]
    one = report.get("startup", "hw:trap")["startup_cycles"]
    nested = report.get("startup", "hw:trap@hw:trap")["startup_cycles"]
    assert report.get("startup", "hw:hw")["startup_cycles"] > container
    assert one > container and one >= create
    # The outer VM's creation is start-up too: two VMs, two charges.
    assert nested - one >= create
