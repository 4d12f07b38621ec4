# trap.S - what happens after a trap from user mode.
#
# The arch entry code (trap_entry in arch_*.S) has saved all 31 user registers in the current
# process's trap frame and switched to the kernel stack; it jumps to trap_common with
# a0 = the frame, which is also the struct proc. From here on the kernel is ordinary code.

    .text
trap_common:
    mv    s0, a0                       # s0 = current process for the whole trap
    la    a0, trap_info_buf
    call  arch_trap_info               # scause, sepc, stval (csrr, or one hypercall)
    la    t0, trap_info_buf
    lw    s1, 0(t0)                    # s1 = scause
    lw    t1, 4(t0)
    sw    t1, P_PC(s0)                 # the user pc to resume at (sepc, Priv 4.1.7)
    lw    s2, 8(t0)                    # s2 = stval
    bltz  s1, trap_interrupt           # Priv 4.1.9: bit 31 of scause marks an interrupt
    li    t0, CAUSE_ECALL_U
    beq   s1, t0, syscall_dispatch
    li    t0, CAUSE_LOAD_PAGE_FAULT
    beq   s1, t0, trap_page_fault
    li    t0, CAUSE_STORE_PAGE_FAULT
    beq   s1, t0, trap_page_fault
    li    t0, CAUSE_FETCH_PAGE_FAULT
    beq   s1, t0, trap_page_fault
    j     kill_current                 # any other exception: the process dies

trap_interrupt:
    slli  t0, s1, 1
    srli  t0, t0, 1
    li    t1, IRQ_S_TIMER
    bne   t0, t1, resume_current       # nothing else is enabled; ignore stray interrupts
    call  timer_tick                   # re-arm the timer, wake sleepers
    j     schedule                     # preemption: round robin to the next runnable process

# A page fault is either the first touch of a heap page (brk grew the heap; pages are mapped on
# demand, as Linux does) or an error, which kills the process.
trap_page_fault:
    lw    t0, P_HEAP(s0)
    lw    t1, P_BRK(s0)
    bltu  s2, t0, kill_current
    bgeu  s2, t1, kill_current
    li    t0, CAUSE_FETCH_PAGE_FAULT
    beq   s1, t0, kill_current         # the heap is not executable
    mv    a0, s2
    li    a1, PTE_U
    lw    a2, P_ROOT(s0)
    call  walkaddr
    bnez  a0, kill_current             # mapped already: a permission fault
    call  kalloc
    beqz  a0, kill_current             # out of memory
    srli  a1, a0, 12
    slli  a1, a1, 10
    ori   a1, a1, PTE_USER | PTE_R | PTE_W
    srli  t0, s2, 12
    andi  t0, t0, 0x3FF
    slli  t0, t0, 2
    lw    a0, P_L2(s0)
    add   a0, a0, t0                   # the level-0 PTE for the faulting page
    call  arch_pte_write
    call  arch_pte_flush
    srli  a0, s2, 12
    slli  a0, a0, 12
    call  arch_tlb_flush               # Priv 4.2.1: fence after changing a PTE
    la    t0, page_faults
    lw    t1, 0(t0)
    addi  t1, t1, 1
    sw    t1, 0(t0)
    j     resume_current               # retry the faulting instruction

# Return to the interrupted process as it is (its frame may hold a system call's result).
resume_current:
    mv    a0, s0
    j     switch_to

# Kill the current process for an exception (s1 = scause, s2 = stval), with the exit status a
# shell would show for the signal Linux sends: 128 + SIGSEGV (11) for memory faults, + SIGILL (4)
# for illegal instructions, + SIGTRAP (5) for breakpoints, + SIGBUS (7) otherwise.
kill_current:
    la    a0, msg_killed_pid
    call  puts
    lw    a0, P_PID(s0)
    call  put_dec
    la    a0, msg_killed_cause
    call  puts
    mv    a0, s1
    call  put_dec
    la    a0, msg_killed_stval
    call  puts
    mv    a0, s2
    call  put_hex
    la    a0, msg_killed_pc
    call  puts
    lw    a0, P_PC(s0)
    call  put_hex
    li    a0, '\n'
    call  uart_putc
    li    a0, 128 + 7
    li    t0, CAUSE_ILLEGAL
    bne   s1, t0, 1f
    li    a0, 128 + 4
1:  li    t0, CAUSE_BREAKPOINT
    bne   s1, t0, 1f
    li    a0, 128 + 5
1:  li    t0, CAUSE_FETCH_PAGE_FAULT
    bltu  s1, t0, 1f
    li    a0, 128 + 11
1:  li    t0, 1                        # instruction, load and store access faults
    beq   s1, t0, 2f
    li    t0, 5
    beq   s1, t0, 2f
    li    t0, 7
    beq   s1, t0, 2f
    j     process_exit
2:  li    a0, 128 + 11
    j     process_exit

# A trap taken while the kernel itself ran (arch entry found no current frame): a kernel bug.
kernel_trap:
    la    sp, kstack_top
    la    a0, trap_info_buf
    call  arch_trap_info
    la    a0, msg_panic
    call  puts
    la    t0, trap_info_buf
    lw    a0, 0(t0)
    call  put_hex
    la    a0, msg_killed_pc
    call  puts
    la    t0, trap_info_buf
    lw    a0, 4(t0)
    call  put_hex
    li    a0, '\n'
    call  uart_putc
    li    a0, 0                        # SRST shutdown, reason 1: system failure
    li    a1, 1
    j     sbi_shutdown

    .rodata
msg_killed_pid:
    .asciz "teachos: pid "
msg_killed_cause:
    .asciz " killed: scause "
msg_killed_stval:
    .asciz " stval "
msg_killed_pc:
    .asciz " pc "
msg_panic:
    .asciz "teachos: panic: trap in kernel, scause "
