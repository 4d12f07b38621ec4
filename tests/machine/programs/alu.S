# alu.S - RV32I arithmetic edge cases: overflow, sign extension, shifts by 31, slt/sltu,
# lui/auipc, loads and stores of every width, writes to x0.  Unpriv 2.4, 2.6.
# Every result is printed (print_hex, htif_lib.S); the signature must match QEMU's.
    .equ SCRATCH, 0x80008000

    .text
    .globl _start
_start:
    # Unpriv 2.4: additions wrap, no overflow exception.
    li s0, 0x7fffffff
    addi a0, s0, 1
    jal print_hex
    li s1, 0x80000000
    sub a0, zero, s1
    jal print_hex
    li s0, -1
    addi a0, s0, 1
    jal print_hex
    add a0, s0, s1
    jal print_hex
    # Immediates are sign-extended 12-bit values.
    andi a0, s0, -2048
    jal print_hex
    ori a0, zero, -1
    jal print_hex
    xori a0, s1, -1
    jal print_hex
    addi a0, zero, 2047
    jal print_hex
    # lui places 20 bits at the top; auipc adds them to its own pc.
    lui a0, 0xfffff
    jal print_hex
    lui a0, 0x80000
    jal print_hex
1:  auipc a0, 0x12345
    jal print_hex
    auipc a0, 0
    la t0, 1b
    sub a0, a0, t0
    jal print_hex
    # Shifts use the low 5 bits of the amount (Unpriv 2.4.1).
    li s2, 1
    slli a0, s2, 31
    jal print_hex
    srli a0, s1, 31
    jal print_hex
    srai a0, s1, 31
    jal print_hex
    li s3, 63
    sll a0, s2, s3
    jal print_hex
    srl a0, s1, s3
    jal print_hex
    sra a0, s1, s3
    jal print_hex
    li s3, 32
    sra a0, s1, s3
    jal print_hex
    li s3, 0x87654321
    srai a0, s3, 4
    jal print_hex
    srli a0, s3, 4
    jal print_hex
    # slt/sltu and their immediate forms: sltiu compares with the sign-extended immediate.
    li s4, 1
    slt a0, s0, s4
    jal print_hex
    sltu a0, s0, s4
    jal print_hex
    slt a0, s1, s0
    jal print_hex
    sltu a0, s1, s0
    jal print_hex
    slti a0, s1, -2048
    jal print_hex
    sltiu a0, s1, -1
    jal print_hex
    sltiu a0, s0, -1
    jal print_hex
    sltiu a0, zero, 1
    jal print_hex
    # Loads sign- or zero-extend (Unpriv 2.6).
    li s5, SCRATCH
    li t0, 0x8081ff7f
    sw t0, 0(s5)
    lb a0, 0(s5)
    jal print_hex
    lb a0, 1(s5)
    jal print_hex
    lb a0, 3(s5)
    jal print_hex
    lbu a0, 3(s5)
    jal print_hex
    lh a0, 0(s5)
    jal print_hex
    lh a0, 2(s5)
    jal print_hex
    lhu a0, 2(s5)
    jal print_hex
    # Narrow stores write only their bytes.
    li t0, 0x11223344
    sb t0, 1(s5)
    sh t0, 2(s5)
    lw a0, 0(s5)
    jal print_hex
    # A negative offset.
    addi s6, s5, 8
    sw s1, -4(s6)
    lw a0, 4(s5)
    jal print_hex
    # Writes to x0 are discarded.
    addi zero, zero, 5
    lw zero, 0(s5)
    lui zero, 0x12345
    mv a0, zero
    jal print_hex
    j pass
