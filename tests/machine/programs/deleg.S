# deleg.S - exception delegation to S-mode (Priv 3.1.8, 4.1): with medeleg bits 2 and 8 set,
# an illegal instruction and an ECALL from U go to stvec with scause/stval/sepc written and
# sstatus.SPP = 0, SPIE = the old SIE, SIE = 0; SRET returns to U. An ECALL from S (bit 9 not
# delegated) goes to M with MPP = S. A delegated exception taken in S stays in S (SPP = 1).
    .text
    .globl _start
_start:
    li t0, -1
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    la t0, m_handler
    csrw mtvec, t0
    li t0, (1 << 8) | (1 << 2)
    csrw medeleg, t0
    csrr a0, medeleg
    jal print_hex
    li s0, 0                        # S-mode traps seen

    # to S: MPP = 1
    li t0, 0x1800
    csrc mstatus, t0
    li t0, 0x0800
    csrs mstatus, t0
    la t0, s_code
    csrw mepc, t0
    mret

s_code:
    la t0, s_handler
    csrw stvec, t0
    csrsi sstatus, 2                # SIE = 1, so SPIE records it
    .word 0xffffffff                # illegal in S: delegated, handled in S (SPP = 1)
    # to U: SPP = 0
    li t0, 0x100
    csrc sstatus, t0
    la t0, u_code
    csrw sepc, t0
    sret

u_code:
    li s1, 0x77
    ecall
    csrr s1, mstatus                # illegal in U: delegated to S
    mv a0, s1
    jal print_hex
    ecall                           # the S handler's third U trap goes on to M

s_handler:
    addi s0, s0, 1
    csrr a0, scause
    jal print_hex
    csrr a0, stval
    jal print_hex
    csrr a0, sepc
    jal print_hex
    csrr a0, sstatus
    jal print_hex
    li t0, 4
    beq s0, t0, 1f
    csrr t0, sepc
    addi t0, t0, 4
    csrw sepc, t0
    sret
1:  ecall                           # ECALL from S: not delegated

m_handler:
    csrr a0, mcause
    jal print_hex
    csrr a0, mepc
    la t0, s_handler
    sub a0, a0, t0
    jal print_hex
    csrr a0, mstatus
    jal print_hex
    j pass
