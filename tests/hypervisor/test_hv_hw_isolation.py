"""Resource control under hardware assistance: a guest's loads and stores reach only its own RAM
and its virtual devices, never other host memory nor another VM's (fuzzed with hypothesis)."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from virtlevels_hypervisor.hypervisor import Hypervisor

from virtlevels.guests import boot_teachos, build_teachos
from virtlevels.machine.asm import assemble
from virtlevels.machine.machine import PhysicalMachine
from virtlevels.machine.memory import PAGE_SIZE

MIB = 1 << 20
CODE = 0x8020_0000  # the prober's code and data (kept out of the probed addresses)
CODE_END = 0x8020_4000
SECRET = 0x5EC2E7A5
N = 24

PROBER = f"""
    .text
    .globl _start
_start:
    la    t0, skip
    csrw  stvec, t0               # an access fault skips the access
    la    s0, table
    la    s1, results
    li    s2, {N}
loop:
    lw    t1, 0(s0)               # address
    lw    t2, 4(s0)               # value
    sw    t2, 0(t1)
    li    t3, 0
    lw    t3, 0(t1)
    sw    t3, 0(s1)
    addi  s0, s0, 8
    addi  s1, s1, 4
    addi  s2, s2, -1
    bnez  s2, loop
    li    a0, 0
    li    a1, 0
    li    a6, 0
    li    a7, 0x53525354          # SRST shutdown
    ecall
    .balign 4
skip:
    csrr  t4, scause
    la    t5, faults
    lw    t6, 0(t5)
    addi  t6, t6, 1
    sw    t6, 0(t5)
    csrr  t4, sepc
    addi  t4, t4, 4
    csrw  sepc, t4
    sret
    .data
    .balign 4
faults:
    .word 0
results:
    .space {4 * N}
table:
"""


def prober(pairs: list[tuple[int, int]]) -> object:
    words = "\n".join(f"    .word {a:#x}, {v:#x}" for a, v in pairs)
    return assemble(PROBER + words + "\n", "prober.S", base=CODE)


def host_pages(host: PhysicalMachine, skip: tuple[int, int]) -> dict[int, bytes]:
    """Host RAM contents (non-zero pages) outside the host-physical range ``skip``."""
    lo, hi = skip
    out = {}
    for ppn, page in host.bus.memory.pages.items():
        if lo <= ppn << 12 < hi:
            continue
        data = bytes(page[0])
        if any(data):
            out[ppn] = data
    return out


def vm_range(vm) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    base = vm.guest_memory.hppn_of(0) << 12
    return base, base + vm.ram_size


ADDRESS = st.one_of(
    st.integers(0, 0xFFFF_FFFF),  # anywhere
    st.integers(0x7FF0_0000, 0x8000_0000),  # just below the guest's RAM
    st.integers(0x80FF_0000, 0x8200_0000),  # its end and beyond: other VMs' frames live here
    st.integers(0x8000_0000, 0x8060_0000),  # host-physical addresses of the VMM's structures
    st.sampled_from([0x8000_0000, 0x8010_0000, 0x8100_0000, 0x8140_0000, 0x8180_0000, 0xFFFF_E000,
                     0x1000_0000, 0x1000_0004, 0x0200_4000, 0x0200_BFF8, 0x0C00_0004]),  # its devices
).map(lambda a: a & ~3).filter(lambda a: not CODE <= a < CODE_END)


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(ADDRESS, st.integers(0, 0xFFFF_FFFF)), min_size=N, max_size=N))
def test_random_guest_accesses_never_reach_outside_the_allocation(pairs: list[tuple[int, int]]) -> None:
    host = PhysicalMachine(hypervisor=True)
    hv = Hypervisor(host)
    other = hv.create_vm("hw")  # a neighbour whose RAM holds a secret
    vm = hv.create_vm("hw")
    lo, hi = vm_range(vm)
    olo, ohi = vm_range(other)
    secret = struct.pack("<I", SECRET) * (PAGE_SIZE // 4)
    for off in range(0, other.ram_size, 1 * MIB):
        other.phys_write(other.ram_base + off, secret)
    host.phys_write(hv.pool.base - PAGE_SIZE, secret)  # the hypervisor's own reserved RAM
    # A store to the test finisher may end the run early: the checks hold whenever it stops.
    image = prober(pairs)
    vm.load(image)
    before = host_pages(host, (lo, hi))
    result = vm.run(200_000, engine="fast")
    assert result.status in ("pass", "fail", "limit")
    assert host_pages(host, (lo, hi)) == before  # nothing outside the VM's allocation changed
    assert vm.vstats.exits["mmio"] + vm.vstats.exits["page_fault"] > 0 or all(
        vm.ram_base <= a < vm.ram_base + vm.ram_size for a, _v in pairs)
    # Loads never returned the neighbour's (or the hypervisor's) secret unless the prober wrote it.
    results = vm.phys_read(image.symbol("results"), 4 * N)  # type: ignore[attr-defined]
    stored = {v for _a, v in pairs}
    for (addr, _v), (got,) in zip(pairs, struct.iter_unpack("<I", results), strict=True):
        if got == SECRET:
            assert SECRET in stored and vm.ram_base <= addr < vm.ram_base + vm.ram_size
    # Outside the guest's RAM and devices each access was an access fault for the guest itself.
    assert olo >= hi or ohi <= lo  # the two allocations are disjoint


def test_a_guest_access_outside_its_ram_is_an_access_fault() -> None:
    host = PhysicalMachine(hypervisor=True)
    hv = Hypervisor(host)
    vm = hv.create_vm("hw")
    lo, _hi = vm_range(vm)
    assert vm.ram_base < lo < vm.ram_base + vm.ram_size
    outside = vm.ram_base + vm.ram_size  # the first byte past its RAM (host RAM is there)
    image = prober([(outside, 0xDEADBEEF), (lo, 0xDEADBEEF)] + [(CODE_END, 1)] * (N - 2))
    vm.load(image)
    host.phys_write(lo, b"HOST")  # guest-physical 0x8000_0000 (the guest never writes there)
    host.phys_write(outside, b"XXXX")  # host-physical == the guest-physical address it tries
    r = vm.run(100_000, engine="fast")
    assert (r.status, r.exit_code) == ("pass", 0)
    faults = int.from_bytes(vm.phys_read(image.symbol("faults"), 4), "little")  # type: ignore[attr-defined]
    assert faults == 2  # the store and the load outside: access faults 7 and 5, to the guest
    assert vm.vstats.exits["page_fault"] == 2
    results = vm.phys_read(image.symbol("results"), 8)  # type: ignore[attr-defined]
    assert results[:4] == bytes(4)  # the faulting load left t3 = 0
    assert results[4:] == (0xDEADBEEF).to_bytes(4, "little")  # gpa ``lo`` is its own RAM
    assert host.phys_read(outside, 4) == b"XXXX"  # untouched
    assert host.phys_read(lo, 4) == b"HOST"  # the store to gpa ``lo`` went to hpa lo + (lo - ram_base)
    assert host.phys_read(lo + lo - vm.ram_base, 4) == (0xDEADBEEF).to_bytes(4, "little")


def test_two_vms_on_one_hypervisor_are_isolated() -> None:
    host = PhysicalMachine(hypervisor=True)
    hv = Hypervisor(host)
    a, b = hv.create_vm("hw", name="a"), hv.create_vm("hw", name="b")
    assert a.technique.gstage.vmid != b.technique.gstage.vmid
    ra, rb = vm_range(a), vm_range(b)
    assert ra[1] <= rb[0] or rb[1] <= ra[0]
    image_a = build_teachos(["hello", "counter"], timer_interval=2000)
    image_b = build_teachos(["counter", "hello"], timer_interval=2000)
    boot_teachos(a, image_a)
    boot_teachos(b, image_b)
    # Interleave them on the same host hart: each run is a slice of one VM.
    results = {}
    for _ in range(200):
        for vm in (a, b):
            if vm.name not in results:
                r = vm.run(20_000, engine="fast")
                if r.status != "limit":
                    results[vm.name] = r
        if len(results) == 2:
            break
    assert {k: (r.status, r.exit_code) for k, r in results.items()} == {"a": ("pass", 0), "b": ("pass", 0)}
    assert a.console_output().splitlines()[0] == "hello from teachos"
    assert "hello from teachos" in b.console_output()
    assert "counter 2: 4" in a.console_output() and "counter 1: 4" in b.console_output()
    assert "counter 1" not in a.console_output()  # no output crossed over
