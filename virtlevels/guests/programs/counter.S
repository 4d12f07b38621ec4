# counter.S - count to COUNT, printing "counter <pid>: <i>" each time (one write per line, so
# lines never mix), with a busy loop of SPIN iterations in between. Two copies interleave
# because the timer preempts them in the busy loop.

    .equ SYS_WRITE, 64
    .equ SYS_EXIT, 93
    .equ SYS_GETPID, 172
    .equ COUNT, 4
    .equ SPIN, 25000

    .text
    .globl _start
_start:
    li    a7, SYS_GETPID
    ecall
    mv    s0, a0                       # s0 = pid
    li    s1, 1                        # s1 = i
1:  la    a0, line                     # build the line in `line`
    la    a1, prefix
    call  append_str
    mv    a1, s0
    call  append_dec
    la    a1, colon
    call  append_str
    mv    a1, s1
    call  append_dec
    li    t0, '\n'
    sb    t0, 0(a0)
    addi  a0, a0, 1
    la    a1, line
    sub   a2, a0, a1
    li    a0, 1
    li    a7, SYS_WRITE
    ecall
    li    t0, SPIN                     # burn time so the timer interrupt lands in here
2:  addi  t0, t0, -1
    bnez  t0, 2b
    addi  s1, s1, 1
    li    t0, COUNT
    bleu  s1, t0, 1b
    li    a0, 0
    li    a7, SYS_EXIT
    ecall

# append_str(a0 = end of the buffer, a1 = NUL-terminated string) -> a0 = new end.
append_str:
1:  lbu   t0, 0(a1)
    beqz  t0, 2f
    sb    t0, 0(a0)
    addi  a0, a0, 1
    addi  a1, a1, 1
    j     1b
2:  ret

# append_dec(a0 = end of the buffer, a1 = unsigned number) -> a0 = new end.
append_dec:
    addi  sp, sp, -16
    addi  t1, sp, 16                   # digits, backwards, on the stack
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
    .asciz "counter "
colon:
    .asciz ": "

    .bss
line:
    .space 64
