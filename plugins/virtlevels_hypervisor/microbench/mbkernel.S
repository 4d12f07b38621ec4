# mbkernel.S - a tiny S-mode kernel that runs one microbenchmark in a loop (after Adams & Agesen,
# "A Comparison of Software and Hardware Techniques for x86 Virtualization", ASPLOS 2006, sec. 6).
#
# It boots like teachos (docs/guests.md "Boot flow"): the SBI firmware enters it in S-mode at
# KERNEL_BASE with a0 = hartid, a1 = 0 and satp = 0; under a hypervisor the VMM plays the firmware
# and loads only this part. Constants (KERNEL_BASE, UART_BASE, the benchmark numbers, the virtual
# addresses below) come from a header the builder (build.py) puts in front of this file.
#
# Which benchmark runs and how often is data: the words mb_bench and mb_iters, patched into the
# image after assembly, so one assembled kernel serves every run. Every benchmark does one warm-up
# operation and then mb_iters more, so cycles(N) - cycles(0) is exactly N steady-state iterations.
#
# Address space (Sv32, Priv 4.3; one root table, one level-0 table for the user's 4 MiB):
#   0x8000_0000-0x80FF_FFFF  identity, 4 megapages, kernel RWX (not U)
#   UART_BASE                the UART's megapage, kernel RW
#   USER_CODE_VA             the page holding user_page below, U R-X
#   FAULT_VA0 / FAULT_VA1    pgfault: at most one of the two is mapped (U RW-) at any time
#   PTEMOD_VA                ptemod: its PTE is rewritten in a loop (kernel RW- when valid)
# A and D are preset in every PTE, so page walks never write page tables.

    .equ PTE_V, 0x01
    .equ PTE_R, 0x02
    .equ PTE_W, 0x04
    .equ PTE_X, 0x08
    .equ PTE_U, 0x10
    .equ PTE_G, 0x20
    .equ PTE_A, 0x40
    .equ PTE_D, 0x80
    .equ PTE_KRWX, PTE_V | PTE_R | PTE_W | PTE_X | PTE_G | PTE_A | PTE_D
    .equ PTE_KRW, PTE_V | PTE_R | PTE_W | PTE_G | PTE_A | PTE_D
    .equ PTE_URX, PTE_V | PTE_R | PTE_X | PTE_U | PTE_A | PTE_D
    .equ PTE_URW, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D
    .equ PTE_RW_LOCAL, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
    .equ SATP_SV32, 0x80000000
    .equ SSTATUS_SPP, 0x100
    .equ SSTATUS_SPIE, 0x20

    # scause values (Priv 4.1.9, table 4.2).
    .equ CAUSE_BREAKPOINT, 3
    .equ CAUSE_ECALL_U, 8
    .equ CAUSE_LOAD_PAGE_FAULT, 13
    .equ CAUSE_STORE_PAGE_FAULT, 15

    .equ NR_EXIT, 93                   # Linux asm-generic/unistd.h
    .equ NR_GETPID, 172
    .equ SBI_EXT_SRST, 0x53525354      # SBI 2.0 chapter 10
    .equ UART_LSR, 5                   # 16550: line status (reads have no side effect)
    .equ UART_SCR, 7                   # 16550: scratch register (writes have no side effect)
    .equ LSR_THRE, 0x20
    .equ PTEMOD_MAGIC, 0x600DF00D

    # Failure codes (the run fails with exit code = this; docs/hypervisor-microbench.md).
    .equ FAIL_TRAP, 2                  # a trap the benchmark did not expect
    .equ FAIL_COUNT, 3                 # the kernel counted a different number of traps
    .equ FAIL_IN, 4                    # the MMIO load did not read the UART's LSR
    .equ FAIL_OUT, 5                   # the MMIO store did not reach the UART's scratch register
    .equ FAIL_CR8, 6                   # sie does not hold what was written
    .equ FAIL_PTE, 7                   # the page rewritten by ptemod does not map its frame
    .equ FAIL_BENCH, 8                 # mb_bench names no benchmark

    .text
    .globl _start
_start:
    la    sp, kstack_top
    # Zero the two page-table pages (the loader does, but a kernel must not count on it).
    la    t0, pt_root
    li    t1, 2 * 4096
    add   t1, t0, t1
1:  sw    zero, 0(t0)
    addi  t0, t0, 4
    bltu  t0, t1, 1b
    # Root: entry 0 -> the user level-0 table; the UART megapage; 4 RAM megapages (identity).
    la    t0, pt_root
    la    t1, pt_user
    srli  t1, t1, 12
    slli  t1, t1, 10
    ori   t1, t1, PTE_V                # a pointer to the next level (Priv 4.3.1: R = W = X = 0)
    sw    t1, 0(t0)
    li    t1, ((UART_BASE >> 12) << 10) | PTE_KRW
    li    t2, (UART_BASE >> 22) * 4
    add   t2, t0, t2
    sw    t1, 0(t2)
    li    t1, ((RAM_BASE >> 12) << 10) | PTE_KRWX
    li    t2, (RAM_BASE >> 22) * 4
    add   t2, t0, t2
    li    t3, 4
    li    t4, (0x400000 >> 12) << 10   # one megapage further
2:  sw    t1, 0(t2)
    add   t1, t1, t4
    addi  t2, t2, 4
    addi  t3, t3, -1
    bnez  t3, 2b
    # Level 0: the user code page.
    la    t0, pt_user
    la    t1, user_page
    srli  t1, t1, 12
    slli  t1, t1, 10
    ori   t1, t1, PTE_URX
    sw    t1, USER_CODE_PTE_OFF(t0)
    # ptemod's frame holds a magic word the kernel reads back through PTEMOD_VA at the end.
    la    t1, ptemod_frame
    li    t2, PTEMOD_MAGIC
    sw    t2, 0(t1)
    # Translation on (Priv 4.1.11), trap vector, the trap stack in sscratch, no interrupts.
    la    t0, pt_root
    srli  t0, t0, 12
    li    t1, SATP_SV32
    or    t0, t0, t1
    csrw  satp, t0
    sfence.vma
    la    t0, trap_entry
    csrw  stvec, t0
    la    t0, tstack_top
    csrw  sscratch, t0
    csrw  sie, zero
    # The benchmark: s0 = iterations, s11 = benchmark number.
    lw    s0, mb_iters
    lw    s11, mb_bench
    li    t0, BENCH_COUNT
    bgeu  s11, t0, bad_bench
    slli  t0, s11, 2
    la    t1, bench_table
    add   t1, t1, t0
    lw    t1, 0(t1)
    jr    t1

bad_bench:
    li    a0, FAIL_BENCH
    j     fail

# ---- benchmarks run by the kernel itself (S-mode) -----------------------------------------
# Each: one warm-up operation, then s0 more; the loop is the same as null_kernel's.

b_null_kernel:
1:  beqz  s0, done_kernel
    addi  s0, s0, -1
    j     1b

b_in:                                  # MMIO load of a device register (x86: in)
    li    s1, UART_BASE
    lbu   s2, UART_LSR(s1)
1:  beqz  s0, 2f
    lbu   s2, UART_LSR(s1)
    addi  s0, s0, -1
    j     1b
2:  andi  s2, s2, LSR_THRE             # an idle transmitter reads THRE = 1
    li    a0, FAIL_IN
    beqz  s2, fail
    j     done_kernel

b_out:                                 # MMIO store to a device register (x86: out)
    li    s1, UART_BASE
    li    s2, 0x5A
    sb    s2, UART_SCR(s1)
1:  beqz  s0, 2f
    sb    s2, UART_SCR(s1)
    addi  s0, s0, -1
    j     1b
2:  lbu   s3, UART_SCR(s1)
    li    a0, FAIL_OUT
    bne   s2, s3, fail
    j     done_kernel

b_cr8wr:                               # write the interrupt mask (x86: mov to %cr8, the TPR)
    csrw  sie, zero
1:  beqz  s0, 2f
    csrw  sie, zero
    addi  s0, s0, -1
    j     1b
2:  csrr  s2, sie
    li    a0, FAIL_CR8
    bnez  s2, fail
    j     done_kernel

b_callret:                             # a call and its return (x86: call/ret)
    jal   ra, mb_leaf
1:  beqz  s0, done_kernel
    jal   ra, mb_leaf
    addi  s0, s0, -1
    j     1b

mb_leaf:
    ret

b_ptemod:                              # rewrite a live PTE and flush it (x86: PTE write + invlpg)
    la    s1, pt_user
    addi  s1, s1, PTEMOD_PTE_OFF
    la    s2, ptemod_frame
    srli  s2, s2, 12
    slli  s2, s2, 10
    ori   s2, s2, PTE_RW_LOCAL         # valid, kernel RW-, not global
    li    s3, PTEMOD_VA
    li    s4, PTE_V                    # toggled: the entry alternates valid / invalid
    sw    s2, 0(s1)
    sfence.vma s3, zero                # Priv 4.2.1: order the PTE write before later accesses
