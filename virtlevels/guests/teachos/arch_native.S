# arch_native.S - teachos's privileged operations as privileged instructions.
#
# This file and arch_pv.S offer the same routines; the rest of the kernel calls only these.
# Here each one is the instruction a kernel on real hardware would execute. Under a
# trap-and-emulate hypervisor each of them traps and is emulated.
#
#   trap_entry              stvec target: save the user registers, go to trap_common
#   arch_init               trap vector, timer interrupt enable, counter access, sstatus
#   arch_trap_info(buf)     scause, sepc, stval, sstatus -> buf[0..3]
#   arch_return_to_user(frame)   restore registers from the frame and sret (never returns)
#   arch_set_satp(value)    switch address space and flush the TLB
#   arch_pte_write(pte, v)  write one page-table entry
#   arch_pte_flush()        make the PTE writes so far take effect (nothing to do here)
#   arch_tlb_flush(va)      flush one page's translations
#   arch_idle()             wait for an interrupt
#   arch_timer_pending()    a0 = non-zero if the supervisor timer interrupt is pending

    .text
# The trap vector (stvec, direct mode: Priv 4.1.2). sscratch holds the current process's trap
# frame while user code runs and 0 while the kernel runs (xv6 does the same with its trapframe).
    .balign 4
trap_entry:
    csrrw sp, sscratch, sp             # sp = trap frame, sscratch = user sp
    beqz  sp, 1f                       # sscratch was 0: the trap came from the kernel
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
    csrr  t0, sscratch
    sw    t0, 8(sp)                    # the user's sp
    csrw  sscratch, zero               # from now on we are in the kernel
    mv    a0, sp
    la    sp, kstack_top
    j     trap_common
1:  csrrw sp, sscratch, sp             # put sp and sscratch (0) back
    j     kernel_trap

arch_init:
    la    t0, trap_entry
    csrw  stvec, t0
    csrw  sscratch, zero
    li    t0, SIE_STIE
    csrs  sie, t0                      # take supervisor timer interrupts (Priv 4.1.3)
    li    t0, 7
    csrw  scounteren, t0               # user code may read cycle, time, instret (Priv 4.1.5)
    li    t0, SSTATUS_SPP
    csrc  sstatus, t0                  # sret goes to U-mode ...
    li    t0, SSTATUS_SPIE
    csrs  sstatus, t0                  # ... with interrupts enabled (Priv 4.1.1)
    ret

arch_trap_info:
    csrr  t0, scause
    sw    t0, 0(a0)
    csrr  t0, sepc
    sw    t0, 4(a0)
    csrr  t0, stval
    sw    t0, 8(a0)
    csrr  t0, sstatus
    sw    t0, 12(a0)
    ret

arch_return_to_user:
    lw    t0, 0(a0)
    csrw  sepc, t0                     # where sret goes (Priv 3.3.2)
    li    t0, SSTATUS_SPP
    csrc  sstatus, t0
    li    t0, SSTATUS_SPIE
    csrs  sstatus, t0
    csrw  sscratch, a0                 # the next trap saves into this frame
    mv    t6, a0
    lw    x1, 4(t6)
    lw    x2, 8(t6)
    lw    x3, 12(t6)
    lw    x4, 16(t6)
    lw    x5, 20(t6)
    lw    x6, 24(t6)
    lw    x7, 28(t6)
    lw    x8, 32(t6)
    lw    x9, 36(t6)
    lw    x10, 40(t6)
    lw    x11, 44(t6)
    lw    x12, 48(t6)
    lw    x13, 52(t6)
    lw    x14, 56(t6)
    lw    x15, 60(t6)
    lw    x16, 64(t6)
    lw    x17, 68(t6)
    lw    x18, 72(t6)
    lw    x19, 76(t6)
    lw    x20, 80(t6)
    lw    x21, 84(t6)
    lw    x22, 88(t6)
    lw    x23, 92(t6)
    lw    x24, 96(t6)
    lw    x25, 100(t6)
    lw    x26, 104(t6)
    lw    x27, 108(t6)
    lw    x28, 112(t6)
    lw    x29, 116(t6)
    lw    x30, 120(t6)
    lw    x31, 124(t6)
    sret

arch_set_satp:
    csrw  satp, a0                     # Priv 4.1.11
    sfence.vma                         # Priv 4.2.1: order the switch against later accesses
    ret

arch_pte_write:
    sw    a1, 0(a0)
    ret

arch_pte_flush:
    ret

arch_tlb_flush:
    sfence.vma a0, zero
    ret

arch_idle:
    wfi                                # Priv 3.3.3: resumes when an enabled interrupt is pending
    ret

arch_timer_pending:
    csrr  a0, sip
    andi  a0, a0, SIP_STIP
    ret
