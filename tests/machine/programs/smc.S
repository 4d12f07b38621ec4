# smc.S - self-modifying code made visible by FENCE.I (Unpriv 3.1): a routine is patched three
# times and run between patches; the loop runs it several times so a block translator has it
# cached before each patch.
    .text
    .globl _start
_start:
    li s1, 0
    li s2, 0
    lw t0, add1
    sw t0, patch, t1
    fence.i
    li s3, 4
1:  jal routine
    addi s3, s3, -1
    bnez s3, 1b
    mv a0, s1
    jal print_hex                   # 4

    lw t0, add16
    sw t0, patch, t1
    fence.i
    li s3, 3
1:  jal routine
    addi s3, s3, -1
    bnez s3, 1b
    mv a0, s1
    jal print_hex                   # 4 + 48

    lw t0, set_s2
    sw t0, patch, t1
    fence.i
    jal routine
    mv a0, s1
    jal print_hex
    mv a0, s2
    jal print_hex

    # a patch of the very next instruction in the same block
    la t0, 2f
    lw t1, add16
    sw t1, 0(t0)
    fence.i
2:  nop
    mv a0, s1
    jal print_hex
    j pass

routine:
patch:
    nop
    ret

add1:
    addi s1, s1, 1
add16:
    addi s1, s1, 16
set_s2:
    li s2, 0x99
