# hv_dirtier.S - a guest that keeps dirtying memory (for live-migration tests): grow the heap by
# PAGES pages, then PASSES times write (pass * 1000 + page) into a word of every page, read them
# back into a sum and print "dirtier <pid>: <pass> <sum>", spinning a little between passes.
# Exit 0; 1 if a value did not survive.

    .equ SYS_WRITE, 64
    .equ SYS_EXIT, 93
    .equ SYS_GETPID, 172
    .equ SYS_BRK, 214
    .equ PAGES, 24
    .equ PASSES, 30
    .equ SPIN, 200

    .text
    .globl _start
_start:
    li    a7, SYS_GETPID
    ecall
    mv    s4, a0                       # s4 = pid
    li    a0, 0
    li    a7, SYS_BRK
    ecall
    li    t0, 4095
    add   s0, a0, t0
    srli  s0, s0, 12
    slli  s0, s0, 12                   # s0 = first page
    li    t0, PAGES * 4096
    add   a0, s0, t0
    mv    s1, a0                       # s1 = end
    li    a7, SYS_BRK
    ecall
    bne   a0, s1, 9f
    li    s2, 1                        # s2 = pass
1:  mv    t0, s0                       # write pass * 1000 + page on every page
    li    t1, 0
    li    t4, 1000
    mul   t5, s2, t4
2:  add   t3, t5, t1
    sw    t3, 0(t0)
    li    t2, 4096
    add   t0, t0, t2
    addi  t1, t1, 1
    bltu  t0, s1, 2b
    mv    t0, s0                       # read back: s3 = sum, check each value
    li    t1, 0
    li    s3, 0
3:  lw    t3, 0(t0)
    add   t6, t5, t1
    bne   t3, t6, 9f
    add   s3, s3, t3
    li    t2, 4096
    add   t0, t0, t2
    addi  t1, t1, 1
    bltu  t0, s1, 3b
    la    a0, line                     # "dirtier <pid>: <pass> <sum>\n"
    la    a1, prefix
    call  append_str
    mv    a1, s4
    call  append_dec
    la    a1, colon
    call  append_str
    mv    a1, s2
    call  append_dec
    li    t0, ' '
    sb    t0, 0(a0)
    addi  a0, a0, 1
    mv    a1, s3
    call  append_dec
    li    t0, '\n'
    sb    t0, 0(a0)
    addi  a0, a0, 1
    la    a1, line
    sub   a2, a0, a1
    li    a0, 1
    li    a7, SYS_WRITE
    ecall
    li    t0, SPIN
4:  addi  t0, t0, -1
    bnez  t0, 4b
    addi  s2, s2, 1
    li    t0, PASSES
    bleu  s2, t0, 1b
    li    a0, 0
    li    a7, SYS_EXIT
    ecall
9:  li    a0, 1
    li    a7, SYS_EXIT
    ecall

append_str:
1:  lbu   t0, 0(a1)
    beqz  t0, 2f
    sb    t0, 0(a0)
    addi  a0, a0, 1
    addi  a1, a1, 1
    j     1b
2:  ret

append_dec:
    addi  sp, sp, -16
    addi  t1, sp, 16
    li    t2, 10
1:  remu  t3, a1, t2
    divu  a1, a1, t2
    addi  t3, t3, '0'
    addi  t1, t1, -1
    sb    t3, 0(t1)
    bnez  a1, 1b
    addi  t2, sp, 16
2:  lbu   t3, 0(t1)
    sb    t3, 0(a0)
    addi  a0, a0, 1
    addi  t1, t1, 1
    bltu  t1, t2, 2b
    addi  sp, sp, 16
    ret

    .rodata
prefix:
    .asciz "dirtier "
colon:
    .asciz ": "

    .bss
line:
    .space 64
