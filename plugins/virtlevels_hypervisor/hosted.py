"""Hosted (Type 2) mode: the VMM is a process of a host kernel (QEMU, VirtualBox).

What changes from native mode (issue 5 item 3), and how it is modelled:

- **Memory comes from the VMM process.** The VMM ``mmap``\\ s the guest's RAM (anonymous, private);
  a guest page gets a host frame the first time it is touched, through the host kernel's page-fault
  path (``Kernel.touch``), so it is charged to the VMM process's memory cgroup — and ``memory.max``
  can OOM-kill the VMM, which ends the VM (exit code 128 + SIGKILL).
- **vCPUs compete with host processes.** The vCPU loop runs the guest for a slice (the technique's
  ``run_hart``, which runs no events), then declares that CPU time to the host scheduler
  (``burn``): the host's CFS and ``cpu.max`` decide when it runs again, like any thread.
- **Device exits reach user space.** The console is the VMM's stdout: what the guest printed in a
  slice is written with a host ``write`` system call. Under a technique with exits (not full
  emulation, whose device models already live in the VMM process) every MMIO exit also pays
  ``[hypervisor] hosted_exit``: the two extra world switches between the in-kernel part and the
  VMM process, and the system call that carries the exit.
- **The virtual disk is a file in the host VFS**, read by the VMM at start and written back at exit.
- **The host hart is borrowed.** trap, bt, pv and hw run the vCPU on the hart of the CPU the VMM
  process is on (:meth:`HostedHypervisor.host_hart_for`) and save/restore the host kernel's hart
  state around each run (:mod:`.hostswitch`), so the kernel's own processes keep running there.
  Under hw (KVM-like) the G-stage lives in kernel frames and is filled on guest-page faults, so a
  guest page is touched - and charged - only when the guest first uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from virtlevels.errors import ConfigError, VirtlevelsError
from virtlevels.kernel import scripted as sc
from virtlevels.kernel.mm import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from virtlevels.machine.memory import PAGE_SHIFT, PAGE_SIZE
from virtlevels_hypervisor.hypervisor import MIB, Hypervisor
from virtlevels_hypervisor.vm import VirtualMachine

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels.machine.image import Image

SIGKILL = 9
O_RDWR, AT_FDCWD = 2, -100


@attrs.define(eq=False)
class _ProcessRam:
    """Guest RAM backed by the VMM process's anonymous mapping (frames from the host kernel)."""

    kernel: Any
    npages: int
    task: Any = None
    base: int | None = None  # the mapping's address in the VMM process
    frames: dict[int, int] = attrs.field(factory=dict)  # guest page index -> host ppn
    vm: VirtualMachine | None = None

    def hppn_of(self, i: int) -> int:
        ppn = self.frames.get(i)
        if ppn is not None:
            return ppn
        if self.task is None or self.base is None:
            raise VirtlevelsError("the VMM process has not mapped the guest's RAM yet")
        # The first touch of a guest page is a page fault in the VMM process: charged to its cgroup.
        self.kernel.touch(self.task, self.base + (i << PAGE_SHIFT), PAGE_SIZE, True)
        if (self.task.dead or self.task.pending_kill) and self.vm is not None:
            self.vm.request_exit(128 + SIGKILL)  # the OOM killer took the VMM: the VM is gone
        ppn = self.frames[i] = self.kernel.isa.frames.alloc()
        return ppn

    def release(self) -> None:
        for ppn in self.frames.values():
            self.kernel.isa.frames.free(ppn)
        self.frames.clear()


@attrs.define(eq=False)
class HostedHypervisor(Hypervisor):
    """A hypervisor that is a process of ``kernel`` (a virtlevels Kernel on a machine).

    Its own structures (shadow tables, G-stage tables) are kernel memory, as KVM's are."""

    kernel: Any = attrs.field(default=None, kw_only=True)
    _pending: _ProcessRam | None = attrs.field(default=None, init=False)
    _tasks: dict[int, Any] = attrs.field(factory=dict, init=False)  # id(vm) -> its VMM process

    def __attrs_post_init__(self) -> None:
        if self.kernel is None or getattr(self.kernel, "isa", None) is None:
            raise ConfigError("a hosted hypervisor needs a host kernel on a machine (Kernel(machine=...))")
        self.mode = "hosted"
        world = self.world = self.kernel.world
        self.node_id = world.new_id("hypervisor")
        world.graph.add(self.node_id, "hypervisor", name=self.name, mode=self.mode)
        world.graph.link(self.node_id, self.kernel.node_id, "runs_on")

    def _allocate_ram(self, npages: int) -> tuple[Callable[[int], int], Callable[[], None]]:
        ram = _ProcessRam(self.kernel, npages)
        self._pending = ram
        return ram.hppn_of, ram.release

    def alloc_frame(self) -> int:
        ppn = self.kernel.isa.frames.alloc()
        self._vmm_frames.append(ppn)
        return int(ppn) << PAGE_SHIFT

    def free_frame(self, paddr: int) -> None:
        ppn = paddr >> PAGE_SHIFT
        self._vmm_frames.remove(ppn)
        self.kernel.isa.frames.free(ppn)

    def alloc_frames(self, npages: int, align: int = 1) -> int:
        """``npages`` contiguous zeroed kernel frames whose first ppn is a multiple of ``align`` (the
        Sv32x4 G-stage root: 16 KiB, 16 KiB aligned, Priv 8.5.1), as Linux's ``alloc_pages(order)``.

        The kernel's frame allocator hands out single frames: take frames until an aligned run is
        complete, then give back the ones not in it (deterministic: the allocator's order is)."""
        frames = self.kernel.isa.frames
        align = max(1, align)
        taken: list[int] = []
        have: set[int] = set()
        budget = len(getattr(frames, "_free", ())) + 2 * npages * align + 64
        try:
            while len(taken) <= budget:
                ppn = frames.alloc()
                taken.append(ppn)
                have.add(ppn)
                for k in range((npages - 1) // align + 1):  # aligned runs that would contain ppn
                    start = ppn - ppn % align - k * align
                    if start >= 0 and all(p in have for p in range(start, start + npages)):
                        for p in taken:
                            if not start <= p < start + npages:
                                frames.free(p)
                        taken = []
                        self._vmm_frames.extend(range(start, start + npages))
                        return start << PAGE_SHIFT
            raise ConfigError(f"no {npages} contiguous host frames aligned to {align} pages")
        finally:
            for p in taken:
                frames.free(p)

    def free_frames(self, paddr: int, npages: int) -> None:
        for i in range(npages):
            self.free_frame(paddr + (i << PAGE_SHIFT))

    def host_hart_for(self, vm: VirtualMachine, vcpu: Any) -> Any:
        """The host hart a vCPU of ``vm`` runs on: the one whose CPU the VMM process is on now (its
        in-kernel part runs the vCPU on the CPU that made the ioctl, as KVM_RUN does)."""
        harts = self.kernel.isa.harts
        task = self._tasks.get(id(vm))
        cpu = task.cpu if task is not None else vcpu.id
        return harts[cpu % len(harts)]

    def launch(
        self,
        image: Image,
        technique: str = "emulate",
        *,
        ram_size: int = 16 * MIB,
        cgroup: Any = None,
        name: str = "vmm",
        slice_cycles: int = 200_000,
        disk_path: str | None = None,
        engine: str = "interp",
        isa_extensions: tuple[str, ...] = (),
    ) -> HostedVM:
        """Start a VMM process running ``image`` in a new VM; the host kernel schedules it.

        ``disk_path`` is a file in the host kernel's VFS: the VM's block device (its size sets the
        disk's); the VMM process reads it at start and writes it back when the guest stops."""
        disk = None
        if disk_path is not None:
            try:
                size = len(self.kernel.read_file(disk_path))
            except Exception as exc:
                raise ConfigError(f"virtual disk {disk_path}: {exc}") from None
            disk = bytearray(size)
        vm = self.create_vm(technique, ram_size=ram_size, name=name, isa_extensions=isa_extensions, disk=disk)
        ram = self._pending
        assert ram is not None
        ram.vm = vm
        self._pending = None
        hosted = HostedVM(self, vm, ram, image, slice_cycles=slice_cycles, disk_path=disk_path, engine=engine)
        try:
            hosted.task = self.kernel.spawn(hosted.program, [name], cgroup=cgroup, name=name, stdio=True)
        except BaseException:
            self.destroy_vm(vm)
            raise
        ram.task = hosted.task
        self._tasks[id(vm)] = hosted.task
        return hosted

    def destroy_vm(self, vm: VirtualMachine) -> None:
        self._tasks.pop(id(vm), None)
        super().destroy_vm(vm)


@attrs.define(eq=False)
class HostedVM:
    """One VM and the host process that runs it."""

    hv: HostedHypervisor
    vm: VirtualMachine
    ram: _ProcessRam
    image: Image
    slice_cycles: int = 200_000
    disk_path: str | None = None
    engine: str = "interp"
    task: Any = None
    slices: int = 0
    host_syscalls: int = 0

    @property
    def exit_code(self) -> int | None:
        return self.vm.exit_code

    def close(self) -> None:
        """Destroy the VM: its frames go back to the host kernel (the VMM process's charge went when
        it exited)."""
        if self.vm in self.hv.vms:
            self.hv.destroy_vm(self.vm)

    def program(self, argv: list[str]) -> Any:
        """The VMM process's main loop (a scripted program)."""
        vm, kernel = self.vm, self.hv.kernel
        size = vm.ram_size
        base = yield sc.mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        self.host_syscalls += 1
        if isinstance(base, int) and base < 0:
            return 1
        self.ram.base = int(base)
        disk_fd = -1
        if self.disk_path is not None:
            disk_fd = yield sc.openat(AT_FDCWD, self.disk_path, O_RDWR)
            self.host_syscalls += 1
            if disk_fd < 0:
                return 1
            block = vm.device("blk0")
            data = yield sc.read(disk_fd, len(block.backing))
            self.host_syscalls += 1
            block.backing[: len(data)] = data
        vm.load(self.image)
        vcpu = vm.harts[0]
        sent = 0
        uart = vm.device("uart0")
        exit_cost = vm.hv_cost("hosted_exit") if vm.technique.name != "emulate" else 0
        while not vm.exit_requested and not self.task.dead:
            mmio0 = vm.vstats.exits["mmio"]
            used = vm.run_hart(vcpu, self.slice_cycles, self.engine)
            self.slices += 1
            exits = vm.vstats.exits["mmio"] - mmio0
            if exits and exit_cost:
                vm.vstats.cycles["world_switch"] += exits * exit_cost
                used += exits * exit_cost
            out = uart.output
            if len(out) > sent:
                yield sc.write(1, bytes(out[sent:]))
                self.host_syscalls += 1
                sent = len(out)
            if used:
                yield sc.burn(used)  # the host scheduler accounts (and may throttle) the VMM's CPU time
            elif vcpu.wfi:
                wait = self._until_guest_timer()
                if wait is None:
                    break  # the guest waits for an interrupt nothing will raise
                yield sc.nanosleep(max(1, wait * 1_000_000_000 // kernel.hz))
                self.host_syscalls += 1
        if disk_fd >= 0:
            yield sc.lseek(disk_fd, 0, 0)
            yield sc.write(disk_fd, bytes(vm.device("blk0").backing))
            self.host_syscalls += 2
        code = vm.exit_code if vm.exit_code is not None else 1
        return code & 0xFF

    def _until_guest_timer(self) -> int | None:
        """Cycles until the guest's next timer event (its CLINT's or the VMM's virtual timer)."""
        vm = self.vm
        nxt = vm.events.peek()
        deadline = vm.timer_deadline[0]
        cands = []
        if nxt is not None:
            cands.append(nxt - vm.events.now)
        if deadline is not None:
            cands.append(deadline * vm.cost.timebase_divisor - vm.events.now)
        return max(1, min(cands)) if cands else None
