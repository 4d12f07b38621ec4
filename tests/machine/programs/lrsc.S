# lrsc.S - LR/SC (Unpriv 8.2): success writes 0 to rd and stores; SC without a reservation, to
# another address than the LR's, or a second time fails (nonzero rd, memory unchanged); a new
# LR replaces the reservation; a misaligned LR is a load address-misaligned exception (cause 4).
# Also a CAS loop as software writes it.
# Not here: a misaligned SC. Unpriv 8.2 requires an address-misaligned (or access-fault)
# exception, which we raise (cause 6); QEMU 7.2 checks the reservation first and just fails.
    .equ MEM, 0x80008000

    .text
    .globl _start
_start:
    la t0, trap_print
    csrw mtvec, t0
    li s0, MEM
    li s1, 0x11111111
    li s2, 0x22222222
    sw s1, 0(s0)
    sw s1, 4(s0)

    lr.w a0, (s0)
    jal print_hex                   # print_hex touches only tohost/fromhost, not MEM
    lr.w s3, (s0)
    sc.w a0, s2, (s0)
    jal print_hex
    lw a0, 0(s0)
    jal print_hex
    # second SC: the reservation is gone
    sc.w a0, s1, (s0)
    jal print_hex
    lw a0, 0(s0)
    jal print_hex
    # SC to another word than the LR's
    lr.w s3, (s0)
    addi s4, s0, 4
    sc.w a0, s2, (s4)
    jal print_hex
    lw a0, 4(s0)
    jal print_hex
    # a newer LR replaces the reservation
    lr.w s3, (s0)
    lr.w s3, (s4)
    sc.w a0, s1, (s0)
    jal print_hex
    lw a0, 0(s0)
    jal print_hex
    # aq/rl forms
    lr.w.aq s3, (s4)
    sc.w.rl a0, s2, (s4)
    jal print_hex
    lw a0, 4(s0)
    jal print_hex

    # compare-and-swap loop: increment MEM three times
    li s5, 3
1:  lr.w.aqrl t2, (s0)
    addi t2, t2, 1
    sc.w.aqrl t3, t2, (s0)
    bnez t3, 1b
    addi s5, s5, -1
    bnez s5, 1b
    lw a0, 0(s0)
    jal print_hex

    # misaligned LR
    addi s6, s0, 1
    lr.w s3, (s6)
    j pass
