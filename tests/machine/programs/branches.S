# branches.S - conditional branches on signed/unsigned edge values, jal/jalr link values,
# jalr clearing bit 0 of the target and reading rs1 before writing rd (Unpriv 2.5).
# Each branch test prints 1 if taken, 0 if not.
    .text
    .globl _start
_start:
    li s0, -1
    li s1, 1
    li s2, 0x80000000
    li s3, 0x7fffffff

    li a0, 0
    blt s0, s1, 1f
    j 2f
1:  li a0, 1
2:  jal print_hex
    li a0, 0
    bltu s0, s1, 1f
    j 2f
1:  li a0, 1
2:  jal print_hex
    li a0, 0
    bge s3, s2, 1f
    j 2f
1:  li a0, 1
2:  jal print_hex
    li a0, 0
    bgeu s3, s2, 1f
    j 2f
1:  li a0, 1
2:  jal print_hex
    li a0, 0
    bge s2, s2, 1f
    j 2f
1:  li a0, 1
2:  jal print_hex
    li a0, 0
    bltu s2, s2, 1f
    j 2f
1:  li a0, 1
2:  jal print_hex
    li a0, 0
    bne s0, s0, 1f
    j 2f
1:  li a0, 1
2:  jal print_hex
    li a0, 0
    beq s0, s0, 1f
    j 2f
1:  li a0, 1
2:  jal print_hex
    li a0, 0
    bgtu s0, s2, 1f         # pseudo: bltu s2, s0
    j 2f
1:  li a0, 1
2:  jal print_hex
    li a0, 0
    blez s2, 1f
    j 2f
1:  li a0, 1
2:  jal print_hex
    # A backward branch loop: sum 1..10.
    li s4, 0
    li s5, 10
3:  add s4, s4, s5
    addi s5, s5, -1
    bnez s5, 3b
    mv a0, s4
    jal print_hex

    # jal writes pc+4; jalr clears bit 0 of rs1+imm.
    jal s6, 4f
4:  la t0, 4b
    sub a0, s6, t0
    jal print_hex
    la t0, 5f
    addi t0, t0, 1
    jalr s7, 0(t0)
5:  la t1, 5b
    sub a0, s7, t1
    jal print_hex
    # rd == rs1: the target uses the old value.
    la t0, 6f - 4
    jalr t0, 4(t0)
6:  la t1, 6b
    sub a0, t0, t1
    jal print_hex
    # A negative jalr offset.
    la t0, 7f + 16
    jalr zero, -16(t0)
    li a0, 0xbad
    jal print_hex
7:  li a0, 0x600d
    jal print_hex
    j pass
