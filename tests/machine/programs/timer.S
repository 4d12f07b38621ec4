# timer.S - CLINT interrupts through a vectored mtvec (Priv 3.1.7: interrupt cause n goes to
# BASE + 4n): a machine software interrupt (msip) and a machine timer interrupt (mtimecmp).
# WFI wakes on a pending enabled interrupt even with mstatus.MIE = 0 and then just continues
# (Priv 3.3.3). Only that the interrupts are taken and their causes are checked, never when:
# QEMU's mtime follows the host clock.
    .equ CLINT, 0x02000000
    .equ MSIP, CLINT
    .equ MTIMECMP, CLINT + 0x4000
    .equ MTIME, CLINT + 0xbff8

    .text
    .globl _start
_start:
    la t0, vectors
    ori t0, t0, 1
    csrw mtvec, t0
    csrr a0, mtvec
    la t0, vectors
    sub a0, a0, t0
    jal print_hex

    # software interrupt: pending but disabled, then WFI with MIE = 0, then enabled
    li s0, MSIP
    li t0, 1
    sw t0, 0(s0)
    csrr a0, mip
    andi a0, a0, 1 << 3
    jal print_hex
    csrsi mie, 1 << 3
    wfi                             # returns at once: MSIP is pending and enabled in mie
    li a0, 0x3a
    jal print_hex
    li s2, 0
    csrsi mstatus, 1 << 3           # MIE: taken now
    mv a0, s2
    jal print_hex                   # the handler ran once

    # timer interrupt in about 1000 ticks
    csrci mie, 1 << 3
    li s1, MTIMECMP
    li t0, -1
    sw t0, 4(s1)                    # high word first, so no early match on the way
    li t0, MTIME
    lw t1, 0(t0)
    lw t2, 4(t0)
    addi t1, t1, 1000
    sw t1, 0(s1)
    sw t2, 4(s1)
    li t0, 1 << 7
    csrs mie, t0
1:  wfi
    j 1b

    .balign 64
vectors:
    j trap_print                    # exceptions
    j unexpected
    j unexpected
    j msi                           # 3: machine software interrupt
    j unexpected
    j unexpected
    j unexpected
    j mti                           # 7: machine timer interrupt
    j unexpected

msi:
    csrr a0, mcause
    jal print_hex
    sw zero, 0(s0)                  # clear msip
    csrr a0, mip
    andi a0, a0, 1 << 3
    jal print_hex
    csrr a0, mstatus                # MPIE = 1, MIE = 0 while handling
    jal print_hex
    addi s2, s2, 1
    mret

mti:
    csrr a0, mcause
    jal print_hex
    csrr a0, mip
    andi a0, a0, 1 << 7
    jal print_hex
    li t0, -1
    sw t0, 4(s1)                    # mtimecmp far in the future: MTIP drops
    csrr a0, mip
    andi a0, a0, 1 << 7
    jal print_hex
    j pass

unexpected:
    csrr a0, mcause
    jal print_hex
    li a0, 2
    j fail
