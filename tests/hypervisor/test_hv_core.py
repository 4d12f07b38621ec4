"""The hypervisor core: a VM is a Machine, guest RAM is carved from host frames, full emulation."""

from __future__ import annotations

import pytest
from virtlevels_hypervisor.equivalence import group_lines as _by_process
from virtlevels_hypervisor.hypervisor import FramePool, Hypervisor, OutOfHostMemory
from virtlevels_hypervisor.vm import GuestAccessError, VirtualMachine

from virtlevels.guests import boot_teachos, build_teachos
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.protocol import Machine
from virtlevels.world import World

MIB = 1 << 20


def test_a_vm_keeps_the_machine_protocol() -> None:
    vm = Hypervisor(virt_machine()).create_vm("emulate")
    assert isinstance(vm, Machine)
    assert isinstance(vm, VirtualMachine)
    assert [h.machine for h in vm.harts] == [vm]
    assert {"clint", "uart0", "test-finisher", "plic"} <= set(vm.devices)


def test_guest_ram_is_the_hosts_frames_and_nothing_else() -> None:
    host = virt_machine()
    hv = Hypervisor(host)
    a, b = hv.create_vm("emulate", name="a"), hv.create_vm("emulate", name="b")
    a.phys_write(a.ram_base + 0x1234, b"guest A")
    hpa = a.gpa_to_hpa(a.ram_base + 0x1234)
    assert host.phys_read(hpa, 7) == b"guest A"
    assert b.phys_read(b.ram_base + 0x1234, 7) == bytes(7)  # another VM's frames
    with pytest.raises(GuestAccessError):
        a.gpa_to_hpa(a.ram_base + a.ram_size)
    assert not a.bus.is_ram(a.ram_base + a.ram_size)  # the guest's bus ends where its RAM ends


def test_a_guest_store_outside_its_ram_is_an_access_fault_not_host_memory() -> None:
    host = virt_machine()
    vm = Hypervisor(host).create_vm("emulate", ram_size=4 * MIB)
    before = {ppn: bytes(p[0]) for ppn, p in host.bus.memory.pages.items()}
    # Bare M-mode code: store past the end of RAM; the access fault goes to mtvec, which stops.
    src = f"""
        la t0, handler
        csrw mtvec, t0
        li t1, {vm.ram_base + vm.ram_size + 0x100}
        li t2, 0x55
        sw t2, 0(t1)
        j .
    handler:
        csrr a0, mcause
        li t0, 0x100000
        li t1, 0x5555
        sw t1, 0(t0)
    """
    vm.load(assemble(src, base=vm.ram_base))
    r = vm.run(1000)
    assert r.status == "pass"
    assert vm.harts[0].x[10] == 7  # store access fault (Priv 3.1.15)
    after = {ppn: bytes(p[0]) for ppn, p in host.bus.memory.pages.items() if ppn in before}
    assert after == before


def test_frame_pool_allocates_aligned_runs_and_merges_frees() -> None:
    pool = FramePool(0x8010_0000, 16 * MIB)
    a = pool.alloc(1024, align_pages=1024)
    assert a % 1024 == 0
    b = pool.alloc(1)
    pool.release(a, 1024)
    pool.release(b, 1)
    assert pool.free == [(0x8010_0000 >> 12, (16 * MIB) >> 12)]
    with pytest.raises(OutOfHostMemory):
        pool.alloc(1 << 20)


def test_no_overcommit_and_nothing_left_after_a_failed_create() -> None:
    w = World(entry_points=False)
    hv = Hypervisor(virt_machine(world=w, ram_size=64 * MIB))
    hv.create_vm("emulate", ram_size=32 * MIB)
    nodes = set(w.graph.g.nodes)
    free = list(hv.pool.free)
    with pytest.raises(OutOfHostMemory):
        hv.create_vm("emulate", ram_size=32 * MIB)
    with pytest.raises(Exception, match="unknown virtualization technique"):
        hv.create_vm("nosuch")
    assert set(w.graph.g.nodes) == nodes and hv.pool.free == free and len(hv.vms) == 1


def test_graph_shows_vm_runs_on_hypervisor_and_memory_allocated_from_host() -> None:
    w = World(entry_points=False)
    host = virt_machine(world=w)
    hv = Hypervisor(host)
    vm = hv.create_vm("emulate")
    g = w.graph.g
    kinds = {n: d["kind"] for n, d in g.nodes(data=True)}
    edges = {(kinds[a], kinds[b], d["kind"]) for a, b, d in g.edges(data=True)}
    assert ("vm", "hypervisor", "runs_on") in edges and ("hypervisor", "machine", "runs_on") in edges
    assert ("memory", "memory", "allocated_from") in edges
    hv.destroy_vm(vm)
    assert "vm" not in {d["kind"] for _n, d in g.nodes(data=True)}


def test_destroyed_vm_frames_are_scrubbed_for_the_next_vm() -> None:
    host = virt_machine(ram_size=32 * MIB)
    hv = Hypervisor(host)
    a = hv.create_vm("emulate", ram_size=16 * MIB)
    a.phys_write(a.ram_base, b"secret")
    hpa = a.gpa_to_hpa(a.ram_base)
    hv.destroy_vm(a)
    b = hv.create_vm("emulate", ram_size=16 * MIB)
    assert b.gpa_to_hpa(b.ram_base) == hpa  # the same frames...
    assert b.phys_read(b.ram_base, 6) == bytes(6)  # ...read as zeros


@pytest.mark.parametrize("programs", [["hello"], ["hello", "counter", "counter"], ["fault", "hello"]])
def test_full_emulation_is_equivalent_to_native(programs: list[str]) -> None:
    image = build_teachos(programs)
    native = virt_machine()
    boot_teachos(native, image)
    n = native.run(5_000_000)
    vm = Hypervisor(virt_machine()).create_vm("emulate")
    boot_teachos(vm, image)
    v = vm.run(20_000_000)
    assert (v.status, v.exit_code) == (n.status, n.exit_code)
    assert _by_process(v.uart) == _by_process(n.uart)
    st = vm.vstats
    # Nothing ran on a host hart; every guest instruction was emulated and paid for.
    assert st.direct_instructions == 0 and st.emulated_instructions == v.instructions > 0
    if len(programs) == 1:  # one process: no timer-dependent interleaving, the same instructions
        assert v.instructions == n.instructions
    assert st.cycles["emulation"] > n.cycles
    assert v.cycles > n.cycles


def test_the_same_vm_run_gives_the_same_cycles() -> None:
    def once() -> tuple[int, str]:
        vm = Hypervisor(virt_machine()).create_vm("emulate")
        boot_teachos(vm, build_teachos(["hello", "counter"]))
        r = vm.run(20_000_000)
        return r.cycles, r.uart

    assert once() == once()
