# hello.S - the smallest teachos program: write(1, msg, len) and exit(0).
# A user program is a Linux-style static program: _start, system calls by ecall with the
# number in a7 (asm-generic numbers) and arguments in a0-a2. It is linked at USER_BASE.

    .equ SYS_WRITE, 64
    .equ SYS_EXIT, 93

    .text
    .globl _start
_start:
    li    a0, 1                        # fd 1: standard output
    la    a1, msg
    li    a2, msg_end - msg
    li    a7, SYS_WRITE
    ecall
    li    a0, 0
    li    a7, SYS_EXIT
    ecall

    .rodata
msg:
    .ascii "hello from teachos\n"
msg_end:
