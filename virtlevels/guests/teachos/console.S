# console.S - output on the 16550 UART at UART_BASE, by direct MMIO through the kernel's
# mapping (each byte: poll LSR until the transmitter is empty, then store to THR). Under a
# hypervisor every one of these accesses is an MMIO exit, which is what we want to count.

    .equ UART_THR, 0
    .equ UART_LSR, 5
    .equ LSR_THRE, 0x20                # 16550 LSR bit 5: transmit holding register empty

    .text
# uart_putc(a0 = byte); clobbers t0, t1.
uart_putc:
    li    t0, UART_BASE
1:  lbu   t1, UART_LSR(t0)
    andi  t1, t1, LSR_THRE
    beqz  t1, 1b
    sb    a0, UART_THR(t0)
    ret

# puts(a0 = NUL-terminated string).
puts:
    addi  sp, sp, -16
    sw    ra, 12(sp)
    sw    s0, 8(sp)
    mv    s0, a0
1:  lbu   a0, 0(s0)
    beqz  a0, 2f
    call  uart_putc
    addi  s0, s0, 1
    j     1b
2:  lw    s0, 8(sp)
    lw    ra, 12(sp)
    addi  sp, sp, 16
    ret

# put_dec(a0 = unsigned number) in decimal.
put_dec:
    addi  sp, sp, -32
    sw    ra, 28(sp)
    sw    s0, 24(sp)
    mv    t2, a0
    addi  s0, sp, 16                   # digits are built backwards from sp+16
    sb    zero, 0(s0)
    li    t3, 10
1:  remu  t4, t2, t3
    divu  t2, t2, t3
    addi  t4, t4, '0'
    addi  s0, s0, -1
    sb    t4, 0(s0)
    bnez  t2, 1b
    mv    a0, s0
    call  puts
    lw    s0, 24(sp)
    lw    ra, 28(sp)
    addi  sp, sp, 32
    ret

# put_hex(a0) as 0x and eight hex digits.
put_hex:
    addi  sp, sp, -16
    sw    ra, 12(sp)
    sw    s0, 8(sp)
    sw    s1, 4(sp)
    mv    s0, a0
    li    a0, '0'
    call  uart_putc
    li    a0, 'x'
    call  uart_putc
    li    s1, 28
1:  srl   a0, s0, s1
    andi  a0, a0, 15
    addi  a0, a0, '0'
    li    t2, '9'
    bleu  a0, t2, 2f
    addi  a0, a0, 'a' - '9' - 1
2:  call  uart_putc
    addi  s1, s1, -4
    bgez  s1, 1b
    lw    s1, 4(sp)
    lw    s0, 8(sp)
    lw    ra, 12(sp)
    addi  sp, sp, 16
    ret
