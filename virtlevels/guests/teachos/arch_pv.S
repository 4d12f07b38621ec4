# arch_pv.S - teachos's privileged operations as hypercalls (paravirtualization, as Xen does).
#
# The same routines as arch_native.S, but this kernel executes no privileged instruction: no
# csr* on supervisor CSRs, no sret, no sfence.vma, no wfi. Each operation is an ECALL to the
# VLP SBI extension (a7 = 0x09564C50, a6 = function; docs/guests.md has the ABI). On the bare
# machine our SBI firmware carries them out; under the hypervisor's PV technique, the
# hypervisor does. Page-table writes are collected and sent in batches (mmu_update).
#
# Trap entry cannot use sscratch (a supervisor CSR), so the per-CPU page that vm.S maps at
# the top of every address space holds the two words it needs; x0-relative addressing reaches
# them without a free register:
#   0xFFFF_FFF8 (-8(zero))   the user sp while the entry code saves registers
#   0xFFFF_FFFC (-4(zero))   the current trap frame; 0 while the kernel runs

    .equ VLP_EID, 0x09564C50
    .equ VLP_CSR_READ, 0
    .equ VLP_CSR_WRITE, 1
    .equ VLP_CSR_SET, 2
    .equ VLP_CSR_CLEAR, 3
    .equ VLP_SET_SATP, 4
    .equ VLP_MMU_UPDATE, 5
    .equ VLP_SRET, 6
    .equ VLP_TLB_FLUSH, 7
    .equ VLP_WAIT, 8
    .equ VLP_TRAP_INFO, 9
    .equ CSR_SSTATUS, 0x100
    .equ CSR_SIE, 0x104
    .equ CSR_STVEC, 0x105
    .equ CSR_SCOUNTEREN, 0x106
    .equ CSR_SEPC, 0x141
    .equ CSR_SIP, 0x144
    .equ PTE_BATCH, 32                 # PTE writes per mmu_update

    .text
    .balign 4
trap_entry:
    sw    sp, -8(zero)                 # park the user sp on the per-CPU page
    lw    sp, -4(zero)                 # sp = trap frame
    beqz  sp, 1f                       # none: the trap came from the kernel
    sw    x1, 4(sp)
    sw    x3, 12(sp)
    sw    x4, 16(sp)
    sw    x5, 20(sp)
    sw    x6, 24(sp)
    sw    x7, 28(sp)
    sw    x8, 32(sp)
    sw    x9, 36(sp)
    sw    x10, 40(sp)
    sw    x11, 44(sp)
    sw    x12, 48(sp)
    sw    x13, 52(sp)
    sw    x14, 56(sp)
    sw    x15, 60(sp)
    sw    x16, 64(sp)
    sw    x17, 68(sp)
    sw    x18, 72(sp)
    sw    x19, 76(sp)
    sw    x20, 80(sp)
    sw    x21, 84(sp)
    sw    x22, 88(sp)
    sw    x23, 92(sp)
    sw    x24, 96(sp)
    sw    x25, 100(sp)
    sw    x26, 104(sp)
    sw    x27, 108(sp)
    sw    x28, 112(sp)
    sw    x29, 116(sp)
    sw    x30, 120(sp)
    sw    x31, 124(sp)
    lw    t0, -8(zero)
    sw    t0, 8(sp)                    # the user's sp
    sw    zero, -4(zero)               # from now on we are in the kernel
    mv    a0, sp
    la    sp, kstack_top
    j     trap_common
1:  lw    sp, -8(zero)
    j     kernel_trap

arch_init:
    la    a1, trap_entry
    li    a0, CSR_STVEC
    li    a6, VLP_CSR_WRITE
    li    a7, VLP_EID
    ecall
    li    a0, CSR_SIE
    li    a1, SIE_STIE
    li    a6, VLP_CSR_SET
    ecall
    li    a0, CSR_SCOUNTEREN
    li    a1, 7
    li    a6, VLP_CSR_WRITE
    ecall
    li    a0, CSR_SSTATUS
    li    a1, SSTATUS_SPP
    li    a6, VLP_CSR_CLEAR
    ecall
    li    a0, CSR_SSTATUS
    li    a1, SSTATUS_SPIE
    li    a6, VLP_CSR_SET
    ecall
    ret

arch_trap_info:
    li    a6, VLP_TRAP_INFO            # a0 = buffer (identity-mapped: its physical address)
    li    a7, VLP_EID
    ecall
    ret

arch_return_to_user:
    mv    s1, a0
    sw    a0, -4(zero)                 # the next trap saves into this frame
    lw    a1, 0(a0)
    li    a0, CSR_SEPC
    li    a6, VLP_CSR_WRITE
    li    a7, VLP_EID
    ecall
    mv    a0, s1
    li    a6, VLP_SRET                 # loads x1..x31 from the frame, returns to sepc
    ecall

arch_set_satp:
    mv    t4, a0
    mv    t5, ra
    call  arch_pte_flush               # pending PTE writes land before the switch
    mv    ra, t5
    mv    a0, t4
    li    a6, VLP_SET_SATP
    li    a7, VLP_EID
    ecall
    ret

# arch_pte_write(a0 = PTE physical address, a1 = value): queue it; send a full batch.
arch_pte_write:
    la    t0, pte_batch_count
    lw    t1, 0(t0)
    la    t2, pte_batch
    slli  t3, t1, 3
    add   t2, t2, t3
    sw    a0, 0(t2)
    sw    a1, 4(t2)
    addi  t1, t1, 1
    sw    t1, 0(t0)
    li    t2, PTE_BATCH
    bgeu  t1, t2, arch_pte_flush
    ret

# arch_pte_flush: send the queued PTE writes with one mmu_update hypercall.
arch_pte_flush:
    la    t0, pte_batch_count
    lw    a1, 0(t0)
    beqz  a1, 1f
    sw    zero, 0(t0)
    la    a0, pte_batch
    li    a6, VLP_MMU_UPDATE
    li    a7, VLP_EID
    ecall
1:  ret

arch_tlb_flush:
    li    a6, VLP_TLB_FLUSH
    li    a7, VLP_EID
    ecall
    ret

arch_idle:
    li    a6, VLP_WAIT
    li    a7, VLP_EID
    ecall
    ret

arch_timer_pending:
    li    a0, CSR_SIP
    li    a6, VLP_CSR_READ
    li    a7, VLP_EID
    ecall
    andi  a0, a1, SIP_STIP
    ret

    .bss
    .balign 8
pte_batch_count:
    .space 8
pte_batch:
    .space PTE_BATCH * 8
