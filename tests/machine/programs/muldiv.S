# muldiv.S - the M extension's edge cases (Unpriv 7.1, 7.2): high halves of signed, unsigned and
# mixed products; division by zero (quotient all ones, remainder the dividend) and the
# INT_MIN / -1 overflow (quotient INT_MIN, remainder 0).
    .text
    .globl _start
_start:
    li s0, 0x80000000
    li s1, -1
    li s2, 0x7fffffff
    li s3, 3
    li s4, -7
    li s5, 0x12345678
    li s6, 0xfedcba98

    mul a0, s0, s1
    jal print_hex
    mulh a0, s0, s1
    jal print_hex
    mulhu a0, s0, s1
    jal print_hex
    mulhsu a0, s0, s1
    jal print_hex
    mulhsu a0, s1, s1
    jal print_hex
    mulhsu a0, s2, s1
    jal print_hex
    mulh a0, s0, s0
    jal print_hex
    mulhu a0, s1, s1
    jal print_hex
    mul a0, s5, s6
    jal print_hex
    mulh a0, s5, s6
    jal print_hex
    mulhu a0, s5, s6
    jal print_hex
    mulhsu a0, s6, s5
    jal print_hex
    mulhsu a0, s4, s3
    jal print_hex
    mulh a0, s4, s3
    jal print_hex

    # division by zero
    div a0, s3, zero
    jal print_hex
    divu a0, s3, zero
    jal print_hex
    rem a0, s4, zero
    jal print_hex
    remu a0, s4, zero
    jal print_hex
    # signed overflow
    div a0, s0, s1
    jal print_hex
    rem a0, s0, s1
    jal print_hex
    divu a0, s0, s1
    jal print_hex
    remu a0, s0, s1
    jal print_hex
    # rounding toward zero; the remainder has the dividend's sign
    li t2, 2
    div a0, s4, t2
    jal print_hex
    rem a0, s4, t2
    jal print_hex
    li t2, -2
    li t3, 7
    div a0, t3, t2
    jal print_hex
    rem a0, t3, t2
    jal print_hex
    divu a0, s4, s3
    jal print_hex
    remu a0, s4, s3
    jal print_hex
    div a0, s6, s5
    jal print_hex
    rem a0, s6, s5
    jal print_hex
    j pass
