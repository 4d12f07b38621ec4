"""A hardware-assisted, native (Type 1) VM: the guest kernel runs in VS-mode, this monitor in M-mode.

Design (docs: issue 5 items 2 "hardware-assisted" and 3 "native"):

- The monitor owns the physical machine. Its trap handler is a native entry at ``mtvec``: every
  exit is an M-mode trap (we do not run an HS-mode kernel, so nothing is gained by stopping in
  HS). Traps the guest handles itself (its user ecalls, page faults, illegal instructions, ...)
  are delegated M -> HS by ``medeleg`` and HS -> VS by ``hedeleg`` (Priv 8.6.2), and the VS
  timer interrupt by ``hideleg``; ecall from VS (SBI), guest-page faults (MMIO), virtual
  instructions and the machine timer stay in M: those are the exits.
- Guest RAM is a block of host RAM mapped by a G-stage Sv32x4 table (``hgatp``, Priv 8.5.1) at
  guest-physical ``0x8000_0000`` with 4 MiB megapages. Nothing else is mapped, so any other
  guest-physical access is a guest-page fault: the UART at ``0x1000_0000`` is emulated; anything
  else is rejected (reads as 0, writes dropped) and recorded.
- SBI (v2.0): base, TIME (set_timer through the CLINT's mtimecmp; the MTI exit injects
  ``hvip.VSTIP``), legacy and DBCN console, SRST (ends the run with the finisher's code rules).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import attrs

from virtlevels.guests.layout import KERNEL_BASE
from virtlevels.machine.image import Image
from virtlevels.machine.isa.encodings import H_ENCODINGS
from virtlevels.machine.machine import PhysicalMachine, RunResult
from virtlevels.machine.memmap import NATIVE_BASE, UART_BASE

if TYPE_CHECKING:
    from virtlevels.machine.hart import Hart

M32 = 0xFFFFFFFF
MIB = 1 << 20

# CSR numbers (Priv 2.2 table 2.5, 8.2).
MSTATUS, MEDELEG, MIDELEG, MIE, MTVEC, MCOUNTEREN = 0x300, 0x302, 0x303, 0x304, 0x305, 0x306
MSTATUSH, MEPC, MCAUSE, MTVAL, MIP, MTVAL2 = 0x310, 0x341, 0x342, 0x343, 0x344, 0x34B
HSTATUS, HEDELEG, HIDELEG, HCOUNTEREN, HVIP, HGATP = 0x600, 0x602, 0x603, 0x606, 0x645, 0x680

MSTATUS_MPP_S = 1 << 11
MSTATUS_MPP_MASK = 3 << 11
MSTATUSH_MPV = 1 << 7  # Priv 8.4.1
HSTATUS_SPVP = 1 << 8
MIP_MTIP = 1 << 7
HVIP_VSTIP = 1 << 6
# Exceptions the guest kernel handles itself (as the SBI firmware delegates them, Priv 3.1.8):
# misaligned and access faults, illegal instruction, breakpoint (0-7), ecall from U 8, page faults.
GUEST_EXCEPTIONS = sum(1 << c for c in (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 15))

CAUSE_ECALL_VS, CAUSE_VIRTUAL_INSN = 10, 22
CAUSE_LOAD_GPF, CAUSE_STORE_GPF, CAUSE_FETCH_GPF = 21, 23, 20
IRQ_MTI = 7

HLVX_WU = next(e for e in H_ENCODINGS if e.name == "hlvx.wu").match
T0 = 5

# SBI 2.0 extension IDs.
EID_BASE, EID_TIME, EID_DBCN, EID_SRST = 0x10, 0x54494D45, 0x4442434E, 0x53525354
EID_PUTCHAR, EID_GETCHAR, EID_SHUTDOWN = 0x01, 0x02, 0x08
SBI_SUCCESS, SBI_ERR_FAILED, SBI_ERR_NOT_SUPPORTED, SBI_ERR_INVALID_PARAM = 0, -1, -2, -3

EXIT_REASONS = ("sbi_call", "mmio", "guest_page_fault", "timer", "virtual_instruction")

UART_SIZE = 0x100
UART_LSR = 5
UART_LSR_IDLE = 0x60  # THRE | TEMT: the emulated transmitter is always ready


@attrs.frozen
class VMResult:
    """What a VM run produced, comparable with a native :class:`RunResult`."""

    uart: bytes
    status: str
    exit_code: int | None
    exits: dict[str, int]
    guest_instructions: int
    rejected: tuple[tuple[str, int], ...]  # (access, guest-physical address) the monitor refused


@attrs.define
class HwAssistVM:
    """One single-vCPU VM on ``machine`` (which must have the H extension).

    ``host_base`` is where the guest's ``ram_size`` bytes live in host RAM (4 MiB aligned, for
    the G-stage megapages); the G-stage root table (16 KiB) sits at ``gstage_root``.
    """

    machine: PhysicalMachine
    ram_size: int = 16 * MIB
    host_base: int = 0x8400_0000
    gstage_root: int = 0x8000_0000
    guest_base: int = 0x8000_0000
    entry_vector: int = NATIVE_BASE + 0x100
    exits: Counter[str] = attrs.field(factory=Counter, init=False)
    uart_out: bytearray = attrs.field(factory=bytearray, init=False)
    uart_regs: bytearray = attrs.field(factory=lambda: bytearray(8), init=False)
    rejected: list[tuple[str, int]] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        if not self.machine.hypervisor:
            raise ValueError("a hardware-assisted VM needs PhysicalMachine(hypervisor=True)")
        if self.host_base % (4 * MIB) or self.ram_size % (4 * MIB):
            raise ValueError("guest RAM must be 4 MiB aligned and sized (G-stage megapages)")

    # -- set-up ---------------------------------------------------------------------------------
    def _build_gstage(self) -> None:
        # Priv 8.5.1: the Sv32x4 root has 4096 entries indexed by GPA[33:22]; level-1 leaves map
        # 4 MiB. G-stage leaves must have U (Priv 8.5.2); A and D preset so no walk writes them.
        m = self.machine
        m.phys_write(self.gstage_root, bytes(16 * 1024))
        flags = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x40 | 0x80  # V R W X U A D
        for off in range(0, self.ram_size, 4 * MIB):
            idx = (self.guest_base + off) >> 22
            pte = ((self.host_base + off) >> 12) << 10 | flags
            m.phys_write(self.gstage_root + 4 * idx, pte.to_bytes(4, "little"))

    def guest_write(self, gpa: int, data: bytes) -> None:
        """Copy into guest-physical memory (the monitor's view of its allocation)."""
        off = gpa - self.guest_base
        if off < 0 or off + len(data) > self.ram_size:
            raise ValueError(f"guest-physical 0x{gpa:08x}+{len(data)} is outside the VM's RAM")
        self.machine.phys_write(self.host_base + off, data)

    def guest_read(self, gpa: int, n: int) -> bytes:
        off = gpa - self.guest_base
        if off < 0 or off + n > self.ram_size:
            raise ValueError(f"guest-physical 0x{gpa:08x}+{n} is outside the VM's RAM")
        return self.machine.phys_read(self.host_base + off, n)

    def load_kernel(self, image: Image, entry: int = KERNEL_BASE) -> None:
        """Load the S-mode part of ``image`` (segments at or above ``entry``; the SBI firmware's
        are left out: this monitor is the SBI) and make the vCPU enter it in VS-mode."""
        self._build_gstage()
        self.guest_write(self.guest_base, bytes(self.ram_size))
        for seg in image.segments:
            if seg.addr < entry:
                continue
            self.guest_write(seg.addr, seg.data + bytes(max(0, seg.memsize - len(seg.data))))
        hart = self.machine.harts[0]
        m = self.machine
        m.add_native_entry(self.entry_vector, self._trap)
        hart.pc = self.entry_vector  # the monitor's boot code "runs" in the native region
        hart.csr_write(MTVEC, self.entry_vector)
        hart.csr_write(MEDELEG, GUEST_EXCEPTIONS)
        hart.csr_write(HEDELEG, GUEST_EXCEPTIONS)
        hart.csr_write(HIDELEG, 1 << 2 | 1 << 6 | 1 << 10)  # VS interrupts go to the guest
        hart.csr_write(MCOUNTEREN, 7)
        hart.csr_write(HCOUNTEREN, 7)  # rdtime/rdcycle in VS without exits (Priv 8.2.5)
        hart.csr_write(HGATP, 1 << 31 | 1 << 22 | self.gstage_root >> 12)  # Sv32x4, VMID 1
        hart.csr_write(HSTATUS, HSTATUS_SPVP)  # HLVX from M reads as the guest supervisor
        hart.csr_clear(MSTATUS, MSTATUS_MPP_MASK)
        hart.csr_set(MSTATUS, MSTATUS_MPP_S)
        hart.csr_set(MSTATUSH, MSTATUSH_MPV)  # mret enters VS (Priv 8.6.4)
        hart.csr_write(MEPC, entry)
        hart.x[10], hart.x[11] = 0, 0  # a0 = hartid, a1 = no device tree (as the firmware)
        hart.exec_mret()

    # -- running --------------------------------------------------------------------------------
    def run(self, max_instructions: int | None = None) -> VMResult:
        r: RunResult = self.machine.run(max_instructions)
        hart = self.machine.harts[0]
        guest = sum(sum(hart.counts_by_priv.get(k, ())) for k in (4, 5))
        return VMResult(
            uart=bytes(self.uart_out),
            status=r.status,
            exit_code=r.exit_code,
            exits={k: self.exits[k] for k in EXIT_REASONS},
            guest_instructions=guest,
            rejected=tuple(self.rejected),
        )

    # -- the exit handler -----------------------------------------------------------------------
    def _trap(self, hart: Hart) -> None:
        cause = hart.csr_read(MCAUSE)
        if cause & 0x8000_0000:
            if cause & 0x7FFF_FFFF == IRQ_MTI:
                self.exits["timer"] += 1
                # The guest's deadline passed: stop the machine timer, raise the VS timer line.
                hart.csr_clear(MIE, MIP_MTIP)
                hart.csr_set(HVIP, HVIP_VSTIP)
            hart.exec_mret()
            return
        epc = hart.csr_read(MEPC)
        if cause == CAUSE_ECALL_VS:
            self.exits["sbi_call"] += 1
            self._sbi(hart)
            if self.machine.exit_requested:
                return  # shut down: the run loop stops after this instruction
            hart.csr_write(MEPC, epc + 4)
        elif cause in (CAUSE_LOAD_GPF, CAUSE_STORE_GPF):
            self.exits["guest_page_fault"] += 1
            gpa = (hart.csr_read(MTVAL2) << 2 | hart.csr_read(MTVAL) & 3) & M32
            self._mmio(hart, epc, gpa)
            hart.csr_write(MEPC, epc + 4)
        elif cause == CAUSE_VIRTUAL_INSN:
            self.exits["virtual_instruction"] += 1
            self.machine.request_exit(0xFF)  # nothing teachos does needs emulating: a bug
            return
        else:  # a fetch guest-page fault or anything else the guest cannot recover from
            self.exits["guest_page_fault" if cause == CAUSE_FETCH_GPF else "other"] += 1
            self.machine.request_exit(0xFE)
            return
        hart.exec_mret()

    def _fetch(self, hart: Hart, epc: int) -> int:
        # htinst is 0 on this machine (Priv 8.6.3), so read the instruction with HLVX.WU: a guest
        # virtual fetch-permission read through both stages, as the guest's supervisor.
        x = hart.x
        saved = x[T0]
        x[T0] = epc
        try:
            hart.execute(HLVX_WU | T0 << 15 | T0 << 7)
            return int(x[T0])
        finally:
            x[T0] = saved

    def _mmio(self, hart: Hart, epc: int, gpa: int) -> None:
        word = self._fetch(hart, epc)
        opcode, funct3 = word & 0x7F, word >> 12 & 7
        width = 1 << (funct3 & 3)
        x = hart.x
        self.exits["mmio"] += 1
        in_uart = UART_BASE <= gpa < UART_BASE + UART_SIZE
        if opcode == 0x23:  # Unpriv 2.6: store
            value = x[word >> 20 & 31] & ((1 << 8 * width) - 1)
            if in_uart:
                self._uart_write(gpa - UART_BASE, value)
            else:
                self.rejected.append(("store", gpa))
        elif opcode == 0x03:  # load
            value = self._uart_read(gpa - UART_BASE) if in_uart else 0
            if not in_uart:
                self.rejected.append(("load", gpa))
            if not funct3 & 4 and value >> (8 * width - 1) & 1:  # LB/LH/LW sign-extend
                value |= M32 ^ ((1 << 8 * width) - 1)
            rd = word >> 7 & 31
            if rd:
                x[rd] = value & M32
        else:
            self.rejected.append(("insn", gpa))

    def _uart_write(self, reg: int, value: int) -> None:
        # A 16550 as teachos drives it: THR (0) takes bytes (when DLAB is clear); other
        # registers just hold what was written.
        if reg == 0 and not self.uart_regs[3] & 0x80:
            self.uart_out.append(value & 0xFF)
        elif reg < 8:
            self.uart_regs[reg] = value & 0xFF

    def _uart_read(self, reg: int) -> int:
        if reg == UART_LSR:
            return UART_LSR_IDLE
        return self.uart_regs[reg] if 0 < reg < 8 else 0

    def _sbi(self, hart: Hart) -> None:
        x = hart.x
        eid, fid = x[17], x[16]
        a0, a1 = x[10], x[11]
        err, val = SBI_SUCCESS, 0
        if eid == EID_BASE:
            val = {0: 0x0200_0000, 1: 0x564C, 2: 1, 4: 0, 5: 0, 6: 0}.get(fid, -1)
            if fid == 3:
                val = int(a0 in (EID_BASE, EID_TIME, EID_DBCN, EID_SRST, EID_PUTCHAR, EID_GETCHAR,
                                 EID_SHUTDOWN))
            elif val == -1:
                err, val = SBI_ERR_NOT_SUPPORTED, 0
        elif eid == EID_TIME and fid == 0:
            # SBI 2.0 ch. 6: the deadline is in mtime ticks; the guest's time is mtime (htimedelta 0).
            clint = self.machine.clint
            clint.write(0x4000 + 4, 4, M32)  # Priv 3.2.1: high word to all-ones first
            clint.write(0x4000, 4, a0)
            clint.write(0x4000 + 4, 4, a1)
            hart.csr_clear(HVIP, HVIP_VSTIP)
            hart.csr_set(MIE, MIP_MTIP)
        elif eid == EID_PUTCHAR:
            self.uart_out.append(a0 & 0xFF)
            x[10] = 0
            return
        elif eid == EID_GETCHAR:
            x[10] = M32
            return
        elif eid == EID_SHUTDOWN:
            self.machine.request_exit(0)
            return
        elif eid == EID_DBCN and fid in (0, 2):
            if fid == 2:
                self.uart_out.append(a0 & 0xFF)
            else:
                try:
                    self.uart_out += self.guest_read(a1 | x[12] << 32, a0)
                    val = a0
                except ValueError:
                    err = -5  # SBI_ERR_INVALID_ADDRESS: outside the guest's RAM
        elif eid == EID_DBCN and fid == 1:
            val = 0
        elif eid == EID_SRST and fid == 0:
            if a0 == 0:  # shutdown, with the firmware's reason -> exit code rules
                if a1 == 0:
                    code = 0
                elif a1 & 0xF000_0000 == 0xE000_0000:
                    code = a1 & 0xFFFF
                else:
                    code = 1
                self.machine.request_exit(code)
                return
            self.machine.request_exit(0)
            return
        else:
            err = SBI_ERR_NOT_SUPPORTED
        x[10], x[11] = err & M32, val & M32
