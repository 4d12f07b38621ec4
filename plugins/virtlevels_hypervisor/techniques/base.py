"""What a virtualization technique is: how a VM's guest instructions get executed.

The :class:`~virtlevels_hypervisor.vm.VirtualMachine` delegates ``load``, ``run`` and ``run_hart``
to its technique. :class:`TechniqueBase` has what every technique shares: booting a guest behind
a VMM that acts as the SBI firmware, and turning the VM's counters into a RunResult.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from virtlevels.errors import ConfigError
from virtlevels.guests.layout import KERNEL_BASE
from virtlevels.machine.hart import S_MODE, Hart
from virtlevels.machine.machine import RunResult
from virtlevels_hypervisor.sbi import hsm_boot

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels.machine.image import Image
    from virtlevels_hypervisor.vm import VirtualMachine

# What the SBI firmware delegates (virtlevels/guests/firmware/sbi.S, Priv 3.1.8): misaligned, access
# and page faults, illegal instruction, breakpoint, ecall from U; and the S-level interrupts.
FIRMWARE_MEDELEG = 0xB1FF
FIRMWARE_MIDELEG = 0x222


@runtime_checkable
class Technique(Protocol):
    """One way of running guests (issue 5 item 2); one instance per VM."""

    name: str

    def attach(self, vm: VirtualMachine) -> None:
        """Prepare ``vm`` (VMM structures); called once by Hypervisor.create_vm."""
        ...

    def load(self, vm: VirtualMachine, image: Image) -> None:
        """Place a guest image in the VM and set the vCPUs up to boot it."""
        ...

    def run(self, vm: VirtualMachine, max_instructions: int | None, engine: str) -> RunResult: ...

    def run_hart(self, vm: VirtualMachine, vcpu: Hart, max_cycles: int, engine: str) -> int: ...

    def charge_guest_execute(self, vm: VirtualMachine, vcpu: Hart, word: int) -> None:
        """Guest software written in Python executed ``word`` on ``vcpu``: charge what it costs."""
        ...

    def stats(self, vm: VirtualMachine) -> dict[str, Any]: ...


class TechniqueBase:
    """Shared behaviour; subclasses set ``name`` and override what differs."""

    name = "base"
    #: "full": the whole image (with its SBI firmware) boots in virtual M-mode;
    #: "kernel": only the S-mode part boots, the VMM is the SBI firmware.
    boot = "kernel"

    def attach(self, vm: VirtualMachine) -> None:
        pass

    def detach(self, vm: VirtualMachine) -> None:
        pass

    def load(self, vm: VirtualMachine, image: Image) -> None:
        if self.boot == "full":
            vm.load_raw(image)
        else:
            load_kernel(vm, image)

    def run_hart(self, vm: VirtualMachine, vcpu: Hart, max_cycles: int, engine: str) -> int:
        raise ConfigError(f"technique {self.name!r} cannot run a single vCPU for a host kernel")

    def charge_guest_execute(self, vm: VirtualMachine, vcpu: Hart, word: int) -> None:
        pass

    def stats(self, vm: VirtualMachine) -> dict[str, Any]:
        return vm.vstats.to_dict()

    def snapshot(self, vm: VirtualMachine) -> Any:
        return None

    def restore(self, vm: VirtualMachine, state: Any) -> None:
        pass


def load_kernel(vm: VirtualMachine, image: Image, entry: int = KERNEL_BASE) -> None:
    """Boot the S-mode part of ``image`` (segments at or above ``entry``) behind a VMM that is the
    SBI firmware: the boot hart (vCPU 0) starts in S-mode at ``entry`` with a0 = hartid, a1 = 0 (no
    device tree); the others are STOPPED until the kernel starts them with SBI HSM ``hart_start``
    (SBI 2.0 ch. 9; what OpenSBI does). Every vCPU's virtual M-mode state is what the firmware
    would have left (delegation, counters)."""
    mem = vm.bus.memory
    found = False
    for seg in image.segments:
        if seg.addr < entry:
            continue
        found = True
        end = seg.addr + max(seg.memsize, len(seg.data))
        if not vm.bus.is_ram(seg.addr, max(1, end - seg.addr)):
            raise ConfigError(
                f"{image.source or 'image'}: segment 0x{seg.addr:08x}-0x{end:08x} is outside the VM's RAM "
                f"(0x{vm.ram_base:08x}-0x{vm.ram_base + vm.ram_size:08x})"
            )
        mem.write_bytes(seg.addr, seg.data + bytes(max(0, seg.memsize - len(seg.data))))
    if not found:
        raise ConfigError(f"{image.source or 'image'}: no segment at or above 0x{entry:08x} to boot")
    for vcpu in vm.harts:
        csr = vcpu.csr
        csr.medeleg = FIRMWARE_MEDELEG
        csr.mideleg = FIRMWARE_MIDELEG
        csr.mcounteren = 7
        vcpu.x[10] = vcpu.id
        vcpu.x[11] = 0
        vcpu.pc = entry
        vcpu.set_priv(S_MODE)
        vcpu.wfi = False
        vcpu.context_changed()
    hsm_boot(vm, boot_hart=0)


def host_hart_for(vm: VirtualMachine, vcpu: Hart) -> Hart:
    """The host hart ``vcpu`` runs on: the hypervisor's choice (hosted: the CPU the VMM process
    is on), else host hart ``vcpu.id mod len(host.harts)``."""
    pick = getattr(vm.hv, "host_hart_for", None)
    if pick is not None:
        return pick(vm, vcpu)  # type: ignore[no-any-return]
    harts = vm.host.harts
    return harts[vcpu.id % len(harts)]  # type: ignore[no-any-return]


def result_from_vm(vm: VirtualMachine, status: str, start_now: int, retired0: int) -> RunResult:
    """A RunResult for a VM run: guest instructions, cycles on the shared clock, the VM's breakdown."""
    exit_code = vm.exit_code if status in ("pass", "fail") else None
    cats = {k: v for k, v in vm.vstats.cycles.items() if v}
    return RunResult(
        status=status,
        exit_code=exit_code,
        instructions=vm.vstats.guest_instructions() - retired0,
        cycles=vm.events.now - start_now,
        cycles_by_category=cats,
        instructions_by_class={},
        traps=dict(vm.vstats.exits),
        uart=vm.console_output(),
    )
