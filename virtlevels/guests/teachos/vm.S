# vm.S - memory: a page allocator, Sv32 page tables (Priv 4.3), and user-memory access.
#
# Every process has its own two-level Sv32 page table:
#   root[0]          -> a level-0 table for user addresses 0-4 MiB (text/data at USER_BASE,
#                       heap above it, stack just below USER_STACK_TOP), all with the U bit;
#   root[0x040]      the UART's 4 MiB megapage (0x1000_0000), kernel read/write;
#   root[0x200..]    KERNEL_MEGAPAGES megapages identity-mapping RAM from 0x8000_0000 (firmware,
#                    kernel, user program images, page pool), kernel read/write/execute, global;
#   root[0x3FF]      -> the kernel's level-0 table for the top 4 MiB, which maps the per-CPU
#                    page at 0xFFFF_F000 (the PV trap entry keeps two words there).
# The kernel part is the same in every table, so the kernel keeps running across a satp switch.
# Every PTE is written through arch_pte_write (a store, or a batched mmu_update hypercall).

    .text
# kalloc() -> a0 = physical address of a zeroed 4 KiB page from the pool, or 0 if none is left.
kalloc:
    la    t0, next_free_page
    lw    a0, 0(t0)
    li    t1, PAGE_POOL_END
    bgeu  a0, t1, 9f
    li    t2, 4096
    add   t2, a0, t2
    sw    t2, 0(t0)
    mv    t1, a0
1:  sw    zero, 0(t1)
    sw    zero, 4(t1)
    sw    zero, 8(t1)
    sw    zero, 12(t1)
    addi  t1, t1, 16
    bltu  t1, t2, 1b
    ret
9:  li    a0, 0
    ret

# vm_init: the page-table pages every address space shares: the per-CPU page and the level-0
# table that maps it at the top of the address space.
vm_init:
    addi  sp, sp, -16
    sw    ra, 12(sp)
    sw    s0, 8(sp)
    call  kalloc
    mv    s0, a0                       # the per-CPU page
    call  kalloc
    la    t0, ktop_l2
    sw    a0, 0(t0)
    li    t0, 1023 * 4
    add   a0, a0, t0                   # its last entry: virtual page 0xFFFF_F000
    srli  a1, s0, 12
    slli  a1, a1, 10
    ori   a1, a1, PTE_KERNEL_RW
    call  arch_pte_write
    call  arch_pte_flush
    lw    s0, 8(sp)
    lw    ra, 12(sp)
    addi  sp, sp, 16
    ret

# proc_init: for each program in the generated proc_table, build its page table and trap frame.
proc_init:
    addi  sp, sp, -48
    sw    ra, 44(sp)
    sw    s0, 40(sp)
    sw    s1, 36(sp)
    sw    s2, 32(sp)
    sw    s3, 28(sp)
    sw    s4, 24(sp)
    sw    s5, 20(sp)
    sw    s6, 16(sp)
    sw    s7, 12(sp)
    la    s0, procs                    # s0 = struct proc
    la    s1, proc_table               # s1 = its image description
    li    s2, 0                        # s2 = index
1:  lw    t0, nproc
    bgeu  s2, t0, 9f
    addi  t0, s2, 1
    sw    t0, P_PID(s0)                # pids count from 1
    call  kalloc
    sw    a0, P_ROOT(s0)
    mv    s3, a0                       # s3 = root table
    call  kalloc
    sw    a0, P_L2(s0)
    mv    s4, a0                       # s4 = user level-0 table
    # The kernel's megapages: PPN = address >> 12, a leaf at level 1 (Priv 4.3.2 step 4).
    li    s5, 0
2:  li    t0, KERNEL_MEGAPAGES
    bgeu  s5, t0, 3f
    li    t0, 0x200
    add   t0, t0, s5
    slli  t0, t0, 2
    add   a0, s3, t0                   # &root[0x200 + k]
    li    a1, RAM_BASE >> 2
    slli  t1, s5, 20                   # 4 MiB >> 2
    add   a1, a1, t1
    ori   a1, a1, PTE_KERNEL_RWX
    call  arch_pte_write
    addi  s5, s5, 1
    j     2b
3:  li    t0, (UART_BASE >> 22) * 4
    add   a0, s3, t0
    li    a1, (UART_BASE >> 12) << 10
    ori   a1, a1, PTE_KERNEL_RW
    call  arch_pte_write
    li    t0, 1023 * 4
    add   a0, s3, t0
    lw    a1, ktop_l2
    srli  a1, a1, 12
    slli  a1, a1, 10
    ori   a1, a1, PTE_V                # a pointer to the next level: V set, R/W/X clear
    call  arch_pte_write
    mv    a0, s3
    srli  a1, s4, 12
    slli  a1, a1, 10
    ori   a1, a1, PTE_V
    call  arch_pte_write
    # The program's segments: (virtual address, physical address, pages, R/W/X bits).
    lw    s5, 8(s1)                    # segment count
    lw    s6, 12(s1)                   # segment list
4:  beqz  s5, 7f
    lw    t0, 0(s6)
    lw    t1, 4(s6)
    lw    s7, 8(s6)
    sw    t0, 0(sp)
    sw    t1, 4(sp)
5:  beqz  s7, 6f
    lw    t0, 0(sp)                    # virtual address of the page
    srli  t0, t0, 12
    andi  t0, t0, 0x3FF
    slli  t0, t0, 2
    add   a0, s4, t0
    lw    a1, 4(sp)                    # its physical address
    srli  a1, a1, 12
    slli  a1, a1, 10
    lw    t0, 12(s6)
    or    a1, a1, t0
    ori   a1, a1, PTE_USER
    call  arch_pte_write
    lw    t0, 0(sp)
    li    t1, 4096
    add   t0, t0, t1
    sw    t0, 0(sp)
    lw    t0, 4(sp)
    add   t0, t0, t1
    sw    t0, 4(sp)
    addi  s7, s7, -1
    j     5b
6:  addi  s6, s6, 16
    addi  s5, s5, -1
    j     4b
7:  srli  t0, s3, 12
    li    t1, SATP_SV32                # Priv 4.1.11: MODE = Sv32, ASID 0, PPN = root >> 12
    or    t0, t0, t1
    sw    t0, P_SATP(s0)
    lw    t0, 0(s1)
    sw    t0, P_PC(s0)                 # start at the program's entry point
    li    t0, USER_STACK_TOP - 16      # argc = 0, argv = envp = NULL on the stack, as Linux does
    sw    t0, P_SP(s0)
    lw    t0, 4(s1)
    sw    t0, P_HEAP(s0)
    sw    t0, P_BRK(s0)
    li    t0, P_RUNNABLE
    sw    t0, P_STATE(s0)
    addi  s0, s0, PROC_SIZE
    addi  s1, s1, 16
    addi  s2, s2, 1
    j     1b
9:  call  arch_pte_flush
    lw    s7, 12(sp)
    lw    s6, 16(sp)
    lw    s5, 20(sp)
    lw    s4, 24(sp)
    lw    s3, 28(sp)
    lw    s2, 32(sp)
    lw    s1, 36(sp)
    lw    s0, 40(sp)
    lw    ra, 44(sp)
    addi  sp, sp, 48
    ret

# walkaddr(a0 = user virtual address, a1 = PTE bits that must be set, a2 = root table)
#   -> a0 = physical address, or 0 if the page is not mapped with those bits.
# The Sv32 walk of Priv 4.3.2, done in software, as xv6's walkaddr.
walkaddr:
    srli  t0, a0, 22
    slli  t0, t0, 2
    add   t0, a2, t0
    lw    t1, 0(t0)                    # level-1 PTE
    andi  t2, t1, PTE_V
    beqz  t2, 8f
    andi  t2, t1, PTE_R | PTE_W | PTE_X
    bnez  t2, 2f                       # a leaf: a megapage
    srli  t1, t1, 10
    slli  t1, t1, 12                   # the level-0 table
    srli  t0, a0, 12
    andi  t0, t0, 0x3FF
    slli  t0, t0, 2
    add   t0, t1, t0
    lw    t1, 0(t0)                    # level-0 PTE
    andi  t2, t1, PTE_V
    beqz  t2, 8f
    and   t2, t1, a1
    bne   t2, a1, 8f
    srli  t1, t1, 10
    slli  t1, t1, 12
    slli  t0, a0, 20
    srli  t0, t0, 20                   # the page offset (12 bits)
    or    a0, t1, t0
    ret
2:  and   t2, t1, a1
    bne   t2, a1, 8f
    srli  t1, t1, 20
    slli  t1, t1, 22                   # megapage base
    slli  t0, a0, 10
    srli  t0, t0, 10                   # offset within 4 MiB
    or    a0, t1, t0
    ret
8:  li    a0, 0
    ret

# copyout(a0 = user destination, a1 = kernel source, a2 = length) -> a0 = 0 or -EFAULT.
# copyin(a0 = kernel destination, a1 = user source, a2 = length) -> a0 = 0 or -EFAULT.
# Byte by byte through walkaddr: short copies (a timespec) only.
copyout:
    li    a3, PTE_U | PTE_W
    j     1f
copyin:
    li    a3, PTE_U | PTE_R
1:  addi  sp, sp, -32
    sw    ra, 28(sp)
    sw    s1, 24(sp)
    sw    s2, 20(sp)
    sw    s3, 16(sp)
    sw    s4, 12(sp)
    sw    s5, 8(sp)
    mv    s1, a0
    mv    s2, a1
    mv    s3, a2
    mv    s4, a3                       # required bits; copyout when it has PTE_W
2:  beqz  s3, 5f
    andi  t0, s4, PTE_W
    mv    a0, s1                       # the user address is the destination ...
    beqz  t0, 3f
    j     4f
3:  mv    a0, s2                       # ... or the source
4:  mv    a1, s4
    lw    a2, P_ROOT(s0)
    call  walkaddr
    beqz  a0, 6f
    andi  t0, s4, PTE_W
    beqz  t0, 7f
    lbu   t1, 0(s2)                    # copyout: kernel -> user page
    sb    t1, 0(a0)
    j     8f
7:  lbu   t1, 0(a0)                    # copyin: user page -> kernel
    sb    t1, 0(s1)
8:  addi  s1, s1, 1
    addi  s2, s2, 1
    addi  s3, s3, -1
    j     2b
5:  li    a0, 0
    j     9f
6:  li    a0, -EFAULT
9:  lw    s5, 8(sp)
    lw    s4, 12(sp)
    lw    s3, 16(sp)
    lw    s2, 20(sp)
    lw    s1, 24(sp)
    lw    ra, 28(sp)
    addi  sp, sp, 32
    ret

    .data
    .balign 4
ktop_l2:    .word 0                    # level-0 table for the top 4 MiB (the per-CPU page)
