# sv32.S - Sv32 translation (Priv 4.3): a two-level table built at run time, a 4 MiB identity
# megapage for the code, a read-only superpage alias, 4 KiB pages with each permission; the
# hardware sets A on access and D on a store (QEMU 7.2 does, as our Svadu default does;
# Priv 4.3.1 allows either); load/store/fetch page faults (causes 13, 15, 12) with mtval = the
# virtual address; MXR and SUM; a misaligned superpage (Priv 4.3.2 step 6); a PTE with W
# and not R (reserved); SFENCE.VMA after changing a PTE; M-mode loads through MPRV (Priv 3.1.6.3).
    .equ ROOT, 0x80010000
    .equ L0, 0x80011000
    .equ V, 1
    .equ R, 2
    .equ W, 4
    .equ X, 8
    .equ U, 16
    .equ A, 64
    .equ D, 128

    .text
    .globl _start
_start:
    li t0, -1                       # PMP: all memory RWX for S and U (see ecall.S)
    csrw pmpaddr0, t0
    li t0, 0x1f
    csrw pmpcfg0, t0
    la t0, handler
    csrw mtvec, t0
    li s0, ROOT
    li s1, L0
    li t0, (0x80000 << 10) | D | A | X | W | R | V          # 0x80000000: identity megapage
    li t1, ROOT + 0x200 * 4
    sw t0, 0(t1)
    li t0, (0x80011 << 10) | V                              # 0x00400000: the L0 table
    sw t0, 1 * 4(s0)
    li t0, (0x80000 << 10) | A | R | V                      # 0xc0000000: read-only alias
    li t1, ROOT + 0x300 * 4
    sw t0, 0(t1)
    li t0, (0x80001 << 10) | A | R | V                      # 0xc0400000: misaligned superpage
    sw t0, 4(t1)
    li t0, (0x80020 << 10) | W | R | V                      # 0x00400000: RW, A = D = 0
    sw t0, 0 * 4(s1)
    li t0, (0x80021 << 10) | A | R | V                      # 0x00401000: read-only
    sw t0, 1 * 4(s1)
    li t0, (0x80022 << 10) | A | X | V                      # 0x00402000: execute-only
    sw t0, 2 * 4(s1)
    li t0, (0x80023 << 10) | D | A | U | W | R | V          # 0x00403000: a user page
    sw t0, 3 * 4(s1)
    li t0, (0x80025 << 10) | A | W | V                      # 0x00405000: W without R, reserved
    sw t0, 5 * 4(s1)
    li t0, 0x80021000
    li t1, 0x1234
    sw t1, 0(t0)
    li t0, 0x80022000
    li t1, 0xc0de
    sw t1, 0(t0)
    li t0, 0x80023000
    li t1, 0x5555
    sw t1, 0(t0)

    li t0, (1 << 31) | (ROOT >> 12)
    csrw satp, t0
    li t0, 0x1800                   # to S
    csrc mstatus, t0
    li t0, 0x0800
    csrs mstatus, t0
    la t0, s_code
    csrw mepc, t0
    mret

s_code:
    sfence.vma
    li s2, 0x00400000
    lw a0, 0(s2)
    jal print_hex
    lw a0, 0(s1)                    # the PTE: A is set now
    jal print_hex
    li t0, 0xabc
    sw t0, 0(s2)
    lw a0, 0(s1)                    # and D after the store
    jal print_hex
    lw a0, 0(s2)
    jal print_hex

    li s3, 0x00401000
    lw a0, 0(s3)
    jal print_hex
    sw zero, 0(s3)                  # store page fault
    li s4, 0x00402000
    lw a0, 0(s4)                    # load page fault: execute-only
    li t0, 1 << 19                  # MXR
    csrs sstatus, t0
    lw a0, 0(s4)
    jal print_hex
    csrc sstatus, t0
    li s5, 0x00403000
    lw a0, 0(s5)                    # load page fault: a U page from S
    li t0, 1 << 18                  # SUM
    csrs sstatus, t0
    lw a0, 0(s5)
    jal print_hex
    csrc sstatus, t0
    li t0, 0x00800000
    lw a0, 0(t0)                    # no L1 entry
    li t0, 0x00404000
    lw a0, 0(t0)                    # no L0 entry
    li t0, 0x00405000
    lw a0, 0(t0)                    # W without R
    # the superpage alias of the code
    la s6, magic
    li t1, 0xc0000000 - 0x80000000
    add s6, s6, t1
    lw a0, 0(s6)
    jal print_hex
    sw zero, 0(s6)                  # read-only
    li t0, 0xc0400000
    lw a0, 0(t0)                    # misaligned superpage
    # fetch from a page without X: the handler resumes at s10
    la s10, 1f
    jalr s3
1:  # remap 0x00401000 to the page written above, then SFENCE.VMA
    li t0, (0x80020 << 10) | A | R | V
    sw t0, 1 * 4(s1)
    sfence.vma s3
    lw a0, 0(s3)
    jal print_hex
    ecall                           # back to M

m_code:
    # MPRV: M-mode loads translated with MPP's privilege (S after the ecall)
    li t0, 1 << 17
    csrs mstatus, t0
    li t0, 0x00400000
    lw a0, 0(t0)
    jal print_hex
    li t0, 0x1800                   # MPP = U: a non-U page faults
    csrc mstatus, t0
    li t0, 0x00400000
    lw a0, 0(t0)
    li t0, 1 << 17
    csrc mstatus, t0
    li t0, 0x80020000               # the physical page
    lw a0, 0(t0)
    jal print_hex
    li t0, ROOT + 0x200 * 4
    lw a0, 0(t0)
    jal print_hex
    li t0, ROOT + 0x300 * 4
    lw a0, 0(t0)
    jal print_hex
    j pass

handler:
    csrr a0, mcause
    jal print_hex
    csrr a0, mtval
    jal print_hex
    csrr a0, mepc
    jal print_hex
    csrr t0, mcause
    li t1, 9
    beq t0, t1, 2f
    li t1, 12
    beq t0, t1, 1f
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret
1:  csrw mepc, s10
    mret
2:  la t0, m_code
    jr t0

    .balign 4
magic:
    .word 0xfeedf00d
