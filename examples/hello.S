# Hello on the simulated machine: write a string to the 16550 UART, then stop the board through
# the test finisher (0x5555 = pass). Run: virtlevels machine run examples/hello.S
.globl _start
_start:
  li t0, 0x10000000
  la t1, msg
1: lbu t2, 0(t1)
  beqz t2, 2f
  sb t2, 0(t0)
  addi t1, t1, 1
  j 1b
2: li t0, 0x100000
  li t1, 0x5555
  sw t1, 0(t0)
msg: .asciz "hello\n"
