# htif_lib.S - appended to every differential program (neither assembler has .include).
#
# print_hex: print a0 as 8 hex digits and a newline on the HTIF console.
# pass / fail: exit through tohost with value 1 (pass) or (a0 << 1) | 1 (fail, test a0).
# HTIF (riscv-isa-sim fesvr): tohost = device << 56 | cmd << 48 | payload; device 1 cmd 1 is
# putchar. On RV32 the low word is written first; the high-word store completes the command.
# The host acknowledges a putchar in fromhost, which we wait for and clear.
# trap_print: an M-mode trap handler that prints mcause, mtval and mepc, then resumes after the
# trapping instruction (exceptions only; ra is clobbered too).
# All of these clobber a0-a5 and t0-t1 only; programs keep their values in s0-s11.

    .text
print_hex:
    mv a4, ra
    mv a5, a0
    li a3, 28
1:  srl a0, a5, a3
    andi a0, a0, 15
    li t0, 10
    blt a0, t0, 2f
    addi a0, a0, 'a' - '0' - 10
2:  addi a0, a0, '0'
    jal putchar
    addi a3, a3, -4
    bgez a3, 1b
    li a0, '\n'
    jal putchar
    mv ra, a4
    ret

putchar:                        # a0 = character; clobbers a1, a2, t1
    la t1, tohost
    sw a0, 0(t1)
    li a1, 0x01010000           # device 1, cmd 1 in the high word
    sw a1, 4(t1)
    la t1, fromhost
3:  lw a2, 0(t1)
    lw a1, 4(t1)
    or a2, a2, a1
    beqz a2, 3b
    sw zero, 0(t1)
    sw zero, 4(t1)
    ret

    .balign 4
trap_print:
    csrr a0, mcause
    jal print_hex
    csrr a0, mtval
    jal print_hex
    csrr a0, mepc
    jal print_hex
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret

pass:
    li a0, 0
fail:                           # a0 = failing test number
    slli a0, a0, 1
    ori a0, a0, 1
    la t1, tohost
    sw a0, 0(t1)
    sw zero, 4(t1)
4:  j 4b

    .section .tohost, "aw", @progbits
    .balign 8
    .globl tohost
tohost:
    .dword 0
    .size tohost, 8
    .globl fromhost
fromhost:
    .dword 0
    .size fromhost, 8
