"""Full emulation (Bochs): the VMM interprets every guest instruction on virtual state.

Nothing of the guest runs on a host hart: the vCPUs execute in the VM's own interpreter against
the VM's bus (guest RAM, virtual devices), the whole image boots — SBI firmware in virtual M-mode
included — and each guest instruction costs its own cycles plus ``[hypervisor] emulate_insn`` for
the software fetch-decode-dispatch. Works on any ISA profile, x86-like included: a sensitive
instruction sees the *virtual* privilege, so there is nothing to get wrong (Popek-Goldberg
equivalence holds by construction; efficiency is what is given up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtlevels.machine.hart import Hart
from virtlevels.machine.machine import PhysicalMachine, RunResult
from virtlevels_hypervisor.techniques.base import TechniqueBase

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels_hypervisor.vm import VirtualMachine


class EmulateTechnique(TechniqueBase):
    name = "emulate"
    boot = "full"

    def attach(self, vm: VirtualMachine) -> None:
        self._price(vm)

    def _price(self, vm: VirtualMachine) -> None:
        extra = vm.hv_cost("emulate_insn")
        costs = [vm.cost.instruction_cost(c) + extra for c in vm.table.classes]
        for vcpu in vm.harts:
            if vcpu.class_costs != costs:
                vcpu.class_costs = costs[:]

    def _account(self, vm: VirtualMachine, retired0: int, work0: int) -> None:
        retired = sum(h.retired() for h in vm.harts) - retired0
        work = sum(h.work_cycles() for h in vm.harts) - work0
        vm.vstats.emulated_instructions += retired
        vm.vstats.cycles["emulation"] += work

    def run(self, vm: VirtualMachine, max_instructions: int | None, engine: str) -> RunResult:
        self._price(vm)
        retired0 = sum(h.retired() for h in vm.harts)
        work0 = sum(h.work_cycles() for h in vm.harts)
        # The interpreter is the emulator: ``engine`` is the host's business, not the guest's.
        result = PhysicalMachine.run(vm, max_instructions, engine="interp")
        self._account(vm, retired0, work0)
        return result

    def run_hart(self, vm: VirtualMachine, vcpu: Hart, max_cycles: int, engine: str) -> int:
        self._price(vm)
        retired0 = sum(h.retired() for h in vm.harts)
        work0 = sum(h.work_cycles() for h in vm.harts)
        used = PhysicalMachine.run_hart(vm, vcpu, max_cycles, engine="interp")
        self._account(vm, retired0, work0)
        return used

    def charge_guest_execute(self, vm: VirtualMachine, vcpu: Hart, word: int) -> None:
        # Python guest software's instruction goes through the emulator's decode like any other.
        vcpu.charge("emulation", vm.hv_cost("emulate_insn"))
