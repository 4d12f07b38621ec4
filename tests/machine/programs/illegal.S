# illegal.S - illegal-instruction exceptions (cause 2) with mtval = the instruction bits
# (Priv 3.1.16): the all-zeros and all-ones words, a reserved funct7, a reserved opcode, and in
# U-mode the privileged instructions (MRET, SRET, SFENCE.VMA, WFI - Priv 3.3.3: with S-mode
# present WFI in U traps) and M- and S-level CSRs.
    .text
    .globl _start
_start:
    li t0, -1
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    la t0, trap_print
    csrw mtvec, t0

    .word 0x00000000
    .word 0xffffffff
    .word 0xfe000033                # add with funct7 = 0x7f
    .word 0x0000007f                # a reserved major opcode (48-bit encoding space)
    .word 0x00005073                # csrrwi with funct3 5 on CSR 0 (ustatus, absent)
    .word 0x30200073 | (1 << 7)     # mret with rd != 0
    .word 0x00100073 | (1 << 15)    # ebreak with rs1 != 0

    li t0, 0x1800
    csrc mstatus, t0
    la t0, u_code
    csrw mepc, t0
    mret
u_code:
    mret
    sret
    sfence.vma
    wfi
    csrr s1, mstatus
    csrr s1, sstatus
    csrw sscratch, s1
    csrr s1, mhartid
    csrr s1, satp
    li a0, 0x7e57
    jal print_hex
    j pass                          # U may write tohost: PMP allows it
