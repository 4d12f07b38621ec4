"""Hosted (Type 2) mode: the VMM is a process of the simulated kernel."""

from __future__ import annotations

from typing import Any

from virtlevels_hypervisor.equivalence import group_lines
from virtlevels_hypervisor.hosted import HostedHypervisor

from virtlevels.guests import build_teachos
from virtlevels.kernel import scripted as sc
from virtlevels.kernel.kernel import Kernel
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.world import World

MIB = 1 << 20


def host() -> tuple[World, Kernel, HostedHypervisor]:
    w = World(entry_points=False)
    m = virt_machine(world=w, ram_size=96 * MIB)
    k = Kernel(w, machine=m)
    return w, k, HostedHypervisor(m, kernel=k)


def cgroup(k: Kernel, name: str, **files: str) -> Any:
    k.cgroups.set_subtree_control(k.cgroups.root, {"memory", "cpu", "pids"}, set())
    cg = k.cgroups.mkdir(k.cgroups.root, name)
    for f, v in files.items():
        k.cgroups.write_file(cg, f.replace("_", ".", 1), v, k.init_creds)
    return cg


def native_output(programs: list[str]) -> str:
    m = virt_machine()
    m.load(build_teachos(programs))
    return m.run(5_000_000).uart


def test_hosted_guest_output_reaches_the_host_console_and_equals_native() -> None:
    w, k, hv = host()
    vm = hv.launch(build_teachos(["hello", "counter", "counter"]), "emulate")
    k.run()
    assert vm.exit_code == 0
    want = native_output(["hello", "counter", "counter"])
    assert group_lines(bytes(k.console).decode()) == group_lines(want)
    assert vm.host_syscalls >= 2 and vm.slices > 1  # mmap + console writes; several scheduler slices
    vm.close()
    assert k.isa.frames.in_use == 0


def test_guest_memory_is_charged_to_the_vmm_cgroup() -> None:
    w, k, hv = host()
    cg = cgroup(k, "vms")
    seen: list[int] = []
    real_write = k.syscalls.get(64).handler

    def spy(kk: Any, t: Any, fd: int, buf: int, n: int) -> int:
        seen.append(int(k.cgroups.read_file(cg, "memory.current")))
        return int(real_write(kk, t, fd, buf, n))

    k.syscalls.register(64, spy, 3)
    vm = hv.launch(build_teachos(["hello"]), "emulate", cgroup=cg)
    k.run()
    touched = len(vm.ram.frames)
    assert touched > 8
    assert max(seen) >= touched * 4096  # every guest page the VM touched, charged to the VMM
    assert k.cgroups.read_file(cg, "memory.current") == "0\n"  # released when the VMM exited


def test_memory_max_oom_kills_the_vmm_and_ends_the_vm() -> None:
    w, k, hv = host()
    cg = cgroup(k, "tiny", memory_max=str(8 * 4096))
    vm = hv.launch(build_teachos(["hello"]), "emulate", cgroup=cg)
    k.run()
    assert vm.exit_code == 128 + 9
    events = dict(line.split() for line in k.cgroups.read_file(cg, "memory.events").splitlines())
    assert events["oom_kill"] == "1"
    assert b"hello from teachos" not in bytes(k.console)


def _vm_finish_time(competitor: bool, cpu_max: str | None = None) -> int:
    w, k, hv = host()
    cg = cgroup(k, "vms", **({"cpu_max": cpu_max} if cpu_max else {}))
    done: dict[str, int] = {}

    def spinner() -> Any:
        yield sc.burn(40_000_000)

    if competitor:
        k.spawn(spinner)
    vm = hv.launch(build_teachos(["getpid-loop"]), "emulate", cgroup=cg)

    def watch() -> None:
        if vm.vm.exit_requested and "t" not in done:
            done["t"] = w.now

    while w.events.peek() is not None and "t" not in done:
        w.events.step()
        watch()
    assert vm.exit_code == 0
    return done["t"]


def test_vcpus_compete_with_host_processes_and_obey_cpu_max() -> None:
    alone = _vm_finish_time(False)
    shared = _vm_finish_time(True)
    throttled = _vm_finish_time(False, cpu_max="1000 10000")
    assert shared > alone * 3 // 2  # the host scheduler shares the CPU with the spinner
    assert throttled > alone * 3  # 10 % of a CPU


def test_virtual_disk_is_a_file_in_the_host_vfs() -> None:
    w, k, hv = host()
    k.write_file("/var/disk.img", bytes([41]) + bytes(1023))
    # Bare metal under full emulation: read sector 0, add 1 to its first byte, write it back, pass.
    src = """
        li s0, 0x10001000       # vlblk
        li s1, 0x80100000       # DMA buffer
        sw zero, 0x10(s0)
        sw s1, 0x18(s0)
        li t0, 1
        sw t0, 0x20(s0)
        sw t0, 0x24(s0)         # READ
        lbu t1, 0(s1)
        addi t1, t1, 1
        sb t1, 0(s1)
        li t0, 2
        sw t0, 0x24(s0)         # WRITE
        li t0, 0x100000
        li t1, 0x5555
        sw t1, 0(t0)
    """
    vm = hv.launch(assemble(src, base=0x8000_0000), "emulate", disk_path="/var/disk.img")
    k.run()
    assert vm.exit_code == 0
    assert k.read_file("/var/disk.img")[0] == 42
