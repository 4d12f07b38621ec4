# fault.S - a buggy program: it prints a line, then stores to address 0, which no page maps.
# The kernel kills it (a store page fault) and carries on with the other processes.

    .equ SYS_WRITE, 64
    .equ SYS_EXIT, 93

    .text
    .globl _start
_start:
    li    a0, 1
    la    a1, msg
    li    a2, msg_end - msg
    li    a7, SYS_WRITE
    ecall
    li    t0, 0
    sw    t0, 0(t0)                    # store page fault: the process dies here
    li    a0, 0                        # never reached
    li    a7, SYS_EXIT
    ecall

    .rodata
msg:
    .ascii "fault: about to store to NULL\n"
msg_end:
