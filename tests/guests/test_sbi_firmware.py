"""The SBI firmware on its own: a small S-mode program makes SBI calls and records the answers."""

from __future__ import annotations

import struct

import attrs

from virtlevels.guests import build_firmware
from virtlevels.guests.layout import KERNEL_BASE
from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine
from virtlevels.machine.image import Image
from virtlevels.machine.machine import PhysicalMachine, RunResult


def boot_supervisor(source: str, limit: int = 200_000) -> tuple[PhysicalMachine, RunResult, Image]:
    """Firmware + ``source`` assembled as the S-mode payload at the jump address."""
    fw = build_firmware()
    payload = assemble(source, "payload.S", base=KERNEL_BASE)
    image = Image(fw.segments + payload.segments, fw.entry, {**fw.symbols, **payload.symbols})
    machine = virt_machine()
    machine.load(image)
    return machine, machine.run(limit), image


SBI_CALLS = r"""
    .equ VLP, 0x09564C50
    .text
    .globl _start
_start:
    la    s0, results
    sw    a0, 88(s0)                   # the boot protocol: a0 = hartid
    sw    a1, 92(s0)                   #                    a1 = 0 (no device tree)
    csrr  t0, sstatus                  # we run in S-mode: this would trap from U
    li    a7, 0x10                     # base: get_spec_version
    li    a6, 0
    ecall
    sw    a0, 0(s0)
    sw    a1, 4(s0)
    li    a6, 3                        # base: probe_extension(TIME)
    li    a0, 0x54494D45
    ecall
    sw    a1, 8(s0)
    li    a0, 0x12345678               # probe_extension(unknown)
    ecall
    sw    a1, 12(s0)
    li    a7, 0x12345678               # an unknown extension
    li    a6, 0
    ecall
    sw    a0, 16(s0)
    li    a7, 0x10                     # get_impl_id
    li    a6, 1
    ecall
    sw    a1, 20(s0)
    li    a7, 0x4442434E               # DBCN console_write("dbcn\n")
    li    a6, 0
    li    a0, 5
    la    a1, msg
    li    a2, 0
    ecall
    sw    a0, 24(s0)
    sw    a1, 28(s0)
    li    a7, 1                        # legacy console_putchar('!')
    li    a0, '!'
    ecall
    li    a7, 0x4442434E               # DBCN console_write_byte('\n')
    li    a6, 2
    li    a0, '\n'
    ecall
    li    a7, VLP                      # csr_read(mstatus): not a supervisor CSR
    li    a6, 0
    li    a0, 0x300
    ecall
    sw    a0, 32(s0)
    li    a6, 1                        # csr_write(sscratch, 0x1234) -> old value
    li    a0, 0x140
    li    a1, 0x1234
    ecall
    sw    a1, 36(s0)
    li    a6, 2                        # csr_set(sscratch, 0x10000) -> old value
    li    a0, 0x140
    li    a1, 0x10000
    ecall
    sw    a1, 40(s0)
    csrr  t0, sscratch                 # the firmware changed the real CSR (native PV)
    sw    t0, 44(s0)
    la    t0, pairs                    # mmu_update: one good pair, then one in the firmware
    la    t1, target
    sw    t1, 0(t0)
    li    a7, VLP
    li    a6, 5
    mv    a0, t0
    li    a1, 2
    li    t3, 0x5A5A                   # t3 must survive the call (SBI preserves all but a0/a1)
    ecall
    sw    a0, 48(s0)
    sw    a1, 52(s0)
    sw    t3, 56(s0)
    li    a6, 9                        # trap_info: scause/sepc/stval/sstatus of the last trap
    la    a0, info
    ecall
    sw    a0, 60(s0)
    li    a7, 0x53525354               # SRST: shutdown, reason 0xE000_0000 | 42
    li    a6, 0
    li    a0, 0
    li    a1, 0xE000002A
    ecall
1:  j     1b

    .rodata
msg:
    .ascii "dbcn\n"
    .data
    .balign 8
pairs:
    .word 0, 0xCAFE                    # (our word `target`, 0xCAFE)
    .word 0x80000000, 0xBAD            # the firmware's first word: refused
target:
    .word 0
info:
    .space 16
results:
    .space 96
"""


def _words(machine: PhysicalMachine, addr: int, n: int) -> list[int]:
    return list(struct.unpack(f"<{n}I", machine.memory.read_bytes(addr, 4 * n)))


def test_sbi_calls_answer_as_the_specification_says() -> None:
    machine, result, image = boot_supervisor(SBI_CALLS)
    assert (result.status, result.exit_code) == ("fail", 42)  # SRST reason carried the code
    assert result.uart == "dbcn\n!\n"
    r = _words(machine, image.symbols["results"], 24)
    assert r[0:2] == [0, 0x0200_0000]            # SBI 2.0
    assert r[2] == 1 and r[3] == 0               # TIME is there, 0x12345678 is not
    assert r[4] == 0xFFFF_FFFE                   # SBI_ERR_NOT_SUPPORTED
    assert r[5] == 0x564C
    assert r[6:8] == [0, 5]                      # DBCN wrote 5 bytes
    assert r[8] == 0xFFFF_FFFD                   # SBI_ERR_INVALID_PARAM for mstatus
    assert r[9:12] == [0, 0x1234, 0x11234]       # csrrw/csrrs-like old values; the CSR changed
    assert r[12:15] == [0xFFFF_FFFB, 1, 0x5A5A]  # INVALID_ADDRESS after 1 pair; t3 preserved
    assert r[15] == 0
    assert r[22:24] == [0, 0]                    # hartid 0, no device tree
    assert _words(machine, image.symbols["target"], 1) == [0xCAFE]
    assert machine.memory.read_bytes(0x8000_0000, 4) != b"\xad\x0b\x00\x00"
    assert result.traps.get("illegal_instruction", 0) == 0


TIMER = r"""
    .text
    .globl _start
_start:
    la    t0, handler
    csrw  stvec, t0
    li    t0, 0x20
    csrs  sie, t0                      # STIE
    rdtime a0
    addi  a0, a0, 50
    li    a1, 0
    li    a7, 0x54494D45               # set_timer(now + 50)
    li    a6, 0
    ecall
    csrsi sstatus, 2                   # SIE
1:  lw    t0, seen
    beqz  t0, 1b
    li    a7, 0x53525354
    li    a6, 0
    li    a0, 0
    li    a1, 0                        # shutdown, no reason: pass
    ecall
    .balign 4
handler:
    csrr  t0, scause
    la    t1, seen
    sw    t0, 0(t1)
    li    a0, -1                       # set_timer(far future) clears STIP
    li    a1, -1
    li    a7, 0x54494D45
    li    a6, 0
    ecall
    sret
    .data
seen: .word 0
"""


def test_machine_timer_is_forwarded_as_a_supervisor_timer_interrupt() -> None:
    machine, result, image = boot_supervisor(TIMER)
    assert (result.status, result.exit_code) == ("pass", 0)
    assert _words(machine, image.symbols["seen"], 1) == [0x8000_0005]  # interrupt, cause 5
    assert result.traps["machine_timer_interrupt"] == 1
    assert result.traps["supervisor_timer_interrupt"] == 1


def test_srst_reboot_asks_the_finisher_for_a_reset() -> None:
    machine, result, _ = boot_supervisor(
        ".globl _start\n_start: li a7, 0x53525354\n li a6, 0\n li a0, 1\n li a1, 0\n ecall\n1: j 1b\n"
    )
    assert machine.device("test-finisher").last_status == "reset"


def test_other_harts_park_and_hart_zero_boots() -> None:
    fw = build_firmware()
    payload = assemble(".globl _start\n_start: li t0, 500\n1: addi t0, t0, -1\n bnez t0, 1b\n"
                       " li a7, 1\n li a0, 'k'\n ecall\n li a7, 8\n ecall\n", "p.S", base=KERNEL_BASE)
    machine = virt_machine(num_harts=2)
    machine.load(attrs.evolve(fw, segments=fw.segments + payload.segments))
    result = machine.run(100_000)
    assert (result.uart, result.status) == ("k", "pass")  # legacy shutdown passes
    assert machine.harts[1].priv == 3 and machine.harts[1].wfi
