# teachos - a small teaching kernel for RV32 in assembly (S-mode), in the spirit of xv6.
#
# The kernel is built from these files, in this order (virtlevels/guests/builder.py):
#   (generated)      constants: memory layout, timer interval, SBI IDs
#   boot.S           entry point, process-table layout, global variables
#   trap.S           trap dispatch: system calls, page faults, timer interrupts, kills
#   syscall.S        the Linux-numbered system calls
#   sched.S          round-robin scheduler, timer, shutdown
#   vm.S             Sv32 page tables, page allocator, user-memory access
#   console.S        UART output (direct MMIO) and number printing
#   arch_native.S    privileged operations as instructions (csrw, sret, sfence.vma, wfi), or
#   arch_pv.S        the same operations as hypercalls to the VLP SBI extension
#   (generated)      the process images: where each user program lies and how to map it
#
# Design (docs/guests.md has the full story):
# - One hart, one kernel stack. The kernel never blocks inside itself: every trap from user
#   mode saves the user's registers in the current process's trap frame, runs to completion on
#   a fresh kernel stack, and ends by returning to some process (`switch_to`). So a process is
#   just its trap frame, its page table and a few words of state.
# - The kernel runs with interrupts disabled (sstatus.SIE = 0); user code runs with them on.
# - Memory is identity-mapped for the kernel (virtual = physical, 4 MiB megapages, not
#   user-accessible), so the kernel reaches page tables and user pages by physical address.

    # Process states.
    .equ P_FREE, 0
    .equ P_RUNNABLE, 1
    .equ P_SLEEPING, 2
    .equ P_ZOMBIE, 3

    # struct proc: the trap frame first (word 0 = pc, word i = register x_i), then the rest.
    .equ P_FRAME, 0
    .equ P_PC, 0
    .equ P_RA, 4
    .equ P_SP, 8
    .equ P_A0, 40
    .equ P_A1, 44
    .equ P_A2, 48
    .equ P_A7, 68
    .equ P_STATE, 128
    .equ P_PID, 132
    .equ P_SATP, 136                   # satp value selecting this process's page table
    .equ P_BRK, 140                    # program break (brk)
    .equ P_HEAP, 144                   # lowest break: the heap starts here
    .equ P_WAKE, 148                   # time (low word of mtime) a sleeper wakes at
    .equ P_XCODE, 152                  # exit code
    .equ P_ROOT, 156                   # physical address of the root page table
    .equ P_L2, 160                     # the second-level table for user addresses 0-4 MiB
    .equ PROC_SIZE, 256

    # Sv32 page-table entry bits (Priv 4.3.1, figure 4.18).
    .equ PTE_V, 0x01
    .equ PTE_R, 0x02
    .equ PTE_W, 0x04
    .equ PTE_X, 0x08
    .equ PTE_U, 0x10
    .equ PTE_G, 0x20
    .equ PTE_A, 0x40
    .equ PTE_D, 0x80
    # A and D are set up front (Priv 4.3.1 allows it) so no walk ever has to write a PTE.
    .equ PTE_KERNEL_RWX, PTE_V | PTE_R | PTE_W | PTE_X | PTE_G | PTE_A | PTE_D
    .equ PTE_KERNEL_RW, PTE_V | PTE_R | PTE_W | PTE_G | PTE_A | PTE_D
    .equ PTE_USER, PTE_V | PTE_U | PTE_A | PTE_D
    .equ SATP_SV32, 0x80000000

    # sstatus and sip bits (Priv 4.1.1, 4.1.3).
    .equ SSTATUS_SPP, 0x100
    .equ SSTATUS_SPIE, 0x20
    .equ SIE_STIE, 0x20
    .equ SIP_STIP, 0x20

    # scause values (Priv 4.1.9, table 4.2).
    .equ CAUSE_ILLEGAL, 2
    .equ CAUSE_BREAKPOINT, 3
    .equ CAUSE_ECALL_U, 8
    .equ CAUSE_FETCH_PAGE_FAULT, 12
    .equ CAUSE_LOAD_PAGE_FAULT, 13
    .equ CAUSE_STORE_PAGE_FAULT, 15
    .equ IRQ_S_TIMER, 5

    # Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h).
    .equ EBADF, 9
    .equ EFAULT, 14
    .equ EINVAL, 22
    .equ ENOSYS, 38

    # SBI extension IDs used by the kernel (SBI 2.0).
    .equ SBI_EXT_TIME, 0x54494D45
    .equ SBI_EXT_SRST, 0x53525354

    .text
    .globl _start
_start:                                # S-mode, a0 = hartid, a1 = device tree (0: none)
    la    sp, kstack_top
    # Clear .bss: the loader did, but a kernel must not count on it (real boot loaders may not).
    la    t0, kernel_bss_start
    la    t1, kernel_bss_end
1:  bgeu  t0, t1, 2f
    sw    zero, 0(t0)
    addi  t0, t0, 4
    j     1b
2:  call  arch_init                    # trap vector, interrupt enables (arch_*.S)
    call  vm_init                      # the kernel's shared page-table pages
    call  proc_init                    # one address space and trap frame per user program
    call  timer_arm                    # first timer interrupt in TIMER_INTERVAL ticks
    j     schedule                     # run the first process; never comes back here

    .data
    .balign 4
cur_proc:       .word 0                # the running process (struct proc *), 0 before the first
loaded_satp:    .word 0                # satp value last installed, to skip needless switches
exit_status:    .word 0                # first non-zero exit code, reported at shutdown
next_free_page: .word PAGE_POOL_BASE   # bump allocator for page tables and heap pages
ticks:          .word 0                # timer interrupts taken
page_faults:    .word 0                # heap pages mapped on demand

    .bss
    .balign 16
kernel_bss_start:
procs:
    .space NPROC_MAX * PROC_SIZE
trap_info_buf:                         # scause, sepc, stval, sstatus of the current trap
    .space 16
kstack:
    .space 4096
kstack_top:
