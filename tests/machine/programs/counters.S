# counters.S - counter access control (Priv 3.1.11, 4.1.5): in U-mode cycle/instret/time/
# hpmcounter3 are readable only when both mcounteren and scounteren have their bit; otherwise
# illegal instruction with mtval = the instruction. M-mode always reads them. mcycle counts up.
    .text
    .globl _start
_start:
    li t0, -1
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    la t0, handler
    csrw mtvec, t0
    csrw mcounteren, zero
    csrw scounteren, zero
    rdcycle s1
    rdcycle s2
    sltu a0, s1, s2                 # cycles advance
    jal print_hex
    li s0, 0
    li t0, 0x1800
    csrc mstatus, t0
    la t0, u_code
    csrw mepc, t0
    mret

u_code:
    rdcycle s2                      # mcounteren.CY = 0
    ecall                           # M sets mcounteren = CY
    rdcycle s2                      # scounteren.CY = 0
    ecall                           # M sets scounteren = CY
    rdcycle s2
    rdcycleh s2
    li a0, 0xc0c0
    jal print_hex
    rdinstret s2                    # IR = 0
    rdtime s2                       # TM = 0
    csrr s2, hpmcounter3            # HPM3 = 0
    ecall

handler:
    csrr a0, mcause
    jal print_hex
    csrr a0, mtval
    jal print_hex
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    csrr t0, mcause
    li t1, 8
    bne t0, t1, 1f
    addi s0, s0, 1
    li t0, 1
    csrw mcounteren, t0
    beq s0, t0, 1f
    csrw scounteren, t0
    li t0, 3
    beq s0, t0, pass
1:  mret
