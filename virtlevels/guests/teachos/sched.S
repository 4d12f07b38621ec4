# sched.S - round-robin scheduling, the timer, process exit and shutdown.

    .text
# schedule: run the next runnable process after the current one (round robin), including the
# current one last. With none runnable but some asleep, wait for the timer; with none alive,
# shut the machine down. Never returns.
schedule:
    la    sp, kstack_top               # nothing on the kernel stack survives a switch
    la    t0, cur_proc
    lw    s0, 0(t0)
    la    s1, procs
    lw    s2, nproc                    # the number of processes (generated table)
    addi  s3, s2, -1                   # index of the current process; before the first, the
    beqz  s0, 1f                       # last one, so the search starts at process 0
    sub   t0, s0, s1
    srli  s3, t0, 8                    # PROC_SIZE is 256
1:  li    s4, 0                        # candidates tried
2:  addi  s4, s4, 1
    bgtu  s4, s2, 4f
    add   t0, s3, s4
    remu  t0, t0, s2                   # (current + n) mod nproc
    slli  t0, t0, 8
    add   a0, s1, t0
    lw    t1, P_STATE(a0)
    li    t2, P_RUNNABLE
    bne   t1, t2, 2b
    j     switch_to
4:  # Nobody can run. If somebody sleeps, idle until the next tick; if not, we are done.
    li    s4, 0
    mv    t0, s1
5:  bgeu  s4, s2, shutdown
    lw    t1, P_STATE(t0)
    li    t2, P_SLEEPING
    beq   t1, t2, 6f
    addi  s4, s4, 1
    addi  t0, t0, PROC_SIZE
    j     5b
6:  call  arch_idle                    # wfi (or the wait hypercall) with interrupts masked
    call  arch_timer_pending           # did the timer fire? (sip.STIP, Priv 4.1.3)
    beqz  a0, 6b
    call  timer_tick
    j     schedule

# switch_to(a0 = process): make it current, install its address space if it is not the one
# loaded already, and return to user mode in it. Never returns.
switch_to:
    mv    s0, a0
    la    t0, cur_proc
    sw    s0, 0(t0)
    lw    a0, P_SATP(s0)
    la    t0, loaded_satp
    lw    t1, 0(t0)
    beq   a0, t1, 1f                   # same address space: no satp write, no TLB flush
    sw    a0, 0(t0)
    call  arch_set_satp                # csrw satp + sfence.vma (Priv 4.1.11, 4.2.1)
1:  mv    a0, s0
    j     arch_return_to_user

# timer_arm: ask the SBI for a timer interrupt TIMER_INTERVAL ticks from now.
timer_arm:
1:  rdtimeh t1                         # Unpriv 10.1: read a 64-bit counter on RV32 hi-lo-hi
    rdtime  a0
    rdtimeh t2
    bne   t1, t2, 1b
    li    t0, TIMER_INTERVAL
    add   a0, a0, t0
    sltu  t3, a0, t0                   # carry into the high word
    add   a1, t1, t3
    li    a7, SBI_EXT_TIME
    li    a6, 0                        # sbi_set_timer(stime_value): also clears sip.STIP
    ecall
    ret

# timer_tick: count the tick, re-arm the timer, and wake every sleeper whose time has come.
timer_tick:
    addi  sp, sp, -16
    sw    ra, 12(sp)
    la    t0, ticks
    lw    t1, 0(t0)
    addi  t1, t1, 1
    sw    t1, 0(t0)
    call  timer_arm
    rdtime t3
    la    t0, procs
    lw    t1, nproc
    slli  t1, t1, 8
    add   t1, t1, t0                   # end of the used process slots
1:  bgeu  t0, t1, 3f
    lw    t2, P_STATE(t0)
    li    t4, P_SLEEPING
    bne   t2, t4, 2f
    lw    t2, P_WAKE(t0)
    sub   t2, t3, t2                   # now - wake, wrap-safe as a signed difference
    bltz  t2, 2f
    li    t4, P_RUNNABLE
    sw    t4, P_STATE(t0)
2:  addi  t0, t0, PROC_SIZE
    j     1b
3:  lw    ra, 12(sp)
    addi  sp, sp, 16
    ret

# process_exit(a0 = exit code) for the current process (s0): it becomes a zombie and the
# first non-zero code is kept for the shutdown report.
process_exit:
    sw    a0, P_XCODE(s0)
    li    t0, P_ZOMBIE
    sw    t0, P_STATE(s0)
    beqz  a0, 1f
    la    t0, exit_status
    lw    t1, 0(t0)
    bnez  t1, 1f
    sw    a0, 0(t0)
1:  j     schedule

# shutdown: every process has exited. SBI SRST shutdown with reason 0 (pass) when all exited
# with 0, else the implementation-specific reason 0xE000_0000 | code, which our firmware turns
# into a failing exit code.
shutdown:
    lw    t0, exit_status
    li    a0, 0                        # reset type: shutdown
    li    a1, 0
    beqz  t0, sbi_shutdown
    slli  t0, t0, 16
    srli  t0, t0, 16
    li    a1, 0xE0000000
    or    a1, a1, t0
sbi_shutdown:                          # a0 = reset type, a1 = reason
    li    a7, SBI_EXT_SRST
    li    a6, 0
    ecall
1:  j     1b                           # the firmware never returns from a shutdown
