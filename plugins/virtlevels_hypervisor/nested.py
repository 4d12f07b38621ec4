"""Nested virtualization (Popek & Goldberg 1974, Theorem 2): a hypervisor running inside a VM.

A :class:`~virtlevels_hypervisor.vm.VirtualMachine` is a Machine, so a second
:class:`~virtlevels_hypervisor.hypervisor.Hypervisor` can be made on it; that hypervisor's VMM is
guest software of the outer VM. :func:`create_nested` builds the two levels::

    outer, inner = create_nested(host, outer="trap", inner="trap")
    inner.load(build_teachos(["hello"], timer_interval=NESTED_TIMER_INTERVAL))
    inner.run(5_000_000)

The outer vCPU is left in its reset state (virtual M-mode) so the inner VMM boots it the way it
boots a bare hart — firmware part first (delegation, Sstc, ``mret`` to S) — and every privileged
instruction of the inner VMM is then a guest instruction of the outer VM: one exit of the inner
guest costs one exit of the inner VMM *plus* the outer exits of every privileged instruction the
inner VMM executes to handle it (the exit multiplication of the Turtles project, Ben-Yehuda et
al., OSDI 2010). :func:`nesting_report` puts both levels' counters side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from virtlevels.errors import ConfigError
from virtlevels_hypervisor.hypervisor import MIB, Hypervisor
from virtlevels_hypervisor.techniques import make_technique
from virtlevels_hypervisor.vm import VirtualMachine

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels.machine.image import Image

#: A teachos tick for nested guests: 10 000 mtime ticks = 1 ms at 10 MHz (Linux's HZ=1000). At
#: teachos's default 100 us tick the nested guest's timer handler (about 18 inner exits, each
#: multiplied into a dozen outer ones) takes longer than the tick itself: the next interrupt is
#: pending before user code resumes and the guest livelocks (docs/hypervisor-nested.md).
NESTED_TIMER_INTERVAL = 10_000

#: The inner VMM's slice, in cycles of the outer vCPU's clock. A nested exit costs that clock
#: ~15 000 cycles (the outer exits it multiplies into), so trap-and-emulate's usual 20 000-cycle
#: slice would end after about one exit of the inner guest: the inner VMM schedules 10x longer.
NESTED_QUANTUM = 200_000

#: Combinations whose inner VMM is guest software of the outer VM (the inner technique must run
#: its VMM on the host hart through the Machine protocol: "trap" and "pv" do).
INNER_TECHNIQUES = ("trap", "pv")


def create_nested(
    host: Any,
    *,
    outer: str = "trap",
    inner: str = "trap",
    outer_ram: int = 32 * MIB,
    inner_ram: int = 16 * MIB,
    profile: Any = None,
) -> tuple[VirtualMachine, VirtualMachine]:
    """An ``outer`` VM on ``host`` and, inside it, a hypervisor's ``inner`` VM: ``(outer, inner)``.

    The inner VM's RAM comes from the outer VM's RAM (its hypervisor keeps 1 MiB for itself), so
    ``outer_ram`` must exceed ``inner_ram`` by at least that. Nothing is left behind on failure."""
    if inner not in INNER_TECHNIQUES:
        raise ConfigError(
            f"nested inner technique {inner!r}: the inner VMM must be guest software of the outer VM "
            f"(one of {', '.join(INNER_TECHNIQUES)})"
        )
    if outer_ram < inner_ram + 4 * MIB:
        raise ConfigError(
            f"outer VM RAM ({outer_ram >> 20} MiB) must be at least the inner VM's ({inner_ram >> 20} MiB) "
            "plus 4 MiB for the inner hypervisor"
        )
    made: list[Hypervisor] = []
    outer_vm: VirtualMachine | None = None
    try:
        made.append(Hypervisor(host))
        outer_vm = made[0].create_vm(outer, ram_size=outer_ram, name="outer", profile=profile)
        made.append(Hypervisor(outer_vm))
        tech = make_technique(inner, quantum=NESTED_QUANTUM)
        inner_vm = made[1].create_vm(tech, ram_size=inner_ram, name="inner")
    except BaseException:
        for hv in reversed(made):  # inner first; the hypervisors' graph nodes go too
            hv.close()
        raise
    return outer_vm, inner_vm


def nesting_report(outer: VirtualMachine, inner: VirtualMachine) -> dict[str, Any]:
    """Both levels' efficiency figures and the multiplication: outer exits per inner exit."""
    inner_exits = sum(inner.vstats.exits.values())
    outer_exits = sum(outer.vstats.exits.values())
    return {
        "inner": inner.vstats.to_dict(),
        "outer": outer.vstats.to_dict(),
        "inner_exits": inner_exits,
        "outer_exits": outer_exits,
        "outer_exits_per_inner_exit": round(outer_exits / inner_exits, 3) if inner_exits else 0.0,
    }


def nested_runner(
    outer: str = "trap",
    inner: str = "trap",
    profile: Any = "default",
    max_instructions: int = 20_000_000,
) -> Callable[[Image], int]:
    """A microbenchmark ``run_guest`` (virtlevels_hypervisor.microbench): boot the image in a
    fresh nested pair and return the inner run's cycles."""

    def run_guest(image: Image) -> int:
        from virtlevels.machine.board import virt_machine
        from virtlevels_hypervisor.microbench.runner import run_to_pass

        host = virt_machine(profile=profile, ram_size=64 * MIB)
        _outer_vm, inner_vm = create_nested(host, outer=outer, inner=inner, profile=host.cost)
        return run_to_pass(inner_vm, image, f"nested {inner}-in-{outer} run", max_instructions)

    return run_guest
