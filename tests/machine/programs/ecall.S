# ecall.S - ECALL from M (cause 11) and, after MRET to U, from U (cause 8); mtval is 0, mepc the
# ecall (Priv 3.1.15, 3.1.16); trap entry sets MPP to the trapped mode and MPIE to the old MIE,
# clears MIE; MRET restores them and sets MPP to U (Priv 3.1.6.1, 3.3.2).
    .text
    .globl _start
_start:
    # PMP entry 0: NAPOT over all of memory, RWX, so U-mode may access it (Priv 3.7.1: with
    # PMP implemented, an S/U access no entry matches fails).
    li t0, -1
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    la t0, handler
    csrw mtvec, t0
    li s0, 0                        # count of traps taken

    li t0, 0x8                      # MIE=1 so the trap moves it into MPIE
    csrs mstatus, t0
m_ecall:
    ecall
    csrr a0, mstatus
    jal print_hex

    # Drop to U at u_code: MPP = 0, mepc = u_code.
    li t0, 0x1800
    csrc mstatus, t0
    la t0, u_code
    csrw mepc, t0
    mret

u_code:
    li s1, 0x5a
u_ecall:
    ecall
    # back in U after the handler returned
    mv a0, s1
    jal print_hex
    ecall                           # the third trap ends the test

handler:
    addi s0, s0, 1
    csrr a0, mcause
    jal print_hex
    csrr a0, mtval
    jal print_hex
    csrr a0, mepc
    jal print_hex
    csrr a0, mstatus
    jal print_hex
    li t0, 3
    beq s0, t0, pass
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret
