# memtouch.S - grow the heap with brk by PAGES pages, write a word on each page (the first
# touch of each page is a page fault the kernel answers by mapping a fresh page), read them
# all back, print "memtouch: <n> pages" and exit 0 (1 if a value did not survive).

    .equ SYS_WRITE, 64
    .equ SYS_EXIT, 93
    .equ SYS_BRK, 214
    .equ PAGES, 8

    .text
    .globl _start
_start:
    li    a0, 0
    li    a7, SYS_BRK
    ecall                              # brk(0): the current break
    li    t0, 4095
    add   s0, a0, t0
    srli  s0, s0, 12
    slli  s0, s0, 12                   # s0 = first page boundary at or above it
    li    t0, PAGES * 4096
    add   a0, s0, t0
    mv    s1, a0                       # s1 = the end of the pages we want
    li    a7, SYS_BRK
    ecall
    bne   a0, s1, 9f                   # brk refused
    mv    t0, s0
    li    t1, 0
1:  sw    t1, 0(t0)                    # touch: store the page number
    li    t2, 4096
    add   t0, t0, t2
    addi  t1, t1, 1
    bltu  t0, s1, 1b
    mv    t0, s0
    li    t1, 0
2:  lw    t3, 0(t0)
    bne   t3, t1, 9f
    li    t2, 4096
    add   t0, t0, t2
    addi  t1, t1, 1
    bltu  t0, s1, 2b
    li    a0, 1
    la    a1, msg
    li    a2, msg_end - msg
    li    a7, SYS_WRITE
    ecall
    li    a0, 0
    li    a7, SYS_EXIT
    ecall
9:  li    a0, 1
    li    a7, SYS_EXIT
    ecall

    .rodata
msg:
    .ascii "memtouch: 8 pages\n"
msg_end:
