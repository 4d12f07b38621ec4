"""VM hosts: a virtual machine with a ``vlnet`` NIC whose back end is a TAP in the host's stack.

This is how QEMU/KVM with libvirt puts a guest on a network: the VM's NIC is a device model in
the VMM; its host side is a TAP device (Documentation/networking/tuntap.rst) that the VMM reads
and writes; the TAP is enslaved to a bridge with the host's uplink. Here:

- the VM is made by the hypervisor plugin (``Hypervisor(machine).create_vm(technique)``) on the
  network's host machine, and gets a :class:`~virtlevels.machine.devices.nic.Nic` at
  ``NIC_BASE`` (docs/machine-devices.md);
- the VM host's own namespace (a :class:`NetStack` named after the host) holds the TAP
  ``NAME-tap0`` and a bridge ``NAME-br0``; the topology's links to the host land there and are
  bridged to the TAP, so the guest is on the same L2 segment as whatever the host is linked to;
- frames the guest transmits (NIC TX doorbell) are written to the TAP's user side and arrive in
  the host stack as if from a wire; frames the stack sends to the TAP go to ``Nic.receive``.

The VMM runs the guest on the World's event queue: each event runs the vCPUs for a slice
(``Machine.run_hart``) and schedules the next one when the slice's cycles have passed, so the VM
consumes simulated time as a CPU does while the network's links and stacks run between slices. A
vCPU waiting in ``wfi`` costs nothing: it is woken when a frame reaches its NIC, and otherwise
every ``idle_ns`` (Priv 3.3.3 lets WFI resume "for any reason", so the guest polls again; that is
how a guest's timeout on ``time`` runs out).
"""

from __future__ import annotations

from typing import Any

import attrs

from virtlevels.errors import ConfigError
from virtlevels.events import EventHandle
from virtlevels.machine.devices.nic import Nic
from virtlevels.machine.memmap import NIC_BASE
from virtlevels_vnet.context import NetContext
from virtlevels_vnet.devices.bridge import Bridge
from virtlevels_vnet.devices.tuntap import TapDev
from virtlevels_vnet.stack import NetStack

MIB = 1 << 20
#: The VM's RAM: the guest kernel lives at RAM + 2 MiB (the SBI firmware's jump address).
VM_RAM = 4 * MIB
QEMU_OUI = b"\x52\x54\x00"  # QEMU's locally administered prefix for guest NICs


def hypervisor_techniques() -> tuple[str, ...]:
    """The technique names the installed hypervisor plugin knows (empty without the plugin)."""
    try:
        from virtlevels_hypervisor.techniques import ALIASES, TECHNIQUES
    except ImportError:
        return ()
    return (*TECHNIQUES, *ALIASES)


def guest_mac(index: int) -> bytes:
    """The MAC of the ``index``-th VM NIC of a network: 52:54:00:00:00:NN (deterministic)."""
    return QEMU_OUI + (index + 1).to_bytes(3, "big")


def host_machine(world: Any, nvms: int) -> Any:
    """The physical machine VM hosts run on: the virt board with the H extension (so every
    technique, ``hw`` included, can run on it) and RAM for ``nvms`` VMs plus the hypervisor."""
    from virtlevels_hypervisor.equivalence import host_machine as board

    return board(world, "hw", ram_size=max(64 * MIB, (nvms + 2) * VM_RAM * 2))