1:  beqz  s0, 2f
    xor   s2, s2, s4
    sw    s2, 0(s1)
    sfence.vma s3, zero
    addi  s0, s0, -1
    j     1b
2:  ori   s2, s2, PTE_V                # map it once more and read the magic word through it
    sw    s2, 0(s1)
    sfence.vma s3, zero
    lw    s5, 0(s3)
    li    s6, PTEMOD_MAGIC
    li    a0, FAIL_PTE
    bne   s5, s6, fail
    j     done_kernel

# ---- benchmarks run in user mode (U) with the kernel handling their traps ------------------

b_user:
    la    t0, trap_count
    sw    zero, 0(t0)
    li    t0, USER_CODE_VA
    csrw  sepc, t0
    li    t0, SSTATUS_SPP | SSTATUS_SPIE
    csrc  sstatus, t0                  # Priv 4.1.1: sret goes to U-mode, interrupts stay off
    mv    a0, s0
    mv    a1, s11
    sret

# The user program ended with exit(): check the kernel counted one trap per operation.
user_done:
    la    t0, trap_count
    lw    t1, 0(t0)
    lw    t2, mb_iters
    li    t0, BENCH_NULL_USER
    beq   s11, t0, 1f
    addi  t2, t2, 1                    # the warm-up operation trapped too
    j     2f
1:  li    t2, 0
2:  li    a0, FAIL_COUNT
    bne   t1, t2, fail
    j     done_kernel

# ---- the trap handler -----------------------------------------------------------------------
# Every trap from U-mode comes here; so would any trap from S-mode (none is expected: it fails).
# Only t0-t2 are used (saved on the trap stack) and a0 for getpid's result, as a system call does.
    .balign 4
trap_entry:
    csrrw sp, sscratch, sp             # sp = trap stack, sscratch = the interrupted sp
    sw    t0, -4(sp)
    sw    t1, -8(sp)
    sw    t2, -12(sp)
    csrr  t0, scause
    li    t1, CAUSE_ECALL_U
    beq   t0, t1, t_ecall
    li    t1, CAUSE_BREAKPOINT
    beq   t0, t1, t_skip
    li    t1, CAUSE_LOAD_PAGE_FAULT
    beq   t0, t1, t_page_fault
    li    t1, CAUSE_STORE_PAGE_FAULT
    beq   t0, t1, t_page_fault
    li    a0, FAIL_TRAP
    j     fail

t_ecall:
    li    t1, NR_EXIT
    beq   a7, t1, user_done
    li    a0, -38                      # -ENOSYS for anything but getpid
    li    t1, NR_GETPID
    bne   a7, t1, t_skip
    li    a0, 1                        # getpid(): the only process is pid 1
t_skip:                                # resume after the trapping instruction (ecall, ebreak)
    csrr  t0, sepc
    addi  t0, t0, 4
    csrw  sepc, t0
t_count:
    la    t0, trap_count
    lw    t1, 0(t0)
    addi  t1, t1, 1
    sw    t1, 0(t0)
    lw    t0, -4(sp)
    lw    t1, -8(sp)
    lw    t2, -12(sp)
    csrrw sp, sscratch, sp
    sret

# A user access to FAULT_VA0 or FAULT_VA1 (whichever is unmapped): map it, unmap the other one,
# flush both (Priv 4.2.1), and retry the access (sepc unchanged).
t_page_fault:
    csrr  t0, stval
    srli  t0, t0, 12
    li    t1, FAULT_VA0 >> 12
    beq   t0, t1, 1f
    li    t1, FAULT_VA1 >> 12
    beq   t0, t1, 1f
    li    a0, FAIL_TRAP
    j     fail
1:  andi  t0, t0, 0x3FF
    slli  t0, t0, 2
    la    t1, pt_user
    add   t1, t1, t0                   # t1 = the faulting page's PTE
    la    t2, fault_frame
    srli  t2, t2, 12
    slli  t2, t2, 10
    ori   t2, t2, PTE_URW
    sw    t2, 0(t1)                    # map
    xori  t1, t1, 4                    # the other page's PTE (FAULT_VA0's index is even)
    sw    zero, 0(t1)                  # unmap
    csrr  t0, stval
    sfence.vma t0, zero
    li    t1, 0x1000
    xor   t0, t0, t1                   # the other page
    sfence.vma t0, zero
    j     t_count

