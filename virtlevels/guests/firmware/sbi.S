# sbi.S - a minimal M-mode SBI firmware for the virtlevels machine (in the role of OpenSBI).
#
# It implements the RISC-V Supervisor Binary Interface, SBI specification v2.0, for one
# supervisor-mode kernel: the base extension, TIME, the legacy console putchar/getchar, DBCN,
# SRST, and the virtlevels paravirtualization extension "VLP" (EID 0x09564C50, in the
# firmware-specific range 0x09000000-0x09FFFFFF of SBI 2.0 section 3 table 1). The PV calls let
# a kernel that executes no privileged instruction run on the bare machine: this firmware does
# the privileged work for it (the "native PV" path; a hypervisor implements the same ABI).
#
# Boot flow (as OpenSBI's FW_JUMP firmware):
#   reset at 0x8000_0000 in M-mode -> hart 0 sets up trap delegation, counters, the trap vector
#   and its stack -> mret to the kernel at FW_JUMP_ADDR in S-mode with a0 = hartid, a1 = 0
#   (no device tree). Other harts park in WFI (the kernel is single-hart).
#
# Constants (FW_JUMP_ADDR, UART_BASE, CLINT_BASE, FINISHER_BASE, KERNEL_BASE, RAM_END) come from
# a header the builder (virtlevels/guests/builder.py) puts in front of this file.
#
# Calling convention (SBI 2.0 section 3): a7 = extension ID, a6 = function ID, arguments in
# a0-a5; the firmware returns a0 = error code and a1 = value and preserves every other register.

    .equ SBI_SUCCESS, 0
    .equ SBI_ERR_FAILED, -1
    .equ SBI_ERR_NOT_SUPPORTED, -2
    .equ SBI_ERR_INVALID_PARAM, -3
    .equ SBI_ERR_INVALID_ADDRESS, -5

    .equ EID_LEGACY_PUTCHAR, 0x01
    .equ EID_LEGACY_GETCHAR, 0x02
    .equ EID_LEGACY_SHUTDOWN, 0x08
    .equ EID_BASE, 0x10
    .equ EID_TIME, 0x54494D45          # "TIME"
    .equ EID_DBCN, 0x4442434E          # "DBCN"
    .equ EID_SRST, 0x53525354          # "SRST"
    .equ EID_VLP, 0x09564C50           # 0x09 "VLP": virtlevels paravirtualization

    .equ SPEC_VERSION, 0x02000000      # SBI 2.0: major in bits 30:24, minor in 23:0
    .equ IMPL_ID, 0x564C               # "VL"; not a registered implementation ID
    .equ IMPL_VERSION, 1

    # Priv 3.1.6 mstatus and 3.1.9 mip/mie bits.
    .equ MSTATUS_SIE, 0x2
    .equ MSTATUS_SPIE, 0x20
    .equ MSTATUS_MPIE, 0x80
    .equ MSTATUS_SPP, 0x100
    .equ MSTATUS_MPP, 0x1800
    .equ MSTATUS_MPP_S, 0x800
    .equ MSTATUS_MPRV, 0x20000
    .equ MIP_STIP, 0x20
    .equ MIE_MTIE, 0x80

    # Priv 3.1.8: exceptions handed to S-mode - misaligned fetch/load/store, access faults,
    # illegal instruction, breakpoint, ecall from U, page faults (causes 0-8, 12, 13, 15).
    .equ MEDELEG_BITS, 0xB1FF
    # Supervisor software, timer and external interrupts go to S-mode.
    .equ MIDELEG_BITS, 0x222

    .equ UART_THR, 0
    .equ UART_RBR, 0
    .equ UART_LSR, 5
    .equ LSR_DR, 0x01
    .equ LSR_THRE, 0x20
    .equ CLINT_MTIMECMP, 0x4000

    # Test finisher (QEMU sifive_test): pass, fail (code << 16 | FAIL), reset.
    .equ FINISHER_PASS, 0x5555
    .equ FINISHER_FAIL, 0x3333
    .equ FINISHER_RESET, 0x7777

    # Offsets of the caller's registers in the firmware's trap frame.
    .equ F_RA, 0
    .equ F_T0, 4
    .equ F_T1, 8
    .equ F_T2, 12
    .equ F_T3, 16
    .equ F_T4, 20
    .equ F_T5, 24
    .equ F_T6, 28
    .equ F_A0, 32
    .equ F_A1, 36
    .equ F_SIZE, 48

    .text
    .globl _start
