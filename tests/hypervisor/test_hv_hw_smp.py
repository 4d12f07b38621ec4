"""Several vCPUs: under hardware assistance vCPU i runs on host hart i mod n, time-shared round robin;
secondary vCPUs wait STOPPED until the guest kernel starts them with SBI HSM (every "kernel" boot)."""

from __future__ import annotations

import pytest
from virtlevels_hypervisor.equivalence import group_lines, host_machine
from virtlevels_hypervisor.hypervisor import Hypervisor
from virtlevels_hypervisor.sbi import hsm_status

from virtlevels.guests import build_teachos
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.machine import PhysicalMachine

SMP = """
    .text
    .globl _start
_start:                           # vCPU 0 boots here; it starts the others here too (SBI HSM)
    mv    s0, a0
    bnez  s0, work
    li    s1, 1
    li    s2, {nv}
3:  bge   s1, s2, work
    mv    a0, s1                  # hart_start(hartid, _start, opaque 0)
    la    a1, _start
    li    a2, 0
    li    a6, 0
    li    a7, 0x48534D
    ecall
    addi  s1, s1, 1
    j     3b
work:
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


# -- SBI HSM (SBI 2.0 ch. 9): only the boot hart enters the kernel ---------------------------------------
HSM = """
    .equ HSM, 0x48534D
    .text
    .globl _start
_start:
    la    s0, out
    bnez  a0, secondary
    li    a0, 1                   # hart_get_status(1): STOPPED (1) before anyone starts it
    li    a6, 2
    li    a7, HSM
    ecall
    sw    a0, 0(s0)
    sw    a1, 4(s0)
    li    a0, 1                   # hart_start(1, secondary, 0x1234)
    la    a1, secondary
    li    a2, 0x1234
    li    a6, 0
    li    a7, HSM
    ecall
    sw    a0, 8(s0)
1:  lw    t0, 32(s0)              # wait until hart 1 has run
    beqz  t0, 1b
    li    a0, 1                   # hart_start(1, ...) again: SBI_ERR_ALREADY_AVAILABLE
    la    a1, secondary
    li    a2, 0
    li    a6, 0
    li    a7, HSM
    ecall
    sw    a0, 12(s0)
    li    a0, 9                   # no hart 9: SBI_ERR_INVALID_PARAM
    li    a1, 0
    li    a2, 0
    li    a6, 0
    li    a7, HSM
    ecall
    sw    a0, 16(s0)
    li    a0, 1                   # hart_get_status(1) while it runs: STARTED (0)
    li    a6, 2
    li    a7, HSM
    ecall
    sw    a1, 28(s0)
    li    t0, 1
    sw    t0, 48(s0)              # let hart 1 stop
2:  li    a0, 1                   # wait for hart 1's hart_stop: its status goes back to STOPPED
    li    a6, 2
    li    a7, HSM
    ecall
    beqz  a1, 2b
    sw    a1, 20(s0)
    li    a0, 1                   # a start address outside RAM: SBI_ERR_INVALID_ADDRESS
    li    a1, 0x1000
    li    a2, 0
    li    a6, 0
    li    a7, HSM
    ecall
    sw    a0, 24(s0)
    li    a0, 0                   # SRST shutdown
    li    a1, 0
    li    a6, 0
    li    a7, 0x53525354
    ecall
secondary:                        # S-mode, satp = 0, a0 = hart id, a1 = opaque
    la    s0, out
    csrr  t0, satp
    csrr  t1, sstatus
    andi  t1, t1, 2
    or    t0, t0, t1              # 0 when satp = 0 and SIE = 0
    sw    t0, 36(s0)
    sw    a1, 40(s0)
    li    t0, 1
    add   t0, t0, a0              # 1 + hart id
    sw    t0, 32(s0)
4:  lw    t0, 48(s0)              # wait for hart 0's checks
    beqz  t0, 4b
    li    a6, 1                   # hart_stop: does not return
    li    a7, HSM
    ecall
    li    t0, 0xBAD
    sw    t0, 44(s0)
3:  j     3b
    .data
    .balign 4
out:
    .space 52
"""


def _signed(word: bytes) -> int:
    return int.from_bytes(word, "little", signed=True)


@pytest.mark.parametrize("technique", ["trap", "bt", "pv", "hw"])
def test_the_kernel_starts_a_secondary_hart_with_sbi_hsm(technique: str) -> None:
    host = host_machine(None, technique, ram_size=64 << 20)
    vm = Hypervisor(host).create_vm(technique, vcpus=2)
    image = assemble(HSM, "hsm.S", base=0x8020_0000)
    vm.load(image)
    assert hsm_status(vm, 0) == 0 and hsm_status(vm, 1) == 1  # only the boot hart entered the kernel
    r = vm.run(2_000_000, engine="fast")
    assert (r.status, r.exit_code) == ("pass", 0)
    out = vm.phys_read(image.symbol("out"), 48)  # type: ignore[arg-type]
    w = [_signed(out[i : i + 4]) for i in range(0, 48, 4)]
    assert w[0:2] == [0, 1]  # get_status(1): success, STOPPED
    assert w[2] == 0  # hart_start succeeded
    assert w[8] == 2 and w[10] == 0x1234  # hart 1 ran with a0 = 1 and a1 = opaque
    assert w[9] == 0  # ... in S-mode with satp = 0 and sstatus.SIE = 0
    assert w[3] == -6 and w[4] == -3 and w[6] == -5  # already started, no such hart, bad address
    assert w[7] == 0  # STARTED while it ran
    assert w[5] == 1 and w[11] == 0  # hart_stop stopped it for good
    assert hsm_status(vm, 1) == 1 and vm.harts[1].wfi
    assert sum(vm.harts[1].counts_by_priv[1]) > 0  # the secondary's instructions ran on vCPU 1


@pytest.mark.parametrize("technique", ["trap", "hw"])
def test_single_hart_teachos_on_two_vcpus_gives_the_native_output(technique: str) -> None:
    progs = ["hello", "counter", "counter"]
    native = virt_machine(num_harts=2)
    native.load(build_teachos(progs))
    want = native.run(5_000_000, engine="fast")
    host = host_machine(None, technique)
    vm = Hypervisor(host).create_vm(technique, vcpus=2)
    vm.load(build_teachos(progs))
    r = vm.run(5_000_000, engine="fast")
    assert (r.status, r.exit_code) == (want.status, want.exit_code) == ("pass", 0)
    assert group_lines(r.uart) == group_lines(want.uart)
    assert vm.harts[1].wfi and sum(sum(c) for c in vm.harts[1].counts_by_priv.values()) == 0  # never ran
