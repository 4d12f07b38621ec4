"""Hosted (Type 2) mode: the VMM is a process of the simulated kernel."""

from __future__ import annotations

from typing import Any

import pytest
from virtlevels_hypervisor.equivalence import group_lines, host_machine
from virtlevels_hypervisor.hosted import HostedHypervisor

from virtlevels.guests import build_teachos
from virtlevels.kernel import scripted as sc
from virtlevels.kernel.kernel import Kernel
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.elf.writer import write_elf
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


# -- hardware-assisted, hosted (KVM-like) --------------------------------------------------------------
def hw_host(**kernel_kw: Any) -> tuple[World, Kernel, HostedHypervisor]:
    w = World(entry_points=False)
    m = host_machine(w, "hw", ram_size=96 * MIB)  # the H extension
    k = Kernel(w, machine=m, **kernel_kw)
    return w, k, HostedHypervisor(m, kernel=k)


def test_hw_hosted_fills_the_gstage_lazily_in_kernel_frames_and_gives_them_back() -> None:
    w, k, hv = hw_host()
    vm = hv.launch(build_teachos(["hello", "counter"]), "hw", engine="fast")
    gs = vm.vm.technique.gstage
    assert gs.lazy and gs.pages == 0 and gs.megapages == 0  # nothing mapped before the guest runs
    ram = k.isa.frames
    assert ram.first <= gs.root >> 12 < ram.end and gs.root % (16 * 1024) == 0  # Priv 8.5.1
    k.run()
    assert vm.exit_code == 0
    assert group_lines(bytes(k.console).decode()) == group_lines(native_output(["hello", "counter"]))
    faults = vm.vm.vstats.exits["gstage_fault"]
    assert faults == gs.pages > 0  # one guest-page fault per page the guest used
    assert len(vm.ram.frames) < vm.vm.ram_size // 4096 // 16  # only what was touched has host frames
    vm.close()
    assert k.isa.frames.in_use == 0  # guest pages, G-stage root and tables all returned


def test_hw_hosted_guest_memory_is_charged_to_the_vmm_cgroup_as_it_is_touched() -> None:
    w, k, hv = hw_host()
    cg = cgroup(k, "vms")
    vm = hv.launch(build_teachos(["hello", "counter"]), "hw", cgroup=cg, engine="fast", slice_cycles=20_000)
    samples: list[int] = []
    while w.events.peek() is not None:
        w.events.step()
        if vm.task.dead:
            break
        cur = int(k.cgroups.read_file(cg, "memory.current"))
        if not samples or samples[-1] != cur:
            samples.append(cur)
            assert cur == len(vm.ram.frames) * 4096  # exactly the guest pages touched so far
    assert vm.exit_code == 0
    assert samples == sorted(samples) and len(samples) > 2  # it grew while the guest ran
    assert samples[-1] > samples[0]
    k.run()
    assert k.cgroups.read_file(cg, "memory.current") == "0\n"  # released when the VMM exited


def test_hw_hosted_memory_max_oom_kills_the_vmm_on_a_gstage_fault() -> None:
    w, k, hv = hw_host()
    cg = cgroup(k, "tiny", memory_max=str(5 * 4096))  # the kernel image fits, its first run does not
    vm = hv.launch(build_teachos(["hello"]), "hw", cgroup=cg, engine="fast")
    k.run()
    assert vm.exit_code == 128 + 9
    assert vm.vm.vstats.exits["gstage_fault"] > 0  # killed from the G-stage fault path
    events = dict(line.split() for line in k.cgroups.read_file(cg, "memory.events").splitlines())
    assert events["oom_kill"] == "1"
    assert b"hello from teachos" not in bytes(k.console)
    vm.close()
    assert k.isa.frames.in_use == 0


# An RV32 process of the host kernel: four lines into a file, with busy loops in between, so the host
# timer preempts it and the VMM process runs between its lines on the same hart.
ISA_WRITER = write_elf(
    assemble(
        r"""
    .text
    .globl _start
_start:
    li a0, -100               # AT_FDCWD
    la a1, path
    li a2, 0x241              # O_WRONLY | O_CREAT | O_TRUNC
    li a3, 0x1a4
    li a7, 56                 # openat
    ecall
    mv s2, a0
    li s0, 4
1:  li s1, 40000
2:  addi s1, s1, -1
    bnez s1, 2b
    mv a0, s2
    la a1, line
    li a2, 4
    li a7, 64                 # write
    ecall
    la t0, line
    lbu t1, 2(t0)
    addi t1, t1, 1
    sb t1, 2(t0)
    addi s0, s0, -1
    bnez s0, 1b
    li a0, 7
    li a7, 93                 # exit(7)
    ecall
    .data
path: .asciz "/tmp/isa.out"
line: .ascii "is0\n"
""",
        base=0x10000,
    )
)


@pytest.mark.parametrize("technique", ["hw", "trap"])
def test_host_isa_process_and_hosted_vm_share_a_hart(technique: str) -> None:
    # Both program the host hart (stvec, satp, stimecmp, and the H CSRs for hw): the VMM saves and
    # restores the host kernel's state around each run, so both keep working, each with its output.
    w, k, hv = hw_host(engine="fast", slice_ns=100_000)
    k.write_file("/bin/isa", ISA_WRITER, 0o755)
    writers: list[str] = []
    real_write = k.syscalls.get(64).handler

    def spy(kk: Any, t: Any, fd: int, buf: int, n: int) -> int:
        writers.append("vmm" if t is vm.task else "isa")
        return int(real_write(kk, t, fd, buf, n))

    k.syscalls.register(64, spy, 3)
    status: dict[int, int] = {}

    def init() -> Any:  # pid 1: reaps the process and the VMM
        for _ in range(2):
            pid, st = yield sc.wait4(-1)
            status[pid] = st

    k.spawn(init, stdio=True)
    isa = k.spawn("/bin/isa", ["isa"], stdio=True)
    vm = hv.launch(build_teachos(["hello", "counter"]), technique, engine="fast", slice_cycles=50_000)
    k.run()
    assert vm.exit_code == 0
    assert group_lines(vm.vm.console_output()) == group_lines(native_output(["hello", "counter"]))
    assert k.read_file("/tmp/isa.out") == b"is0\nis1\nis2\nis3\n"
    assert status == {2: 7 << 8, 3: 0}  # the process exit(7)s, the VMM exits with the guest's 0
    assert isa.dead
    # They did run interleaved on the one hart: the VMM wrote between the process's writes.
    first, last = writers.index("isa"), len(writers) - 1 - writers[::-1].index("isa")
    assert "vmm" in writers[first:last]