_start:
    csrr  t0, mhartid
    bnez  t0, sbi_park                 # one hart runs the kernel; the others wait forever
    la    sp, sbi_stack_top
    csrw  mscratch, sp                 # the trap handler swaps sp with mscratch
    la    t0, sbi_trap
    csrw  mtvec, t0                    # Priv 3.1.7: direct mode, every trap at sbi_trap
    li    t0, MEDELEG_BITS
    csrw  medeleg, t0
    li    t0, MIDELEG_BITS
    csrw  mideleg, t0
    li    t0, 7
    csrw  mcounteren, t0               # Priv 3.1.11: S may read cycle, time and instret
    csrw  mie, zero                    # MTIE is set by the first set_timer
    csrw  satp, zero                   # the kernel starts with translation off (Priv 4.1.11)
    # Priv 3.7.1: with PMP implemented, S and U may access only what an entry allows. One
    # NAPOT entry over the whole address space lets them reach everything (as OpenSBI's last
    # entry does); the simulated machine does not check PMP, but QEMU's virt board does.
    li    t0, -1
    csrw  pmpaddr0, t0
    li    t0, 0x1F                     # pmp0cfg: A = NAPOT, R, W, X
    csrw  pmpcfg0, t0
    li    t0, MSTATUS_MPP
    csrc  mstatus, t0
    li    t0, MSTATUS_MPP_S | MSTATUS_MPIE
    csrs  mstatus, t0                  # Priv 3.3.2: mret will drop to S-mode
    li    t0, FW_JUMP_ADDR
    csrw  mepc, t0
    csrr  a0, mhartid                  # the boot protocol: a0 = hartid, a1 = device tree (none)
    li    a1, 0
    mret

sbi_park:
    wfi
    j     sbi_park

# ---- the trap handler ---------------------------------------------------------------------
# Every trap that is not delegated comes here: ecalls from S-mode (SBI calls) and the machine
# timer interrupt. Caller-saved registers are saved on the firmware stack; a0/a1 carry results.
    .balign 4
sbi_trap:
    csrrw sp, mscratch, sp             # sp = firmware stack, mscratch = the caller's sp
    addi  sp, sp, -F_SIZE
    sw    ra, F_RA(sp)
    sw    t0, F_T0(sp)
    sw    t1, F_T1(sp)
    sw    t2, F_T2(sp)
    sw    t3, F_T3(sp)
    sw    t4, F_T4(sp)
    sw    t5, F_T5(sp)
    sw    t6, F_T6(sp)
    sw    a0, F_A0(sp)
    sw    a1, F_A1(sp)
    csrr  t0, mcause
    bltz  t0, sbi_interrupt            # Priv 3.1.15: bit 31 marks an interrupt
    li    t1, 9                        # ecall from S-mode
    beq   t0, t1, sbi_ecall
    j     sbi_unexpected

sbi_interrupt:
    slli  t0, t0, 1
    srli  t0, t0, 1
    li    t1, 7                        # machine timer interrupt
    bne   t0, t1, sbi_unexpected
    # Without Sstc the supervisor timer is the firmware's job (as OpenSBI does): mask MTIE until
    # the next set_timer and raise STIP, which is delegated, so the kernel sees an S timer interrupt.
    li    t1, MIE_MTIE
    csrc  mie, t1
    li    t1, MIP_STIP
    csrs  mip, t1
    j     sbi_exit

