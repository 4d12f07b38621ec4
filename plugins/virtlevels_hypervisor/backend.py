"""The hypervisor backend: hardware-level virtualization with the one lifecycle of every level.

``HypervisorBackend().define(host, spec)`` returns a :class:`~virtlevels_hypervisor.domain.Domain`
(a :class:`virtlevels.backend.Guest`). The host is a Machine (a PhysicalMachine, or a VM for
nesting), a :class:`~virtlevels_hypervisor.hypervisor.Hypervisor`, or a World (the domain then
gets a machine of its own). The guest offers a Machine, so anything that needs one stacks on it.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from virtlevels.errors import ConfigError
from virtlevels.taxonomy import BackendInfo
from virtlevels_hypervisor.domain import Domain, DomainSpec, spec_from

#: Which of Popek & Goldberg's properties each technique keeps (docs/hypervisor-lifecycle.md).
#: Full emulation gives up efficiency (every instruction is interpreted); the others run most
#: guest instructions directly. Equivalence and resource control hold for all five on the rv32
#: profile (on the x86-like profile trap-and-emulate loses equivalence: Theorem 1's condition fails).
TECHNIQUE_PROPERTIES: dict[str, tuple[str, ...]] = {
    "emulate": ("equivalence", "resource control"),
    "trap": ("equivalence", "efficiency", "resource control"),
    "bt": ("equivalence", "efficiency", "resource control"),
    "pv": ("equivalence", "efficiency", "resource control"),
    "hw": ("equivalence", "efficiency", "resource control"),
}


class HypervisorBackend:
    """Hardware-level virtualization: VMs on a Machine (QEMU/KVM, ESXi, Xen's place)."""

    info = BackendInfo(
        name="hypervisor",
        level="hardware",
        techniques=[
            "full emulation",
            "trap-and-emulate",
            "binary translation",
            "paravirtualization",
            "hardware-assisted",
        ],  # fmt: skip
        objects=["platform virtual machine"],
        hypervisor_types=["native (Type 1)", "hosted (Type 2)"],
        # A VM shares the physical hardware and the hypervisor with the other VMs; it has its own
        # kernel, libraries, filesystem and address space.
        shares=["hardware", "hypervisor"],
        keeps=["equivalence", "efficiency", "resource control"],
        # Full emulation interprets every instruction: equivalent and in control, not efficient
        # (Popek & Goldberg's efficiency asks that most instructions run directly).
        technique_keeps={"full emulation": TECHNIQUE_PROPERTIES["emulate"]},
        needs="machine",
        offers="machine",
        description=(
            "VMs with vCPUs, guest RAM and virtual devices; five techniques (full emulation keeps "
            "equivalence and resource control but not efficiency); native and hosted; "
            "snapshot/restore and pre-copy live migration"
        ),
    )

    def __init__(self) -> None:
        # One hypervisor per (host machine, mode), as one KVM serves a host.
        self._hypervisors: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
        self.domains: list[Domain] = []

    def hypervisor_for(self, host: Any, mode: str) -> Any:
        from virtlevels_hypervisor.hypervisor import Hypervisor

        by_mode = self._hypervisors.setdefault(host, {})
        hv = by_mode.get(mode)
        if hv is None:
            hv = by_mode[mode] = Hypervisor(host, getattr(host, "world", None), mode=mode)
        return hv

    def define(self, host: Any, spec: DomainSpec | Mapping[str, Any] | str | Path | None = None) -> Domain:
        """A defined (not started) domain for ``spec`` on ``host``."""
        from virtlevels.world import World
        from virtlevels_hypervisor.hypervisor import Hypervisor

        dspec = DomainSpec() if spec is None else spec_from(spec)
        if isinstance(host, World):
            dom = Domain.from_spec(host, dspec)
        elif isinstance(host, Hypervisor):
            if host.world is None:
                raise ConfigError("the hypervisor backend needs a host in a World (create it with world=)")
            dom = Domain.from_spec(host.world, dspec, hypervisor=host)
        elif hasattr(host, "harts") and hasattr(host, "bus"):
            world = getattr(host, "world", None)
            if world is None:
                raise ConfigError("the hypervisor backend needs a host machine in a World (world=)")
            dom = Domain.from_spec(world, dspec, hypervisor=self.hypervisor_for(host, dspec.mode))
        else:
            raise ConfigError(
                f"the hypervisor backend needs a Machine, a Hypervisor or a World as its host, "
                f"not {type(host).__name__}"
            )
        self.domains.append(dom)
        return dom