# ---- the end --------------------------------------------------------------------------------
done_kernel:
    la    t0, bench_names
    slli  t1, s11, 2
    add   t0, t0, t1
    lw    s1, 0(t0)
    la    a0, msg_ok1
    call  puts
    mv    a0, s1
    call  puts
    la    a0, msg_ok2
    call  puts
    li    a0, 0                        # SRST shutdown, no reason: the run passes
    li    a1, 0
    li    a6, 0
    li    a7, SBI_EXT_SRST
    ecall
    j     .

# a0 = failure code: say so and shut down with reason 0xE000_0000 | code (the firmware and the
# VMM turn it into the test finisher's failure with that code).
fail:
    mv    s1, a0
    la    a0, msg_fail
    call  puts
    li    a1, 0xE0000000
    or    a1, a1, s1
    li    a0, 0
    li    a6, 0
    li    a7, SBI_EXT_SRST
    ecall
    j     .

# puts(a0): the NUL-terminated string to the UART by direct MMIO (poll THRE, store THR).
puts:
    li    t1, UART_BASE
1:  lbu   t0, 0(a0)
    beqz  t0, 3f
2:  lbu   t2, UART_LSR(t1)
    andi  t2, t2, LSR_THRE
    beqz  t2, 2b
    sb    t0, 0(t1)
    addi  a0, a0, 1
    j     1b
3:  ret

# ---- the user page: mapped at USER_CODE_VA, position-independent (only pc-relative jumps) -------
# a0 = iterations, a1 = benchmark number. Ends with exit(0).
    .balign 4096
user_page:
    mv    s0, a0
    li    t0, BENCH_SYSCALL
    beq   a1, t0, u_syscall
    li    t0, BENCH_PGFAULT
    beq   a1, t0, u_pgfault
    li    t0, BENCH_DIVZERO
    beq   a1, t0, u_divzero
u_null:
1:  beqz  s0, u_exit
    addi  s0, s0, -1
    j     1b

u_syscall:                             # getpid(), a system call that does no work
    li    a7, NR_GETPID
    ecall
1:  beqz  s0, u_exit
    ecall
    addi  s0, s0, -1
    j     1b

u_pgfault:                             # load from the page that is not mapped now
    li    s1, FAULT_VA0
    li    s2, FAULT_VA0 ^ FAULT_VA1
    lw    t0, 0(s1)
    xor   s1, s1, s2
1:  beqz  s0, u_exit
    lw    t0, 0(s1)
    xor   s1, s1, s2
    addi  s0, s0, -1
    j     1b

u_divzero:                             # a fault the kernel handles and skips (x86: #DE)
    ebreak
1:  beqz  s0, u_exit
    ebreak
    addi  s0, s0, -1
    j     1b

u_exit:
    li    a0, 0
    li    a7, NR_EXIT
    ecall
    j     u_exit
user_page_end:

    .rodata
    .balign 4
bench_table:
    .word b_null_kernel, b_user, b_user, b_in, b_out, b_cr8wr, b_callret, b_user, b_user, b_ptemod
bench_names:
    .word n_null_kernel, n_null_user, n_syscall, n_in, n_out, n_cr8wr, n_callret, n_pgfault
    .word n_divzero, n_ptemod
n_null_kernel: .asciz "null-kernel"
n_null_user:   .asciz "null-user"
n_syscall:     .asciz "syscall"
n_in:          .asciz "in"
n_out:         .asciz "out"
n_cr8wr:       .asciz "cr8wr"
n_callret:     .asciz "call/ret"
n_pgfault:     .asciz "pgfault"
n_divzero:     .asciz "divzero"
n_ptemod:      .asciz "ptemod"
msg_ok1:       .asciz "microbench: "
msg_ok2:       .asciz " ok\n"
msg_fail:      .asciz "microbench: FAIL\n"

    .data
    .balign 4
    .globl mb_bench, mb_iters
mb_params:
mb_bench:   .word 0                    # patched: the benchmark number (build.py BENCH_IDS)
mb_iters:   .word 0                    # patched: iterations after the warm-up one
trap_count: .word 0

    .bss
    .balign 4096
pt_root:      .space 4096
pt_user:      .space 4096
fault_frame:  .space 4096
ptemod_frame: .space 4096
kstack:       .space 1024
kstack_top:
tstack:       .space 256
tstack_top:
