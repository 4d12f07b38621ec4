# amo.S - every AMO (Unpriv 8.4): rd gets the old value, memory the result; signed and unsigned
# min/max across the sign boundary; rd = x0.
# Not here: a misaligned AMO. Priv 3.1.15 names it a store/AMO address-misaligned exception
# (cause 6), which we raise; QEMU 7.2 raises cause 4 (load address misaligned), a QEMU bug.
# tests/machine/test_isa_a.py checks ours.
    .equ MEM, 0x80008000

    .text
    .globl _start
_start:
    la t0, trap_print
    csrw mtvec, t0
    li s0, MEM
    li s1, 0x80000001
    li s2, 0x7fffffff
    li s3, -2

    sw s1, 0(s0)
    amoswap.w a0, s2, (s0)
    jal print_hex
    lw a0, 0(s0)
    jal print_hex
    amoadd.w a0, s2, (s0)           # 0x7fffffff + 0x7fffffff wraps
    jal print_hex
    lw a0, 0(s0)
    jal print_hex
    amoxor.w a0, s1, (s0)
    jal print_hex
    lw a0, 0(s0)
    jal print_hex
    amoand.w.aq a0, s3, (s0)
    jal print_hex
    lw a0, 0(s0)
    jal print_hex
    amoor.w.rl a0, s1, (s0)
    jal print_hex
    lw a0, 0(s0)
    jal print_hex

    sw s1, 0(s0)
    amomin.w a0, s2, (s0)           # signed: 0x80000001 < 0x7fffffff
    jal print_hex
    lw a0, 0(s0)
    jal print_hex
    amominu.w a0, s2, (s0)          # unsigned: 0x7fffffff is smaller
    jal print_hex
    lw a0, 0(s0)
    jal print_hex
    amomax.w a0, s3, (s0)           # signed: 0x7fffffff > -2
    jal print_hex
    lw a0, 0(s0)
    jal print_hex
    amomaxu.w.aqrl a0, s3, (s0)     # unsigned: 0xfffffffe is larger
    jal print_hex
    lw a0, 0(s0)
    jal print_hex
    amomin.w a0, s3, (s0)
    jal print_hex
    amomaxu.w a0, zero, (s0)
    jal print_hex

    # rd = x0 still writes memory
    amoswap.w zero, s1, (s0)
    lw a0, 0(s0)
    jal print_hex
    amoadd.w zero, s1, (s0)
    lw a0, 0(s0)
    jal print_hex
    j pass
