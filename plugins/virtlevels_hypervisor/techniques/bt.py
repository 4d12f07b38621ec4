"""Binary translation (VMware Workstation/ESX before VT-x; Adams & Agesen, ASPLOS 2006, section 3).

The guest kernel (virtual S-mode) never runs its own code: each basic block is translated just before
it first runs, sensitive instructions - the instruction table's privileged or sensitive rows, so the
``x86-like`` profile's non-trapping ``popf``/``pushf``/``smsw``/``sidt`` too - become callouts into the
monitor, and the result is kept in a translation cache (:mod:`virtlevels_hypervisor.bt`). Guest user
code runs directly on the host hart (deprivileged, shadow page tables), as under trap-and-emulate.
Everything else - the run loop, shadow paging, MMIO, SBI, interrupt injection - is the
trap-and-emulate VMM's (:class:`~virtlevels_hypervisor.techniques.trap.TrapTechnique`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from virtlevels_hypervisor.bt.cache import TC_PAGES
from virtlevels_hypervisor.bt.vmm import BtVmm
from virtlevels_hypervisor.techniques.trap import TrapTechnique

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels_hypervisor.vm import VirtualMachine


class BtTechnique(TrapTechnique):
    """``BtTechnique(quantum=20_000, tc_pages=64)``: one instance per VM; ``tc_pages`` = the size of
    the translation cache in 4 KiB host frames."""

    name = "bt"
    boot = "kernel"

    def __init__(self, quantum: int = 20_000, tc_pages: int = TC_PAGES) -> None:
        super().__init__(quantum)
        self.tc_pages = tc_pages

    def attach(self, vm: VirtualMachine) -> None:
        hv = vm.hv
        if hv is None:
            raise ValueError("a binary-translation VM needs the Hypervisor that made it (cache frames)")
        self.vmm = BtVmm(vm, hv.alloc_frame, hv.free_frame, quantum=self.quantum, tc_pages=self.tc_pages)

    @property
    def bt(self) -> BtVmm:
        assert isinstance(self.vmm, BtVmm)
        return self.vmm

    def restore(self, vm: VirtualMachine, state: Any) -> None:
        super().restore(vm, state)
        # The restore rewrote guest RAM in place, past the store watchers: the code the cache was
        # translated from may be different now.
        self.bt.cache.flush()

    def stats(self, vm: VirtualMachine) -> dict[str, Any]:
        out = super().stats(vm)
        out.update(self.bt.bt_stats())
        return out
