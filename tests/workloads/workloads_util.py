"""Helpers for the workload tests: boot a kernel natively, in a VM, or give it the vnet stack."""

from __future__ import annotations

from typing import Any

from virtlevels.kernel.kernel import Kernel
from virtlevels.machine.board import virt_machine
from virtlevels.workloads import RunResult, WorkloadImage, run
from virtlevels.world import World

MIB = 1 << 20


def with_needs(k: Kernel, image: WorkloadImage, *, lo_up_in_new_netns: bool = False) -> Kernel:
    """Fill what the image needs: "net" is the vnet plugin's IPv4 stack in every namespace.

    ``lo_up_in_new_netns`` brings lo up in each new network namespace, as runc does for a
    container with a new netns (runc's specconv adds a "loopback" network); the containers
    runtime does not do it itself yet."""
    if "net" in image.needs:
        from virtlevels_vnet.plugin import install

        install(k)
        if lo_up_in_new_netns:
            factory = k.nsctx.net_stack_factory

            def lo_up(ns: Any) -> Any:
                stack = factory(ns)
                stack.set_link_up("lo", True)
                return stack

            k.nsctx.net_stack_factory = lo_up
    return k


def native_kernel(image: WorkloadImage, engine: str = "fast", *, lo_up_in_new_netns: bool = False) -> Kernel:
    world = World(entry_points=False)
    k = Kernel(world, machine=virt_machine(world=world), engine=engine)
    return with_needs(k, image, lo_up_in_new_netns=lo_up_in_new_netns)


def vm_kernel(image: WorkloadImage, technique: str, engine: str = "fast", *,
              lo_up_in_new_netns: bool = False) -> tuple[Kernel, Any]:
    from virtlevels_hypervisor.equivalence import host_machine
    from virtlevels_hypervisor.hypervisor import Hypervisor

    world = World(entry_points=False)
    host = host_machine(world, technique, ram_size=64 * MIB)
    vm = Hypervisor(host).create_vm(technique, ram_size=16 * MIB)
    k = Kernel(world, machine=vm, engine=engine)
    return with_needs(k, image, lo_up_in_new_netns=lo_up_in_new_netns), vm


def run_native(image: WorkloadImage, engine: str = "fast") -> tuple[RunResult, Kernel]:
    k = native_kernel(image, engine)
    return run(k, image), k
