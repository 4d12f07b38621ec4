# csr.S - Zicsr semantics in M-mode (Unpriv 9.1, Priv 2.1, 3.1): csrrw/csrrs/csrrc and the
# immediate forms return the old value; csrrs/csrrc with x0 (or uimm 0) do not write, so they
# are legal on read-only CSRs; writing a read-only CSR or naming a missing one is an illegal
# instruction with mtval = the instruction bits (Priv 3.1.16); misa and the ID registers.
    .text
    .globl _start
_start:
    la t0, trap_print
    csrw mtvec, t0

    li s0, 0x12345678
    csrrw a0, mscratch, s0
    jal print_hex
    li s1, 0xf0
    csrrs a0, mscratch, s1
    jal print_hex
    csrrc a0, mscratch, s0
    jal print_hex
    csrrs a0, mscratch, zero
    jal print_hex
    csrrc a0, mscratch, zero
    jal print_hex
    csrrwi a0, mscratch, 31
    jal print_hex
    csrrsi a0, mscratch, 0x10
    jal print_hex
    csrrci a0, mscratch, 3
    jal print_hex
    csrrsi a0, mscratch, 0
    jal print_hex
    csrr a0, mscratch
    jal print_hex
    # csrrw with rd = x0 writes but does not read
    csrrw zero, mscratch, s0
    csrr a0, mscratch
    jal print_hex

    # misa: RV32 (MXL=1) I M A S U; writes are ignored (WARL)
    csrr a0, misa
    jal print_hex
    li t0, 0x40000100
    csrw misa, t0
    csrr a0, misa
    jal print_hex
    csrr a0, mhartid
    jal print_hex
    csrr a0, mvendorid
    jal print_hex
    csrrs a0, mhartid, zero
    jal print_hex
    csrrci a0, mhartid, 0
    jal print_hex

    # read-only CSRs: writes trap (illegal instruction, mtval = the instruction)
    csrw mhartid, s0
    csrrs s2, mvendorid, s1
    csrrwi s2, cycle, 1
    # a CSR that does not exist
    csrr s2, 0x7ff

    # mcounteren / scounteren: WARL, read back what was written here
    li t0, 5
    csrw mcounteren, t0
    csrr a0, mcounteren
    jal print_hex
    csrw scounteren, t0
    csrr a0, scounteren
    jal print_hex

    # mtvec keeps BASE and a legal MODE
    la t0, trap_print
    csrr a0, mtvec
    sub a0, a0, t0
    jal print_hex
    # medeleg / mideleg: the bits we set are delegable on both machines
    li t0, 0x0100
    csrw medeleg, t0
    csrr a0, medeleg
    jal print_hex
    li t0, 0x222
    csrw mideleg, t0
    csrr a0, mideleg
    jal print_hex
    # mie: every standard interrupt bit is writable
    li t0, 0xaaa
    csrw mie, t0
    csrr a0, mie
    jal print_hex
    csrw mie, zero
    # mstatus: MPP=2 is reserved (WARL)
    li t0, 0x1800
    csrs mstatus, t0
    csrr a0, mstatus
    jal print_hex
    li t0, 0x1000
    csrc mstatus, t0
    csrr a0, mstatus
    jal print_hex
    # sstatus is a view of mstatus
    li t0, 0x40022
    csrw sstatus, t0
    csrr a0, sstatus
    jal print_hex
    csrr a0, mstatus
    jal print_hex
    # Not here: mepc[1:0] read as zero with IALIGN=32 (Priv 3.1.14), as ours do; QEMU 7.2
    # keeps the bits written and clears them only on mret.
    j pass
