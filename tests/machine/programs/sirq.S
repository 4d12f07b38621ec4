# sirq.S - supervisor interrupts delegated through mideleg (Priv 3.1.9, 4.1.3): M-mode raises
# SSIP and STIP by writing mip; an S-level interrupt is never taken in M (Priv 3.1.6.1) but is
# taken as soon as MRET enters S, with scause = interrupt | 1 and sepc = the first S
# instruction; S clears SSIP through sip; STIP can only be cleared by M, reached by ECALL.
    .text
    .globl _start
_start:
    li t0, -1
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    la t0, m_handler
    csrw mtvec, t0
    la t0, s_handler
    csrw stvec, t0
    li t0, (1 << 1) | (1 << 5)      # delegate SSI and STI
    csrw mideleg, t0
    csrw mie, t0                    # enable them
    csrsi sstatus, 1 << 1           # SIE
    csrsi mip, 1 << 1               # SSIP: pending, but not taken in M
    csrr a0, mip
    andi a0, a0, 0x222              # S bits only: QEMU's mtimecmp resets to 0, so MTIP is set
    jal print_hex
    li s0, 0
    li t0, 0x1800
    csrc mstatus, t0
    li t0, 0x0800
    csrs mstatus, t0
    la t0, s_code
    csrw mepc, t0
    mret

s_code:
    li s1, 0x51                     # the interrupt comes before this
    mv a0, s1
    jal print_hex
    ecall                           # ask M for a timer interrupt
    li a0, 0x52
    jal print_hex
    ecall                           # the end

s_handler:
    csrr a0, scause
    jal print_hex
    csrr a0, sepc
    la t0, _start
    sub a0, a0, t0
    jal print_hex
    csrr a0, sip
    jal print_hex
    csrr t0, scause
    li t1, 0x80000001
    bne t0, t1, 1f
    csrci sip, 1 << 1               # S may clear SSIP
    sret
1:  ecall                           # only M can clear STIP

m_handler:
    csrr a0, mcause
    jal print_hex
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    addi s0, s0, 1
    li t0, 1
    beq s0, t0, 1f
    li t0, 2
    beq s0, t0, 2f
    j pass
1:  li t0, 1 << 5                   # raise STIP and go back to S
    csrs mip, t0
    mret
2:  li t0, 1 << 5                   # clear STIP; return to the S handler's caller
    csrc mip, t0
    csrr a0, mip
    andi a0, a0, 0x222
    jal print_hex
    csrr t0, sepc                   # resume the S code where the interrupt hit (MPP is S)
    csrw mepc, t0
    mret
