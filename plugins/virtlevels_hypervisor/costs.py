"""The hypervisor's cost keys: the ``[hypervisor]`` section of a cost profile.

The section is declared by the core's cost schema (so every profile may set it, loaded with or
without this plugin); the defaults below document what each key means and are registered again
(idempotently, plus any key only this plugin knows) on import. The defaults are for the
``default`` profile's 1 GHz core; the shipped x86 profiles cite their own figures.
"""

from __future__ import annotations

from virtlevels.cost import CostModel, register_cost_keys

#: key -> default host cycles.
HYPERVISOR_COSTS: dict[str, int] = {
    # Full emulation (Bochs): host cycles to fetch, decode and dispatch one guest instruction in
    # software, on top of the instruction's own cost. Bochs runs at tens of host instructions per
    # guest instruction (Bochs' documentation reports ~50-100 MIPS on multi-GHz hosts).
    "emulate_insn": 40,
    # Saving and restoring guest state on a software VMM's entry and exit (one direction).
    "world_switch": 300,
    # A hardware VM exit plus VM entry round trip (VMX/SVM, RISC-V H: trap to HS/M and back).
    "exit_hw": 1000,
    # Decoding and emulating one trapped privileged instruction in a trap-and-emulate VMM.
    "trap_emulate": 400,
    # Updating shadow page-table state after a trapped guest PTE write.
    "shadow_update": 800,
    # Translating one guest instruction into the translation cache (VMware's BT: a few hundred
    # host instructions per translated guest instruction, amortised by the cache).
    "bt_translate_insn": 200,
    # A callout from translated code into the VMM (no hardware trap: a call and return).
    "bt_callout": 60,
    # A hypercall: a deliberate trap into the VMM with a register ABI (Xen's ~hundreds of cycles).
    "hypercall": 250,
    # Hosted (Type 2): a device exit that must reach the user-space VMM — two extra world switches
    # between the kernel module and the VMM process and the host system call that carries it.
    "hosted_exit": 2500,
    # Live migration (migration.py): sending one 4 KiB guest page to the destination. At 10 Gb/s
    # line rate a page takes 4096 * 8 / 10e9 s = 3.28 us, ~3300 cycles of the 1 GHz default core;
    # pre-copy's cost model is pages x per-page link time (Clark et al., "Live Migration of Virtual
    # Machines", NSDI 2005, section 3.1 and 5).
    "migrate_page": 3300,
    # Creating a VM before its first guest instruction: the VMM allocating (and the host zeroing)
    # the guest's RAM, creating the VM and vCPU objects (KVM_CREATE_VM, KVM_CREATE_VCPU, memory
    # slots) and setting up the virtual devices. Approximation: ~2 ms of host time, the order of
    # the fastest published VM creations (LightVM, Manco et al., SOSP 2017: 2.3 ms to create and
    # boot a minimal unikernel VM on Xen with a tuned toolstack; Firecracker, Agache et al., NSDI
    # 2020: ~125 ms from the API call to the guest's /sbin/init, most of it the guest Linux boot,
    # which the simulated kernel models itself). Charged once by Hypervisor.create_vm.
    "vm_create": 2_000_000,
}

register_cost_keys("hypervisor", HYPERVISOR_COSTS)


def hv_cost(cost: CostModel, key: str) -> int:
    """One ``[hypervisor]`` cost of ``cost`` (the default when the profile does not set it)."""
    section = cost.sections.get("hypervisor", {})  # a profile loaded before this module registered
    return int(section.get(key, HYPERVISOR_COSTS[key]))
