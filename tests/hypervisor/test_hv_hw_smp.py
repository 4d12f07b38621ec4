"""Several vCPUs under hardware assistance: vCPU i runs on host hart i mod n, time-shared round robin."""

from __future__ import annotations

import pytest
from virtlevels_hypervisor.hypervisor import Hypervisor

from virtlevels.machine.asm import assemble
from virtlevels.machine.machine import PhysicalMachine

SMP = """
    .text
    .globl _start
_start:                           # every vCPU starts here in S-mode with a0 = its hart id
    mv    s0, a0
    addi  t0, s0, 1
    li    t1, 700
    mul   t1, t1, t0              # n = 700 * (id + 1)
    li    t2, 0
    li    t3, 0
1:  addi  t3, t3, 1
    add   t2, t2, t3
    blt   t3, t1, 1b              # t2 = 1 + 2 + ... + n
    la    t4, results
    slli  t5, s0, 2
    add   t4, t4, t5
    sw    t2, 0(t4)
    la    t4, done
    li    t5, 1
    amoadd.w zero, t5, (t4)
    bnez  s0, park
    li    t6, {nv}
2:  lw    t5, 0(t4)               # vCPU 0 waits for the others, then shuts the VM down
    blt   t5, t6, 2b
    li    a0, 0
    li    a1, 0
    li    a6, 0
    li    a7, 0x53525354
    ecall
park:
    wfi
    j     park
    .data
    .balign 4
done:
    .word 0
results:
    .space 64
"""


@pytest.mark.parametrize(("host_harts", "vcpus"), [(2, 3), (1, 2), (4, 2)])
def test_vcpus_are_scheduled_on_the_hosts_harts(host_harts: int, vcpus: int) -> None:
    host = PhysicalMachine(hypervisor=True, num_harts=host_harts)
    hv = Hypervisor(host)
    vm = hv.create_vm("hw", vcpus=vcpus)
    image = assemble(SMP.format(nv=vcpus), "smp.S", base=0x8020_0000)
    vm.load(image)
    r = vm.run(2_000_000, engine="fast")
    assert (r.status, r.exit_code) == ("pass", 0)
    results = vm.phys_read(image.symbol("results"), 4 * vcpus)  # type: ignore[arg-type]
    for i in range(vcpus):
        n = 700 * (i + 1)
        assert int.from_bytes(results[4 * i : 4 * i + 4], "little") == n * (n + 1) // 2
    # vCPU i ran on host hart i mod n: every host hart that has a vCPU retired VS-mode instructions.
    for j, hart in enumerate(host.harts):
        ran = sum(hart.counts_by_priv[5])
        assert (ran > 0) == (j < vcpus)
    for vcpu in vm.harts:
        assert sum(vcpu.counts_by_priv[1]) > 0  # booked on the vCPU as guest supervisor work
    assert vm.vstats.exits["virtual_instruction"] >= vcpus - 1  # the parked vCPUs' WFI
    assert all(v.wfi for v in vm.harts[1:])  # they wait; their host harts were free for others