# Return from an SBI call: t0 -> a0 (error), t1 -> a1 (value).
sbi_return:
    sw    t0, F_A0(sp)
    sw    t1, F_A1(sp)
sbi_exit:
    lw    ra, F_RA(sp)
    lw    t0, F_T0(sp)
    lw    t1, F_T1(sp)
    lw    t2, F_T2(sp)
    lw    t3, F_T3(sp)
    lw    t4, F_T4(sp)
    lw    t5, F_T5(sp)
    lw    t6, F_T6(sp)
    lw    a0, F_A0(sp)
    lw    a1, F_A1(sp)
    addi  sp, sp, F_SIZE
    csrrw sp, mscratch, sp
    mret

# Legacy calls (SBI 2.0 chapter 5) return only a0 and leave a1 alone.
sbi_return_legacy:
    sw    t0, F_A0(sp)
    j     sbi_exit

sbi_ok:
    li    t0, SBI_SUCCESS
    li    t1, 0
    j     sbi_return

sbi_not_supported:
    li    t0, SBI_ERR_NOT_SUPPORTED
    li    t1, 0
    j     sbi_return

sbi_invalid_param:
    li    t0, SBI_ERR_INVALID_PARAM
    li    t1, 0
    j     sbi_return

sbi_ecall:
    csrr  t2, mepc
    addi  t2, t2, 4                    # resume after the ecall (Priv 3.3.1: mepc = the ecall)
    csrw  mepc, t2
    li    t2, EID_VLP
    beq   a7, t2, sbi_vlp              # the hot path first: hypercalls of a PV kernel
    li    t2, EID_TIME
    beq   a7, t2, sbi_time
    li    t2, EID_BASE
    beq   a7, t2, sbi_base
    li    t2, EID_DBCN
    beq   a7, t2, sbi_dbcn
    li    t2, EID_SRST
    beq   a7, t2, sbi_srst
    li    t2, EID_LEGACY_PUTCHAR
    beq   a7, t2, sbi_legacy_putchar
    li    t2, EID_LEGACY_GETCHAR
    beq   a7, t2, sbi_legacy_getchar
    li    t2, EID_LEGACY_SHUTDOWN
    beq   a7, t2, sbi_legacy_shutdown
    j     sbi_not_supported

# ---- base extension (SBI 2.0 chapter 4) ----------------------------------------------------
sbi_base:
    li    t0, SBI_SUCCESS
    li    t2, 0
    beq   a6, t2, 1f
    li    t2, 1
    beq   a6, t2, 2f
    li    t2, 2
    beq   a6, t2, 3f
    li    t2, 3
    beq   a6, t2, 4f
    li    t2, 4
    beq   a6, t2, 5f
    li    t2, 5
    beq   a6, t2, 6f
    li    t2, 6
    beq   a6, t2, 7f
    j     sbi_not_supported
1:  li    t1, SPEC_VERSION             # get_spec_version
    j     sbi_return
2:  li    t1, IMPL_ID                  # get_impl_id
    j     sbi_return
3:  li    t1, IMPL_VERSION             # get_impl_version
    j     sbi_return
4:  call  sbi_probe                    # probe_extension(a0 = EID) -> 1 if implemented
    j     sbi_return
5:  csrr  t1, mvendorid
    j     sbi_return
6:  csrr  t1, marchid
    j     sbi_return
7:  csrr  t1, mimpid
    j     sbi_return

sbi_probe:
    li    t1, 1
    li    t2, EID_BASE
    beq   a0, t2, 1f
    li    t2, EID_TIME
    beq   a0, t2, 1f
    li    t2, EID_DBCN
    beq   a0, t2, 1f
    li    t2, EID_SRST
    beq   a0, t2, 1f
    li    t2, EID_VLP
    beq   a0, t2, 1f
    li    t2, EID_LEGACY_PUTCHAR
    beq   a0, t2, 1f
    li    t2, EID_LEGACY_GETCHAR
    beq   a0, t2, 1f
    li    t2, EID_LEGACY_SHUTDOWN
    beq   a0, t2, 1f
    li    t1, 0
1:  ret

# ---- TIME extension (SBI 2.0 chapter 6) ----------------------------------------------------
# set_timer(a0 = low word, a1 = high word of the absolute time): program this hart's mtimecmp,
# clear the pending supervisor timer interrupt and unmask the machine timer.
sbi_time:
    bnez  a6, sbi_not_supported
    li    t2, CLINT_BASE + CLINT_MTIMECMP
    csrr  t3, mhartid
    slli  t3, t3, 3
    add   t2, t2, t3
    # Priv 3.2.1: write the high word to all ones first so that no intermediate value fires.
    li    t3, -1
    sw    t3, 4(t2)
    sw    a0, 0(t2)
    sw    a1, 4(t2)
    li    t3, MIP_STIP
    csrc  mip, t3
    li    t3, MIE_MTIE
    csrs  mie, t3
    j     sbi_ok

# ---- console: legacy (chapter 5) and DBCN (chapter 12) ------------------------------------
sbi_legacy_putchar:
    call  sbi_uart_putc
    li    t0, 0
    j     sbi_return_legacy

sbi_legacy_getchar:
    li    t2, UART_BASE
    lbu   t3, UART_LSR(t2)
    andi  t3, t3, LSR_DR
    li    t0, -1                       # nothing received
    beqz  t3, 1f
    lbu   t0, UART_RBR(t2)
1:  j     sbi_return_legacy

sbi_legacy_shutdown:
    li    t2, FINISHER_BASE
    li    t3, FINISHER_PASS
    sw    t3, 0(t2)
1:  j     1b

sbi_dbcn:
    li    t2, 0
    beq   a6, t2, sbi_dbcn_write
    li    t2, 1
    beq   a6, t2, sbi_dbcn_read
    li    t2, 2
    beq   a6, t2, sbi_dbcn_write_byte
    j     sbi_not_supported

# console_write(a0 = bytes, a1 = physical address low, a2 = high): returns a1 = bytes written.
sbi_dbcn_write:
    bnez  a2, sbi_bad_address          # RAM is below 4 GiB
    mv    t4, a1
    add   t5, a1, a0
1:  bgeu  t4, t5, 2f
    lbu   t1, 0(t4)
    call  sbi_uart_putc_t1
    addi  t4, t4, 1
    j     1b
2:  li    t0, SBI_SUCCESS
    lw    t1, F_A0(sp)                 # every byte was written
    j     sbi_return

# console_read(a0 = bytes, a1/a2 = buffer): copies what the UART has received, a1 = count.
sbi_dbcn_read:
    bnez  a2, sbi_bad_address
    li    t1, 0
    li    t2, UART_BASE
1:  bgeu  t1, a0, 2f
    lbu   t3, UART_LSR(t2)
    andi  t3, t3, LSR_DR
    beqz  t3, 2f
    lbu   t3, UART_RBR(t2)
    add   t4, a1, t1
    sb    t3, 0(t4)
    addi  t1, t1, 1
    j     1b
2:  li    t0, SBI_SUCCESS
    j     sbi_return

sbi_dbcn_write_byte:
    call  sbi_uart_putc
    j     sbi_ok

sbi_bad_address:
    li    t0, SBI_ERR_INVALID_ADDRESS
    li    t1, 0
    j     sbi_return

# sbi_uart_putc(a0) / sbi_uart_putc_t1(t1): wait for THR empty (16550 LSR bit 5), then send.
sbi_uart_putc:
    mv    t1, a0
sbi_uart_putc_t1:
    li    t2, UART_BASE
1:  lbu   t3, UART_LSR(t2)
    andi  t3, t3, LSR_THRE
    beqz  t3, 1b
    sb    t1, UART_THR(t2)
    ret

# ---- SRST extension (SBI 2.0 chapter 10) ---------------------------------------------------
# system_reset(a0 = type, a1 = reason). Shutdown ends the run through the test finisher:
# reason 0 (no reason) passes; reason 1 (system failure) fails with code 1; an implementation-
# specific reason 0xE000_0000 | code fails with that 16-bit code (how teachos reports an exit
# code). Cold and warm reboot ask the finisher for a reset, which halts this machine.
sbi_srst:
    bnez  a6, sbi_not_supported
    li    t2, FINISHER_BASE
    beqz  a0, 1f
    li    t3, 2
    bgtu  a0, t3, sbi_invalid_param
    li    t3, FINISHER_RESET           # types 1 and 2: cold and warm reboot
    j     9f
1:  li    t3, FINISHER_PASS
    beqz  a1, 9f
    li    t4, 1                        # failure code 1 unless the reason carries one
    srli  t5, a1, 28
    li    t6, 0xE
    bne   t5, t6, 2f
    slli  t4, a1, 16
    srli  t4, t4, 16
2:  slli  t3, t4, 16
    li    t4, FINISHER_FAIL
    or    t3, t3, t4
9:  sw    t3, 0(t2)
3:  j     3b                           # the finisher stops the machine after this store

# ---- VLP: the virtlevels paravirtualization extension ------------------------------------
# Function IDs (docs/guests.md has the table):
#   0 csr_read(csr) -> value          1 csr_write(csr, v) -> old     2 csr_set(csr, bits) -> old
#   3 csr_clear(csr, bits) -> old     4 set_satp(v) (+ full TLB flush)
#   5 mmu_update(pairs_paddr, count) -> done   6 sret(frame_paddr)  (does not return)
#   7 tlb_flush(vaddr or -1)          8 wait (WFI)                    9 trap_info(buf_paddr)
# CSRs a PV kernel may name: the supervisor ones (sstatus sie stvec scounteren sscratch sepc
# scause stval sip satp). Pointers are physical addresses (teachos maps its memory 1:1).
sbi_vlp:
    li    t2, 0
    beq   a6, t2, sbi_vlp_csr_read
    li    t2, 1
    beq   a6, t2, sbi_vlp_csr_write
    li    t2, 2
    beq   a6, t2, sbi_vlp_csr_set
    li    t2, 3
    beq   a6, t2, sbi_vlp_csr_clear
    li    t2, 4
    beq   a6, t2, sbi_vlp_set_satp
    li    t2, 5
    beq   a6, t2, sbi_vlp_mmu_update
    li    t2, 6
    beq   a6, t2, sbi_vlp_sret
    li    t2, 7
    beq   a6, t2, sbi_vlp_tlb_flush
    li    t2, 8
    beq   a6, t2, sbi_vlp_wait
    li    t2, 9
    beq   a6, t2, sbi_vlp_trap_info
    j     sbi_not_supported

sbi_vlp_csr_read:
    call  sbi_csr_get
    j     sbi_return

sbi_vlp_csr_write:
    call  sbi_csr_get
    bnez  t0, sbi_return
    mv    t4, t1                       # the old value is returned, as csrrw gives it
    mv    t1, a1
    j     1f
sbi_vlp_csr_set:
    call  sbi_csr_get
    bnez  t0, sbi_return
    mv    t4, t1
    or    t1, t1, a1
    j     1f
sbi_vlp_csr_clear:
    call  sbi_csr_get
    bnez  t0, sbi_return
    mv    t4, t1
    not   t3, a1
    and   t1, t1, t3
1:  call  sbi_csr_put
    mv    t1, t4
    j     sbi_return

# sbi_csr_get(a0 = CSR number) -> t0 = error, t1 = value. The CSR is named by a number, but
# CSR instructions take it as an immediate, so each allowed CSR has its own instruction.
sbi_csr_get:
    li    t0, SBI_SUCCESS
    li    t2, 0x100
    bne   a0, t2, 1f
    csrr  t1, sstatus
    ret
1:  li    t2, 0x104
    bne   a0, t2, 1f
    csrr  t1, sie
    ret
1:  li    t2, 0x105
    bne   a0, t2, 1f
    csrr  t1, stvec
    ret
1:  li    t2, 0x106
    bne   a0, t2, 1f
    csrr  t1, scounteren
    ret
1:  li    t2, 0x140
    bne   a0, t2, 1f
    csrr  t1, sscratch
    ret
1:  li    t2, 0x141
    bne   a0, t2, 1f
    csrr  t1, sepc
    ret
1:  li    t2, 0x142
    bne   a0, t2, 1f
    csrr  t1, scause
    ret
1:  li    t2, 0x143
    bne   a0, t2, 1f
    csrr  t1, stval
    ret
1:  li    t2, 0x144
    bne   a0, t2, 1f
    csrr  t1, sip
    ret
1:  li    t2, 0x180
    bne   a0, t2, 1f
    csrr  t1, satp
    ret
1:  li    t0, SBI_ERR_INVALID_PARAM
    li    t1, 0
    ret

# sbi_csr_put(a0 = CSR number, t1 = value); the number was checked by sbi_csr_get.
sbi_csr_put:
    li    t2, 0x100
    bne   a0, t2, 1f
    csrw  sstatus, t1
    ret
1:  li    t2, 0x104
    bne   a0, t2, 1f
    csrw  sie, t1
    ret
1:  li    t2, 0x105
    bne   a0, t2, 1f
    csrw  stvec, t1
    ret
1:  li    t2, 0x106
    bne   a0, t2, 1f
    csrw  scounteren, t1
    ret
1:  li    t2, 0x140
    bne   a0, t2, 1f
    csrw  sscratch, t1
    ret
1:  li    t2, 0x141
    bne   a0, t2, 1f
    csrw  sepc, t1
    ret
1:  li    t2, 0x142
    bne   a0, t2, 1f
    csrw  scause, t1
    ret
1:  li    t2, 0x143
    bne   a0, t2, 1f
    csrw  stval, t1
    ret
1:  li    t2, 0x144
    bne   a0, t2, 1f
    csrw  sip, t1
    ret
1:  csrw  satp, t1
    ret

sbi_vlp_set_satp:
    csrw  satp, a0
    sfence.vma                         # Priv 4.2.1: a new address space needs a fence
    j     sbi_ok

# mmu_update(a0 = physical address of count (pte_paddr, value) pairs, a1 = count): batched PTE
# writes, as Xen's mmu_update. A PTE address must be word-aligned RAM above the firmware; the
# call stops at the first bad one with SBI_ERR_INVALID_ADDRESS. Returns a1 = pairs written.
# It does not flush the TLB: the kernel calls tlb_flush or set_satp when it needs to.
sbi_vlp_mmu_update:
    li    t1, 0
    mv    t2, a0
1:  bgeu  t1, a1, 2f
    lw    t3, 0(t2)
    lw    t4, 4(t2)
    andi  t5, t3, 3
    bnez  t5, 3f
    li    t5, KERNEL_BASE
    bltu  t3, t5, 3f
    li    t5, RAM_END
    bgeu  t3, t5, 3f
    sw    t4, 0(t3)
    addi  t2, t2, 8
    addi  t1, t1, 1
    j     1b
2:  li    t0, SBI_SUCCESS
    j     sbi_return
3:  li    t0, SBI_ERR_INVALID_ADDRESS
    j     sbi_return

sbi_vlp_tlb_flush:
    li    t2, -1
    beq   a0, t2, 1f
    sfence.vma a0, zero
    j     sbi_ok
1:  sfence.vma
    j     sbi_ok

# wait: WFI on the kernel's behalf. WFI resumes when an interrupt enabled in mie is pending,
# whatever the global enables (Priv 3.3.3), so a timer set by set_timer wakes it.
sbi_vlp_wait:
    wfi
    j     sbi_ok

# trap_info(a0 = physical address of 4 words): stores scause, sepc, stval and sstatus there,
# so a PV kernel learns about a trap with one hypercall instead of four csr_reads.
sbi_vlp_trap_info:
    csrr  t1, scause
    sw    t1, 0(a0)
    csrr  t1, sepc
    sw    t1, 4(a0)
    csrr  t1, stval
    sw    t1, 8(a0)
    csrr  t1, sstatus
    sw    t1, 12(a0)
    j     sbi_ok

# sret(a0 = physical address of a 32-word frame: word i holds x_i, word 0 unused): do what SRET
# does (Priv 3.3.2) with the kernel's sepc and sstatus - privilege <- SPP, SIE <- SPIE,
# SPIE <- 1, SPP <- U - then load x1..x31 from the frame and return there. Loading the
# registers is part of the call because the ecall itself needs a0, a6 and a7.
sbi_vlp_sret:
    csrr  t1, sepc
    csrw  mepc, t1
    csrr  t1, mstatus
    li    t2, MSTATUS_MPP | MSTATUS_MPRV
    not   t2, t2
    and   t2, t1, t2                   # MPP <- U, MPRV <- 0 (set again below if SPP was S)
    andi  t3, t1, MSTATUS_SPP
    beqz  t3, 1f
    li    t3, MSTATUS_MPP_S
    or    t2, t2, t3
1:  andi  t2, t2, ~(MSTATUS_SIE | MSTATUS_SPP)
    andi  t3, t1, MSTATUS_SPIE
    beqz  t3, 2f
    ori   t2, t2, MSTATUS_SIE
2:  ori   t2, t2, MSTATUS_SPIE
    csrw  mstatus, t2
    la    t1, sbi_stack_top            # the firmware stack is empty again after this call
    csrw  mscratch, t1
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
    mret

# ---- a trap the firmware does not expect: report it and fail the run ----------------------
sbi_unexpected:
    la    t4, sbi_msg_unexpected
    call  sbi_puts
    csrr  t4, mcause
    call  sbi_puthex
    la    t4, sbi_msg_mepc
    call  sbi_puts
    csrr  t4, mepc
    call  sbi_puthex
    la    t4, sbi_msg_mtval
    call  sbi_puts
    csrr  t4, mtval
    call  sbi_puthex
    li    t1, '\n'
    call  sbi_uart_putc_t1
    li    t2, FINISHER_BASE
    li    t3, (0xFE << 16) | FINISHER_FAIL
    sw    t3, 0(t2)
1:  j     1b

# sbi_puts(t4 = NUL-terminated string); clobbers t1-t4.
sbi_puts:
    mv    t5, ra
1:  lbu   t1, 0(t4)
    beqz  t1, 2f
    call  sbi_uart_putc_t1
    addi  t4, t4, 1
    j     1b
2:  mv    ra, t5
    ret

# sbi_puthex(t4): "0x" and eight hex digits; clobbers t1-t6.
sbi_puthex:
    mv    t5, ra
    li    t1, '0'
    call  sbi_uart_putc_t1
    li    t1, 'x'
    call  sbi_uart_putc_t1
    li    t6, 28
1:  srl   t1, t4, t6
    andi  t1, t1, 15
    addi  t1, t1, '0'
    li    t2, '9'
    bleu  t1, t2, 2f
    addi  t1, t1, 'a' - '9' - 1
2:  call  sbi_uart_putc_t1
    addi  t6, t6, -4
    bgez  t6, 1b
    mv    ra, t5
    ret

    .rodata
sbi_msg_unexpected:
    .asciz "sbi: unexpected trap, mcause "
sbi_msg_mepc:
    .asciz " mepc "
sbi_msg_mtval:
    .asciz " mtval "

    .bss
    .balign 16
sbi_stack:
    .space 1024
sbi_stack_top:
