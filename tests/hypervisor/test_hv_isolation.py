"""Resource control, fuzzed: a guest never reaches memory outside its allocation, nor another VM's.

A random S-mode guest stores to and loads from random physical addresses (its access faults are
skipped by its own trap handler) under each technique, next to a second VM on the same
hypervisor. Afterwards the second VM's RAM and every host page that the hypervisor has not handed
out (to a VM, or to its own shadow/G-stage/translation structures) are byte-for-byte unchanged.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from virtlevels_hypervisor.equivalence import host_machine
from virtlevels_hypervisor.hypervisor import Hypervisor

from virtlevels.guests.builder import build_firmware
from virtlevels.guests.layout import KERNEL_BASE
from virtlevels.machine.asm import assemble
from virtlevels.machine.image import Image
from virtlevels.machine.memory import PAGE_SHIFT

MIB = 1 << 20
TECHNIQUES = ["emulate", "trap", "bt", "pv", "hw"]


def probe_guest(accesses: list[tuple[int, int, bool]]) -> Image:
    lines = ["    .text", "    .globl _start", "_start:", "    la t0, skip", "    csrw stvec, t0"]
    for addr, value, store in accesses:
        lines += [f"    li t1, {addr}", f"    li t2, {value}"]
        lines.append("    sw t2, 0(t1)" if store else "    lw t3, 0(t1)")
    lines += ["    li a7, 0x53525354", "    li a6, 0", "    li a0, 0", "    li a1, 0", "    ecall",
              "1:  j 1b", "skip:", "    csrr t0, sepc", "    addi t0, t0, 4", "    csrw sepc, t0",
              "    sret"]  # fmt: skip
    fw = build_firmware()
    kernel = assemble("\n".join(lines) + "\n", base=KERNEL_BASE)
    return Image(fw.segments + kernel.segments, fw.entry, {**fw.symbols, **kernel.symbols})


# Anywhere in the 34-bit physical space a store can name under Sv32-bare, mostly where it hurts:
# just outside the guest's RAM, the host's RAM beyond it, the device window.
address = st.one_of(
    st.integers(0, 0xFFFF_FFFC).map(lambda a: a & ~3),
    st.integers(0x8000_0000 - 64, 0x8000_0000 + 40 * MIB).map(lambda a: a & ~3),
    st.integers(0x1000_0000, 0x1000_2000).map(lambda a: a & ~3),
)
# Stores to the devices a guest owns can end its own run (the finisher, SBI): that is its business.
access = st.tuples(address, st.integers(0, 0xFFFF_FFFF), st.booleans()).filter(
    lambda a: not 0x10_0000 <= a[0] < 0x10_1000
)


def _pool_allocated(hv: Hypervisor, ppn: int) -> bool:
    return not any(start <= ppn < start + n for start, n in hv.pool.free)


@pytest.mark.parametrize("technique", TECHNIQUES)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(accesses=st.lists(access, min_size=1, max_size=24))
def test_guests_cannot_reach_outside_their_allocation(
    technique: str, accesses: list[tuple[int, int, bool]]
) -> None:
    host = host_machine(None, technique, ram_size=64 * MIB)
    hv = Hypervisor(host)
    victim = hv.create_vm(technique, name="victim")
    victim.phys_write(victim.ram_base, bytes(range(256)) * 16)
    attacker = hv.create_vm(technique, name="attacker")
    host.phys_write(host.ram_base, b"hypervisor" * 100)  # the hypervisor's own reserved memory
    mem = host.bus.memory
    before = {ppn: bytes(p[0]) for ppn, p in mem.pages.items() if not _pool_allocated(hv, ppn)}
    victim_before = victim.guest_memory.snapshot()
    attacker.load(probe_guest(accesses))
    attacker.run(200_000, engine="fast")
    after = {ppn: bytes(p[0]) for ppn, p in mem.pages.items() if not _pool_allocated(hv, ppn)}
    # Pages first touched during the run (reads) must still be zero.
    for ppn in set(after) - set(before):
        assert after[ppn] == bytes(4096), f"host page 0x{ppn << PAGE_SHIFT:08x} written"
    for ppn, data in before.items():
        assert after[ppn] == data, f"host page 0x{ppn << PAGE_SHIFT:08x} changed"
    assert victim.guest_memory.snapshot() == victim_before
