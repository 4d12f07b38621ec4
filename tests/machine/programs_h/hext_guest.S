# A VS-mode guest under an HS-mode mini hypervisor (H extension, Priv chapter 8).
#
# M-mode delegates the guest's traps to HS and drops to HS. The hypervisor builds an Sv32x4
# G-stage for guest physical 0x0000-0x7FFF (the guest image) and leaves page 8 unmapped, then
# enters the guest with SRET (hstatus.SPV=1). The guest (vsatp Bare, position-independent):
#   - stores to guest physical 0x8000: a store guest-page fault; the hypervisor maps the page
#     on demand from htval, fences it (HFENCE.GVMA) and retries the store;
#   - asks (ecall, a7=1) for a virtual timer interrupt: the hypervisor sets hvip.VSTIP, which
#     hideleg delegates, so it reaches the guest's own handler as a supervisor timer interrupt;
#   - runs WFI with hstatus.VTW=1: a virtual-instruction exception the hypervisor skips;
#   - exits with ecall a7=2, a0 = 42 + interrupts seen; the hypervisor checks it and writes tohost.
# s8 counts virtual-instruction exits and s9 guest-page faults in the hypervisor.
    .equ VMID, 3
    .globl _start
_start:
    li t0, (1 << 10) | (1 << 20) | (1 << 21) | (1 << 22) | (1 << 23)
    csrw medeleg, t0
    la t0, hs_trap
    csrw stvec, t0
    li t0, 1 << 11                # MPP = S, MPV = 0: MRET enters HS-mode
    csrs mstatus, t0
    la t0, hs_main
    csrw mepc, t0
    mret

hs_main:
    la s0, groot
    la s1, gl0
    srli t0, s1, 12
    slli t0, t0, 10
    ori t0, t0, 1                 # root[0] -> level-0 table
    sw t0, 0(s0)
    la t1, guest_mem
    li t2, 8                      # guest pages 0-7: U R W X (A/D set by hardware)
    mv t3, s1
1:  srli t4, t1, 12
    slli t4, t4, 10
    ori t4, t4, 0x1F
    sw t4, 0(t3)
    li t5, 4096
    add t1, t1, t5
    addi t3, t3, 4
    addi t2, t2, -1
    bnez t2, 1b
    srli t0, s0, 12
    li t1, (1 << 31) | (VMID << 22)
    or t0, t0, t1
    csrw hgatp, t0
    hfence.gvma zero, zero
    li t0, 1 << 6                 # VSTIP is the guest's
    csrw hideleg, t0
    li t0, (1 << 7) | (1 << 8) | (1 << 21)   # SPV, SPVP, VTW
    csrw hstatus, t0
    li t0, 1 << 8                 # SPP = S
    csrs sstatus, t0
    csrw sepc, zero               # the guest starts at guest physical 0
    sret

.align 4
# The guest's registers are not saved: the handler uses only t3-t6 and s1-s4, which the guest leaves alone.
hs_trap:
    csrr t3, scause
    li t4, 10
    beq t3, t4, hcall
    li t4, 23
    beq t3, t4, gpf
    li t4, 21
    beq t3, t4, gpf
    li t4, 22
    beq t3, t4, vinst
    li a0, 99
    j finish
hcall:
    csrr t3, sepc
    addi t3, t3, 4
    csrw sepc, t3
    li t4, 1
    beq a7, t4, inject
    li t4, 3
    beq a7, t4, clear
    li t4, 43                     # a7 = 2: exit; pass when the guest's result is 43
    sub a0, a0, t4
    j finish
inject:
    li t3, 1 << 6
    csrs hvip, t3
    sret
clear:
    li t3, 1 << 6
    csrc hvip, t3
    sret
gpf:
    addi s9, s9, 1
    csrr s2, htval                # guest physical address >> 2
    srli t4, s2, 10               # guest page number
    la t5, guest_mem
    slli t6, t4, 12
    add t5, t5, t6
    srli t5, t5, 12
    slli t5, t5, 10
    ori t5, t5, 0x1F
    la t6, gl0
    slli t3, t4, 2
    add t6, t6, t3
    sw t5, 0(t6)
    hfence.gvma s2, zero          # rs1 = guest physical address >> 2
    sret                          # retry the access
vinst:
    addi s8, s8, 1
    csrr t3, sepc
    addi t3, t3, 4
    csrw sepc, t3
    sret
finish:
    la t3, tohost
    slli a0, a0, 1
    ori a0, a0, 1
    sw a0, 0(t3)
    sw zero, 4(t3)
2:  j 2b

# ---- the guest: position independent, runs at guest physical 0 ----
.align 12
guest_mem:
    la t0, g_trap
    csrw stvec, t0                # vstvec
    li t0, 1 << 5
    csrs sie, t0                  # vsie.STIE (hie.VSTIE)
    csrsi sstatus, 2              # vsstatus.SIE
    li t1, 0x8000
    li t2, 42
    sw t2, 0(t1)                  # store guest-page fault, then retried
    lw a3, 0(t1)
    li a7, 1
    ecall                         # please inject a timer interrupt
3:  beqz s5, 3b
    wfi                           # VTW=1: virtual instruction
    add a0, a3, s5
    li a7, 2
    ecall
4:  j 4b
.align 4
g_trap:
    csrr t0, scause               # vscause: 0x80000005
    li t1, 0x80000005
    bne t0, t1, 5f
    addi s5, s5, 1
5:  li a7, 3
    ecall                         # please clear it
    sret
.align 12
    .space 0x9000

.data
.align 6
tohost: .word 0, 0
fromhost: .word 0, 0

.bss
.align 14
groot: .space 16384
gl0: .space 4096