@attrs.define(eq=False)
class VmHost:
    """A VM on the network: its machine (``vm``), NIC, and the host side (``stack``, ``tap``,
    ``bridge``). Made by :meth:`create`; runs once :meth:`start` is called."""

    ctx: NetContext
    name: str
    vm: Any  # virtlevels_hypervisor.vm.VirtualMachine
    nic: Nic
    stack: NetStack
    tap: TapDev
    bridge: Bridge
    slice_cycles: int = 10_000
    idle_ns: int = 1_000_000
    running: bool = False
    ticks: int = 0
    _wake: bool = False
    _event: EventHandle | None = None
    _idle: bool = False

    @classmethod
    def create(
        cls,
        ctx: NetContext,
        hv: Any,
        name: str,
        technique: str,
        mac: bytes,
        *,
        ram_size: int = VM_RAM,
    ) -> VmHost:
        """A VM with a NIC of MAC ``mac`` made by Hypervisor ``hv``, and its host-side stack with
        a TAP and a bridge. Nothing is left behind if it fails (the VM is destroyed)."""
        vm = hv.create_vm(technique, ram_size=ram_size, name=name)
        try:
            nic = vm.add_device(NIC_BASE, Nic(mac=mac))
            stack = NetStack(ctx, name)
            tap = TapDev(ctx, f"{name}-tap0")
            bridge = Bridge(ctx, f"{name}-br0")
        except BaseException:
            hv.destroy_vm(vm)
            raise
        stack.add_device(tap)
        stack.add_device(bridge)
        bridge.add_port(tap)
        stack.set_link_up("lo", True)
        tap.up = bridge.up = True
        host = cls(ctx, name, vm, nic, stack, tap, bridge)
        tap.on_frame = host._to_guest
        nic.connect(host._from_guest)
        host._graph()
        return host

    def _graph(self) -> None:
        """vm -> its nic device <- tap (maps_to: the NIC's back end), tap part_of the host stack."""
        g = self.ctx.world.graph
        vm_node = getattr(self.vm, "node_id", None)
        if vm_node is None or vm_node not in g.g:
            return
        for pred in g.g.predecessors(vm_node):
            data = g.g.nodes[pred]
            if data.get("kind") == "device" and data.get("name") == self.nic.name:
                g.link(self.tap.node_id, pred, "maps_to")
        g.link(self.stack.node_id, vm_node, "part_of")

    def add_uplink(self, dev: Any) -> None:
        """A topology link's end in this host: bridged to the TAP (libvirt's bridged network)."""
        self.stack.add_device(dev)
        dev.up = True
        self.bridge.add_port(dev)

    # -- the NIC's back end ---------------------------------------------------------------------
    def _from_guest(self, frame: bytes) -> None:
        self.tap.write(frame)  # the VMM writes the frame to its TAP fd

    def _to_guest(self, frame: bytes) -> None:
        self.nic.receive(frame)  # the VMM read it from its TAP fd
        self._wake = True
        if self.running and self._idle:
            self._reschedule(0)

    # -- running --------------------------------------------------------------------------------
    def load(self, image: Any) -> None:
        self.vm.load(image)

    def start(self) -> None:
        """Boot: the vCPUs run from the next event on."""
        if self.running:
            return
        self.running = True
        self._reschedule(0)

    def stop(self) -> None:
        self.running = False
        if self._event is not None:
            self.ctx.world.events.cancel(self._event)
            self._event = None

    @property
    def exited(self) -> bool:
        return bool(self.vm.exit_requested)

    @property
    def exit_code(self) -> int | None:
        return int(self.vm.exit_code) if self.vm.exit_requested else None

    def console(self) -> str:
        out = self.vm.console_output()
        return out if isinstance(out, str) else bytes(out).decode(errors="replace")

    def _reschedule(self, delay_cycles: int) -> None:
        ev = self.ctx.world.events
        if self._event is not None:
            ev.cancel(self._event)
        self._idle = delay_cycles > 0 and delay_cycles >= self.ctx.ns_to_cycles(self.idle_ns)
        self._event = ev.schedule(ev.now + delay_cycles, self._tick)

    def _tick(self) -> None:
        self._event = None
        vm = self.vm
        if not self.running:
            return
        if vm.exit_requested:
            self.running = False
            return
        self.ticks += 1
        if self._wake:
            # A frame arrived since the guest last looked: end its wait (the lost-wakeup race of
            # a polling guest: it may have checked the NIC just before the frame came).
            for vcpu in vm.harts:
                if vcpu.wfi:
                    vcpu.wfi = False
                    self._wake = False
        used = 0
        for vcpu in vm.harts:
            used = max(used, vm.run_hart(vcpu, self.slice_cycles))
            if vm.exit_requested:
                break
        if vm.exit_requested:
            self.running = False
            return
        if used:
            self._reschedule(used)
        else:
            for vcpu in vm.harts:  # a spurious wake-up later (Priv 3.3.3)
                vcpu.wfi = False
            self._reschedule(max(1, self.ctx.ns_to_cycles(self.idle_ns)))


def check_technique(name: str, technique: str) -> None:
    known = hypervisor_techniques()
    if not known:
        raise ConfigError(f"host {name!r}: VM hosts need the hypervisor plugin (virtlevels_hypervisor)")
    if technique not in known:
        raise ConfigError(f"host {name!r} technique: unknown virtualization technique {technique!r} "
                          f"(known: {', '.join(known)})")  # fmt: skip


__all__ = ["VM_RAM", "VmHost", "check_technique", "guest_mac", "host_machine", "hypervisor_techniques"]
