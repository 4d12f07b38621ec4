# control.S - EBREAK (cause 3, mepc = the ebreak) and instruction-address-misaligned exceptions
# (cause 0) from jal, jalr and a taken branch: without C, targets must be 4-byte aligned
# (Unpriv 2.2); the exception is reported on the jump (mepc) with mtval = the target (Priv
# 3.1.16) and rd is not written. A not-taken branch to a misaligned target does not trap.
# For EBREAK, Priv 3.1.16 lets mtval be 0 or the pc (QEMU 7.2 writes 0, we and Spike the pc),
# so the handler prints 1 when mtval is one of those two. For a misaligned jal or branch
# QEMU 7.2 writes a stale pc to mtval instead of the target (its jalr is right), so mtval is
# printed only where s3 = 1.
    .text
    .globl _start
_start:
    la t0, handler
    csrw mtvec, t0

    li s3, 1
    ebreak
    li s1, 0x11
    la t0, 1f
    addi t0, t0, 2
    jalr s1, 0(t0)                  # target 2 mod 4
1:  mv a0, s1
    jal print_hex
    li s3, 0
    li s1, 0x22
    jal s1, . + 6
    mv a0, s1
    jal print_hex
    beq zero, zero, . + 10
    bne zero, zero, . + 10          # not taken: no exception
    li a0, 0x600d
    jal print_hex
    # ebreak between two computations: nothing else is disturbed
    li s3, 1
    li s2, 5
    ebreak
    addi a0, s2, 1
    jal print_hex
    j pass

handler:
    csrr a0, mcause
    jal print_hex
    csrr a0, mepc
    jal print_hex
    beqz s3, 3f
    csrr t0, mcause
    csrr a0, mtval
    li t1, 3
    bne t0, t1, 2f
    csrr t0, mepc
    sub t0, a0, t0
    seqz t0, t0
    seqz a0, a0
    or a0, a0, t0
2:  jal print_hex
3:  csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret
