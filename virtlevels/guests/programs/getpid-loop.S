# getpid-loop.S - a system-call-heavy loop: LOOPS getpid calls, each checked against the
# first answer; prints "getpid-loop: <n> calls" and exits 0, or exits 1 on a wrong answer.

    .equ SYS_WRITE, 64
    .equ SYS_EXIT, 93
    .equ SYS_GETPID, 172
    .equ LOOPS, 200

    .text
    .globl _start
_start:
    li    a7, SYS_GETPID
    ecall
    mv    s0, a0
    li    s1, 0                        # calls made
    li    s2, LOOPS
1:  li    a7, SYS_GETPID
    ecall
    bne   a0, s0, 9f
    addi  s1, s1, 1
    bltu  s1, s2, 1b
    la    a0, msg
    call  print
    mv    a0, s1
    call  print_dec
    la    a0, msg_end
    call  print
    li    a0, 0
    li    a7, SYS_EXIT
    ecall
9:  li    a0, 1
    li    a7, SYS_EXIT
    ecall

print:
    mv    a1, a0
    mv    a2, a0
1:  lbu   t0, 0(a2)
    beqz  t0, 2f
    addi  a2, a2, 1
    j     1b
2:  sub   a2, a2, a1
    li    a0, 1
    li    a7, SYS_WRITE
    ecall
    ret

print_dec:
    addi  sp, sp, -32
    sw    ra, 28(sp)
    addi  a1, sp, 16
    sb    zero, 0(a1)
    li    t1, 10
1:  remu  t2, a0, t1
    divu  a0, a0, t1
    addi  t2, t2, '0'
    addi  a1, a1, -1
    sb    t2, 0(a1)
    bnez  a0, 1b
    mv    a0, a1
    call  print
    lw    ra, 28(sp)
    addi  sp, sp, 32
    ret

    .rodata
msg:
    .asciz "getpid-loop: "
msg_end:
    .asciz " calls\n"
