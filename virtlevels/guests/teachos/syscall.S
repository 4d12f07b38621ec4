# syscall.S - system calls with Linux's numbers (asm-generic/unistd.h, which RISC-V uses).
#
# The user program puts the number in a7 and the arguments in a0-a5, then executes ecall
# (the RISC-V Linux ABI). The result goes back in a0; errors are -errno. The kernel reads the
# arguments from the trap frame and writes the result there, so `switch_to` returns it.

    .equ SYS_WRITE, 64
    .equ SYS_EXIT, 93
    .equ SYS_EXIT_GROUP, 94
    .equ SYS_NANOSLEEP, 101
    .equ SYS_CLOCK_GETTIME, 113
    .equ SYS_SCHED_YIELD, 124
    .equ SYS_GETPID, 172
    .equ SYS_BRK, 214

    .text
syscall_dispatch:                      # s0 = current process
    lw    t0, P_PC(s0)
    addi  t0, t0, 4                    # Priv 3.3.1: sepc is the ecall itself; resume after it
    sw    t0, P_PC(s0)
    lw    a7, P_A7(s0)
    lw    a0, P_A0(s0)
    lw    a1, P_A1(s0)
    lw    a2, P_A2(s0)
    li    t0, SYS_WRITE
    beq   a7, t0, sys_write
    li    t0, SYS_GETPID
    beq   a7, t0, sys_getpid
    li    t0, SYS_SCHED_YIELD
    beq   a7, t0, sys_sched_yield
    li    t0, SYS_EXIT
    beq   a7, t0, sys_exit
    li    t0, SYS_EXIT_GROUP           # one thread per process: exit_group is exit
    beq   a7, t0, sys_exit
    li    t0, SYS_CLOCK_GETTIME
    beq   a7, t0, sys_clock_gettime
    li    t0, SYS_NANOSLEEP
    beq   a7, t0, sys_nanosleep
    li    t0, SYS_BRK
    beq   a7, t0, sys_brk
    li    a0, -ENOSYS                  # what Linux answers for a number it does not know

syscall_return:                        # a0 = the result
    sw    a0, P_A0(s0)
    j     resume_current

# write(fd, buf, count): fd 1 and 2 go to the UART, byte by byte through the kernel's MMIO
# mapping. The buffer is read through the process's page table in software (walkaddr), one page
# at a time, so a bad pointer gives -EFAULT instead of a kernel page fault (xv6's copyin idea).
sys_write:
    addi  t0, a0, -1
    li    t1, 1
    bgtu  t0, t1, 9f                   # only fds 1 and 2 exist
    mv    s3, a1                       # s3 = buf
    mv    s4, a2                       # s4 = count
    li    s5, 0                        # s5 = bytes written
1:  bgeu  s5, s4, 8f
    add   s6, s3, s5                   # s6 = user address of the next byte
    mv    a0, s6
    li    a1, PTE_U | PTE_R
    lw    a2, P_ROOT(s0)
    call  walkaddr
    beqz  a0, 7f
    mv    s7, a0                       # s7 = its physical address
    slli  t0, s6, 20
    srli  t0, t0, 20                   # offset within the page
    li    t1, 4096
    sub   s8, t1, t0                   # bytes left on this page
    sub   t0, s4, s5
    bleu  s8, t0, 2f
    mv    s8, t0                       # s8 = bytes to write from this page
2:  add   s8, s8, s5                   # s8 = written count after this page
3:  lbu   a0, 0(s7)
    call  uart_putc
    addi  s7, s7, 1
    addi  s5, s5, 1
    bltu  s5, s8, 3b
    j     1b
7:  mv    a0, s5                       # a bad page: what was written, or -EFAULT if nothing
    bnez  a0, syscall_return
    li    a0, -EFAULT
    j     syscall_return
8:  mv    a0, s4
    j     syscall_return
9:  li    a0, -EBADF
    j     syscall_return

sys_getpid:
    lw    a0, P_PID(s0)
    j     syscall_return

sys_sched_yield:
    sw    zero, P_A0(s0)               # returns 0 when the process runs again
    j     schedule

sys_exit:
    j     process_exit

# brk(addr): addr 0 (or an address outside the heap) asks for the current break; otherwise
# the break moves there. Linux returns the new break, or the old one on failure. Pages are
# mapped when first touched (trap_page_fault); shrinking does not unmap them in this kernel.
sys_brk:
    lw    t0, P_HEAP(s0)
    bltu  a0, t0, 1f
    li    t1, HEAP_MAX
    bgtu  a0, t1, 1f
    sw    a0, P_BRK(s0)
1:  lw    a0, P_BRK(s0)
    j     syscall_return

# clock_gettime(clockid, tp): CLOCK_REALTIME (0) and CLOCK_MONOTONIC (1) both count from boot.
# The result is a struct __kernel_timespec {s64 tv_sec; s64 tv_nsec} (RV32 uses 64-bit time).
# Only the low word of mtime is used: it wraps after 2^32 ticks (429 s at 10 MHz).
sys_clock_gettime:
    li    t0, 1
    bgtu  a0, t0, 9f
    mv    s3, a1
    rdtime t0                          # Zicntr time (mcounteren.TM lets S-mode read it)
    li    t1, TIMEBASE_HZ
    divu  t2, t0, t1                   # seconds
    remu  t3, t0, t1
    li    t1, NS_PER_TICK
    mul   t3, t3, t1                   # nanoseconds
    addi  sp, sp, -16
    sw    t2, 0(sp)
    sw    zero, 4(sp)
    sw    t3, 8(sp)
    sw    zero, 12(sp)
    mv    a0, s3
    mv    a1, sp
    li    a2, 16
    call  copyout
    addi  sp, sp, 16
    j     syscall_return               # 0 or -EFAULT from copyout
9:  li    a0, -EINVAL
    j     syscall_return

# nanosleep(req, rem): sleep until mtime reaches now + the requested time (rounded up to a
# tick); the scheduler wakes the process at the first timer interrupt after that. rem is not
# written (the sleep is never interrupted).
sys_nanosleep:
    addi  sp, sp, -16
    mv    a1, a0
    mv    a0, sp
    li    a2, 16
    call  copyin
    bnez  a0, 8f
    lw    t0, 0(sp)                    # tv_sec (low word)
    lw    t1, 8(sp)                    # tv_nsec (low word)
    lw    t2, 4(sp)
    bltz  t2, 9f                       # negative seconds
    li    t2, 1000000000
    bgeu  t1, t2, 9f                   # tv_nsec must be below one second
    li    t2, TIMEBASE_HZ
    mul   t0, t0, t2
    li    t2, NS_PER_TICK
    addi  t1, t1, NS_PER_TICK - 1
    divu  t1, t1, t2
    add   t0, t0, t1                   # ticks to sleep
    addi  sp, sp, 16
    rdtime t1
    add   t1, t1, t0
    sw    t1, P_WAKE(s0)
    li    t0, P_SLEEPING
    sw    t0, P_STATE(s0)
    sw    zero, P_A0(s0)
    j     schedule
8:  addi  sp, sp, 16
    j     syscall_return               # -EFAULT
9:  addi  sp, sp, 16
    li    a0, -EINVAL
    j     syscall_return
