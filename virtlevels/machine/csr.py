"""Control and status registers: numbers and names (Privileged ISA 20211203, 2.2), WARL behaviour.

:class:`CsrFile` holds one hart's CSR state and a dispatch table from CSR number to a
(read, write) pair, so an extension adds registers with :meth:`CsrFile.define` without touching
this module. The H extension (issue 5) will add ``hstatus``, the ``vs*`` registers and the V bit
this way, plus its own access rule in :meth:`CsrFile.check_access`, which is a separate method
for that reason.

Access rules (Priv 2.1 "CSR Address Mapping Conventions"): bits [9:8] of the number give the
lowest privilege that may access it; bits [11:10] == 0b11 mark it read-only. An access that
breaks either rule, or names a CSR that does not exist, is an illegal-instruction exception.
Counters (Zicntr) are further gated by mcounteren/scounteren (Priv 3.1.11), and satp by
mstatus.TVM (Priv 3.1.6.5).

The H extension (Priv chapter 8) is added by :meth:`CsrFile.enable_hypervisor`: the hypervisor
and VS CSRs, misa.H, mstatush.MPV/GVA, mtval2/mtinst, and the VS-level interrupt bits; its
access rules (which accesses are virtual-instruction exceptions, Priv 8.6.1) are
:meth:`CsrFile.check_access_h`. The VS-level pending bits of hvip are kept in ``mip_sw`` so the
interrupt check reads one word; GEILEN is 0 (no guest external interrupt lines: hgeip, hgeie,
hstatus.VGEIN and the SGEI bits read as zero).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from virtlevels.machine.isa.csr_names import CSR_NAMES as _SHARED_CSR_NAMES
from virtlevels.machine.isa.csr_names import CSRS as _SHARED_CSRS

M32 = 0xFFFFFFFF
U_MODE, S_MODE, M_MODE = 0, 1, 3

# mstatus fields (Priv 3.1.6, RV32 layout).
MSTATUS_SIE = 1 << 1
MSTATUS_MIE = 1 << 3
MSTATUS_SPIE = 1 << 5
MSTATUS_UBE = 1 << 6
MSTATUS_MPIE = 1 << 7
MSTATUS_SPP = 1 << 8
MSTATUS_MPP_SHIFT = 11
MSTATUS_MPP = 3 << MSTATUS_MPP_SHIFT
MSTATUS_MPRV = 1 << 17
MSTATUS_SUM = 1 << 18
MSTATUS_MXR = 1 << 19
MSTATUS_TVM = 1 << 20
MSTATUS_TW = 1 << 21
MSTATUS_TSR = 1 << 22
# Writable bits of mstatus. FS, VS, XS and SD stay zero: no F, V or custom state (Priv 3.1.6.6).
MSTATUS_WMASK = (
    MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP | MSTATUS_MPP
    | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR
)  # fmt: skip
# sstatus is a restricted view of mstatus (Priv 4.1.1).
SSTATUS_MASK = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_UBE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR | (1 << 31)
SSTATUS_WMASK = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_SUM | MSTATUS_MXR
# Bits that change how addresses are translated: writing them invalidates the hart's fast paths.
MSTATUS_XLATE = MSTATUS_MPRV | MSTATUS_MPP | MSTATUS_SUM | MSTATUS_MXR

# Interrupt bits in mip/mie (Priv 3.1.9).
SSIP, MSIP, STIP, MTIP, SEIP, MEIP = 1 << 1, 1 << 3, 1 << 5, 1 << 7, 1 << 9, 1 << 11
MIE_MASK = SSIP | MSIP | STIP | MTIP | SEIP | MEIP
MIP_SW_MASK = SSIP | STIP | SEIP  # writable by M-mode software; the rest are driven by devices
MIDELEG_MASK = SSIP | STIP | SEIP  # Priv 3.1.8: M-level interrupts are not delegatable here
# Priv 3.1.8: medeleg[11] (ecall from M) is read-only zero; 10 and 14 are reserved.
MEDELEG_MASK = sum(1 << c for c in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 15))

# misa (Priv 3.1.1): MXL=1 (RV32), extensions A, I, M, S, U.
MISA = (1 << 30) | sum(1 << (ord(c) - ord("A")) for c in "AIMSU")

# Sstc (RISC-V "Sstc" extension v1.0): menvcfg.STCE is bit 63, i.e. bit 31 of menvcfgh on RV32;
# mcounteren.TM (bit 1) also gates S-mode access to stimecmp.
MENVCFGH_STCE = 1 << 31
COUNTEREN_TM = 1 << 1
M64 = (1 << 64) - 1

SATP_MODE = 1 << 31
SATP_ASID_SHIFT = 22
SATP_ASID_MASK = 0x1FF
SATP_PPN_MASK = 0x3FFFFF

# -- H extension (Priv chapter 8) -----------------------------------------------------------------
MISA_H = 1 << 7
# hstatus (Priv 8.2.1, RV32): VSBE is 0 (little-endian only), VGEIN 0 (GEILEN = 0), no VSXL on RV32.
HSTATUS_GVA = 1 << 6
HSTATUS_SPV = 1 << 7
HSTATUS_SPVP = 1 << 8
HSTATUS_HU = 1 << 9
HSTATUS_VTVM = 1 << 20
HSTATUS_VTW = 1 << 21
HSTATUS_VTSR = 1 << 22
HSTATUS_WMASK = (
    HSTATUS_GVA | HSTATUS_SPV | HSTATUS_SPVP | HSTATUS_HU | HSTATUS_VTVM | HSTATUS_VTW | HSTATUS_VTSR
)
# mstatush (Priv 8.4, mstatus with H): MPV bit 39 and GVA bit 38 of mstatus, i.e. bits 7 and 6 here.
MSTATUSH_GVA = 1 << 6
MSTATUSH_MPV = 1 << 7
# VS-level interrupts (Priv 8.2.3): VSSIP, VSTIP, VSEIP; SGEIP is bit 12 (read-only zero: GEILEN = 0).
VSSIP, VSTIP, VSEIP, SGEIP = 1 << 2, 1 << 6, 1 << 10, 1 << 12
VS_INTS = VSSIP | VSTIP | VSEIP
# Priv 8.2.2: hedeleg bits 9-11 and 20-23 are read-only zero (those traps never reach VS-mode).
HEDELEG_MASK = sum(1 << c for c in (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 15))
# Priv 8.4 (medeleg with H): ecall from VS, the guest-page faults and virtual instruction delegate.
MEDELEG_H_MASK = MEDELEG_MASK | sum(1 << c for c in (10, 20, 21, 22, 23))
# hgatp (Priv 8.2, RV32): MODE bit 31 (0 Bare, 1 Sv32x4), VMID bits 28:22 (VMIDLEN = 7), PPN 21:0
# with PPN[1:0] read-only zero (the Sv32x4 root table is 16 KiB and 16 KiB aligned).
HGATP_VMID_SHIFT = 22
HGATP_VMID_MASK = 0x7F
HGATP_WMASK = SATP_MODE | (HGATP_VMID_MASK << HGATP_VMID_SHIFT) | (SATP_PPN_MASK & ~3)
# Priv 8.2: with V=1 these supervisor CSR numbers are the VS registers (sstatus -> vsstatus ...).
VS_SWAP = {0x100: 0x200, 0x104: 0x204, 0x105: 0x205, 0x140: 0x240, 0x141: 0x241, 0x142: 0x242,
           0x143: 0x243, 0x144: 0x244, 0x180: 0x280}  # fmt: skip
ILLEGAL, VIRTUAL = 2, 22  # exception causes check_access_h returns

# -- CSR numbers (Priv 2.2, tables 2.2-2.6) ----------------------------------------------------
# One name table for the machine, the assembler and the disassembler. Copies: define() adds to them.
CSR_NAMES: dict[int, str] = dict(_SHARED_CSR_NAMES)
CSR_BY_NAME: dict[str, int] = dict(_SHARED_CSRS)

# The user-level counters (innocuous for Popek-Goldberg when enabled): cycle, time, instret, hpm*.
USER_COUNTERS = frozenset(range(0xC00, 0xC20)) | frozenset(range(0xC80, 0xCA0))

Reader = Callable[[], int]
Writer = Callable[[int], None]


def csr_name(num: int) -> str:
    return CSR_NAMES.get(num, f"0x{num:03x}")


@attrs.define(eq=False)
class CsrFile:
    """One hart's CSRs. ``hart`` provides the counters and is told when translation or interrupts change.

    The hart object must offer ``read_cycle()``, ``read_instret()``, ``read_time()``,
    ``write_cycle(v)``, ``write_instret(v)`` and ``context_changed()``.
    """

    hart: Any
    hartid: int = 0
    mstatus: int = 0
    medeleg: int = 0
    mideleg: int = 0
    mie: int = 0
    mip_sw: int = 0  # software-writable pending bits (SSIP, STIP, SEIP)
    mip_hw: int = 0  # device-driven pending bits (MSIP, MTIP, MEIP, and SEIP from the PLIC)
    mtvec: int = 0
    stvec: int = 0
    mscratch: int = 0
    sscratch: int = 0
    mepc: int = 0
    sepc: int = 0
    mcause: int = 0
    scause: int = 0
    mtval: int = 0
    stval: int = 0
    mcounteren: int = 0
    scounteren: int = 0
    satp: int = 0
    menvcfgh: int = 0  # only STCE is implemented (Sstc); the other menvcfg fields read as zero
    stimecmp: int = M64  # Sstc; 64-bit. Reset value unspecified: "never"
    # H extension state (Priv chapter 8); meaningful only after enable_hypervisor().
    hext: bool = False
    mstatush: int = 0  # MPV and GVA
    mtval2: int = 0
    mtinst: int = 0
    hstatus: int = 0
    hedeleg: int = 0
    hideleg: int = 0
    hcounteren: int = 0
    htimedelta: int = 0  # 64-bit
    htval: int = 0
    htinst: int = 0
    hgatp: int = 0
    vsstatus: int = 0
    vstvec: int = 0
    vsscratch: int = 0
    vsepc: int = 0
    vscause: int = 0
    vstval: int = 0
    vsatp: int = 0
    pmpcfg: list[int] = attrs.field(factory=lambda: [0] * 4)
    pmpaddr: list[int] = attrs.field(factory=lambda: [0] * 16)
    table: dict[int, tuple[Reader, Writer | None]] = attrs.field(factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        self._define_standard()

    # -- the table ---------------------------------------------------------------------------
    def define(self, num: int, read: Reader, write: Writer | None = None, name: str | None = None) -> None:
        """Add or replace CSR ``num``; ``write=None`` ignores writes (the address bits decide legality)."""
        self.table[num] = (read, write)
        if name is not None:
            CSR_NAMES.setdefault(num, name)
            CSR_BY_NAME.setdefault(name, num)

    def _field(self, attr: str, mask: int = M32) -> tuple[Reader, Writer]:
        def read() -> int:
            return int(getattr(self, attr))

        def write(v: int) -> None:
            setattr(self, attr, v & mask)

        return read, write

    def _element(self, attr: str, n: int) -> tuple[Reader, Writer]:
        def read() -> int:
            return int(getattr(self, attr)[n])

        def write(v: int) -> None:
            getattr(self, attr)[n] = v & M32

        return read, write

    def _define_standard(self) -> None:
        d = self.define
        h = self.hart
        zero: Reader = lambda: 0  # noqa: E731
        ignore: Writer = lambda v: None  # noqa: E731

        # Machine information registers: read-only (non-commercial: vendor/arch/impl 0, Priv 3.1.2-3.1.4).
        d(0xF11, zero)
        d(0xF12, zero)
        d(0xF13, zero)
        d(0xF14, lambda: self.hartid)
        d(0xF15, zero)
        # Trap setup
        d(0x300, lambda: self.mstatus, self._write_mstatus)
        d(0x301, lambda: MISA, ignore)  # Priv 3.1.1: misa is WARL; we do not allow disabling extensions
        d(0x302, *self._field("medeleg", MEDELEG_MASK))
        d(0x303, *self._field("mideleg", MIDELEG_MASK))
        d(0x304, *self._field("mie", MIE_MASK))
        d(0x305, lambda: self.mtvec, lambda v: self._write_tvec("mtvec", v))
        d(0x306, *self._field("mcounteren"))
        d(0x310, zero, ignore)  # mstatush: MBE/SBE are 0 (little-endian only)
        d(0x30A, zero, ignore)  # menvcfg: no optional features
        d(0x31A, lambda: self.menvcfgh, self._write_menvcfgh)
        d(0x320, zero, ignore)  # mcountinhibit: counters always count (Priv 3.1.13 allows hardwiring)
        # Trap handling
        d(0x340, *self._field("mscratch"))
        d(0x341, lambda: self.mepc, lambda v: setattr(self, "mepc", v & ~3 & M32))  # Priv 3.1.14, IALIGN=32
        d(0x342, *self._field("mcause"))
        d(0x343, *self._field("mtval"))
        d(0x344, lambda: self.mip_sw | self.mip_hw, self._write_mip)
        # PMP: WARL registers accepted and read back, not enforced (Priv 3.7.1).
        for n in range(4):
            d(0x3A0 + n, *self._element("pmpcfg", n))
        for n in range(16):
            d(0x3B0 + n, *self._element("pmpaddr", n))
        # Counters (Zicntr; Priv 3.1.10): the machine copies are writable.
        d(0xB00, lambda: h.read_cycle() & M32, lambda v: h.write_cycle((h.read_cycle() & ~M32) | v))
        d(0xB80, lambda: h.read_cycle() >> 32, lambda v: h.write_cycle((h.read_cycle() & M32) | (v << 32)))
        d(0xB02, lambda: h.read_instret() & M32, lambda v: h.write_instret((h.read_instret() & ~M32) | v))
        d(0xB82, lambda: h.read_instret() >> 32,
          lambda v: h.write_instret((h.read_instret() & M32) | (v << 32)))
        d(0xC00, lambda: h.read_cycle() & M32)
        d(0xC80, lambda: (h.read_cycle() >> 32) & M32)
        d(0xC01, lambda: h.read_time() & M32)
        d(0xC81, lambda: (h.read_time() >> 32) & M32)
        d(0xC02, lambda: h.read_instret() & M32)
        d(0xC82, lambda: (h.read_instret() >> 32) & M32)
        for n in range(3, 32):  # hpm counters and events hardwired to zero (Priv 3.1.10 allows it)
            d(0xC00 + n, zero)
            d(0xC80 + n, zero)
            d(0xB00 + n, zero, ignore)
            d(0xB80 + n, zero, ignore)
            d(0x320 + n, zero, ignore)
        # Supervisor
        d(0x100, lambda: self.mstatus & SSTATUS_MASK, self._write_sstatus)
        d(0x104, lambda: self.mie & self.mideleg, self._write_sie)
        d(0x105, lambda: self.stvec, lambda v: self._write_tvec("stvec", v))
        d(0x106, *self._field("scounteren"))
        d(0x10A, zero, ignore)  # senvcfg
        d(0x140, *self._field("sscratch"))
        d(0x141, lambda: self.sepc, lambda v: setattr(self, "sepc", v & ~3 & M32))
        d(0x142, *self._field("scause"))
        d(0x143, *self._field("stval"))
        d(0x144, lambda: (self.mip_sw | self.mip_hw) & self.mideleg, self._write_sip)
        d(0x180, lambda: self.satp, self._write_satp)
        # Sstc 1.0: stimecmp/stimecmph (RV32 splits the 64-bit register in two halves).
        d(0x14D, lambda: self.stimecmp & M32,
          lambda v: self._write_stimecmp((self.stimecmp & ~M32 & M64) | v))
        d(0x15D, lambda: self.stimecmp >> 32,
          lambda v: self._write_stimecmp((self.stimecmp & M32) | (v << 32)))

    # -- WARL writers -------------------------------------------------------------------------
    def _write_mstatus(self, v: int) -> None:
        old = self.mstatus
        new = (old & ~MSTATUS_WMASK) | (v & MSTATUS_WMASK)
        if (new & MSTATUS_MPP) == (2 << MSTATUS_MPP_SHIFT):  # Priv 3.1.6.1: MPP is WARL; 2 is reserved
            new = (new & ~MSTATUS_MPP) | (old & MSTATUS_MPP)
        self.mstatus = new
        if (old ^ new) & MSTATUS_XLATE:
            self.hart.context_changed()

    def _write_sstatus(self, v: int) -> None:
        self._write_mstatus((self.mstatus & ~SSTATUS_WMASK) | (v & SSTATUS_WMASK))

    def _write_tvec(self, attr: str, v: int) -> None:
        # Priv 3.1.7: MODE 0 direct, 1 vectored, >=2 reserved: WARL, so we keep the old mode.
        mode = v & 3
        if mode >= 2:
            mode = getattr(self, attr) & 3
        setattr(self, attr, (v & ~3 & M32) | mode)

    def _write_mip(self, v: int) -> None:
        # Priv 3.1.9: SSIP, STIP and SEIP are writable by M-mode; MSIP/MTIP/MEIP come from devices.
        # Sstc: with STCE=1, STIP is read-only in mip (it reflects time >= stimecmp).
        mask = MIP_SW_MASK & ~STIP if self.menvcfgh & MENVCFGH_STCE else MIP_SW_MASK
        self.mip_sw = (self.mip_sw & ~mask) | (v & mask)

    def _write_menvcfgh(self, v: int) -> None:
        old = self.menvcfgh
        self.menvcfgh = v & MENVCFGH_STCE  # WARL: the other fields are not implemented
        if (old ^ self.menvcfgh) & MENVCFGH_STCE:
            if self.menvcfgh:
                self.mip_sw &= ~STIP  # the comparator now owns STIP
            self.hart.stimer_changed()

    def _write_stimecmp(self, v: int) -> None:
        self.stimecmp = v & M64
        self.hart.stimer_changed()

    def _write_sie(self, v: int) -> None:
        # Priv 4.1.3: bits of interrupts not delegated to S are read-only zero in sie.
        self.mie = (self.mie & ~self.mideleg) | (v & self.mideleg & MIE_MASK)

    def _write_sip(self, v: int) -> None:
        # Priv 4.1.3: only SSIP is writable through sip, and only when delegated.
        mask = SSIP & self.mideleg
        self.mip_sw = (self.mip_sw & ~mask) | (v & mask)

    def _write_satp(self, v: int) -> None:
        # Priv 4.1.11: RV32 supports Bare and Sv32, so every MODE value is legal; ASIDLEN = 9.
        self.satp = v & M32
        self.hart.context_changed()

    # -- H extension --------------------------------------------------------------------------
    def enable_hypervisor(self) -> None:
        """Add the H extension's registers (Priv 8.2) and make misa.H read as 1."""
        if self.hext:
            return
        self.hext = True
        d = self.define
        h = self.hart
        zero: Reader = lambda: 0  # noqa: E731
        ignore: Writer = lambda v: None  # noqa: E731
        # Priv 8.4 (mideleg): with H, mideleg bits of the VS-level interrupts are read-only one.
        self.mideleg |= VS_INTS
        d(0x301, lambda: MISA | MISA_H, ignore)
        d(0x302, *self._field("medeleg", MEDELEG_H_MASK))
        d(0x303, lambda: self.mideleg, lambda v: setattr(self, "mideleg", (v & MIDELEG_MASK) | VS_INTS))
        d(0x304, *self._field("mie", MIE_MASK | VS_INTS))
        d(0x344, lambda: self.mip_sw | self.mip_hw, self._write_mip_h)
        d(0x310, lambda: self.mstatush, self._write_mstatush)
        # Priv 8.2.3: the VS-level bits are seen through hip/hie, not sip/sie (read-only zero there).
        d(0x104, lambda: self.mie & self.mideleg & ~VS_INTS, self._write_sie)
        d(0x144, lambda: (self.mip_sw | self.mip_hw) & self.mideleg & ~VS_INTS, self._write_sip)
        d(0x34A, *self._field("mtinst"))  # no name: binutils 2.40 prints these two as numbers
        d(0x34B, *self._field("mtval2"))
        # Hypervisor CSRs (Priv 8.2)
        d(0x600, lambda: self.hstatus, lambda v: setattr(self, "hstatus", v & HSTATUS_WMASK))
        d(0x602, *self._field("hedeleg", HEDELEG_MASK))
        d(0x603, *self._field("hideleg", VS_INTS))
        d(0x604, lambda: self.mie & VS_INTS, self._write_hie)  # hie: the VS bits of mie (SGEIE is 0)
        d(0x605, lambda: self.htimedelta & M32,
          lambda v: setattr(self, "htimedelta", (self.htimedelta & ~M32 & M64) | v))
        d(0x615, lambda: self.htimedelta >> 32,
          lambda v: setattr(self, "htimedelta", (self.htimedelta & M32) | (v << 32)))
        d(0x606, *self._field("hcounteren"))
        d(0x607, zero, ignore)  # hgeie: GEILEN = 0
        d(0x60A, zero, ignore)  # henvcfg: no optional features (so VS-mode has no stimecmp)
        d(0x61A, zero, ignore)  # henvcfgh
        d(0x643, *self._field("htval"))
        d(0x644, lambda: (self.mip_sw | self.mip_hw) & VS_INTS, self._write_hip)
        d(0x645, lambda: self.mip_sw & VS_INTS, self._write_hvip)
        d(0x64A, *self._field("htinst"))
        d(0x680, lambda: self.hgatp, self._write_hgatp)
        d(0xE12, zero)  # hgeip: read-only, GEILEN = 0
        # Virtual supervisor CSRs (Priv 8.2): what s* CSR numbers reach when V=1.
        d(0x200, lambda: self.vsstatus, self._write_vsstatus)
        d(0x204, lambda: (self.mie & self.hideleg) >> 1, self._write_vsie)
        d(0x205, lambda: self.vstvec, lambda v: self._write_tvec("vstvec", v))
        d(0x240, *self._field("vsscratch"))
        d(0x241, lambda: self.vsepc, lambda v: setattr(self, "vsepc", v & ~3 & M32))
        d(0x242, *self._field("vscause"))
        d(0x243, *self._field("vstval"))
        d(0x244, lambda: ((self.mip_sw | self.mip_hw) & self.hideleg) >> 1, self._write_vsip)
        d(0x280, lambda: self.vsatp, self._write_vsatp)
        # Priv 8.2 (htimedelta): in VS and VU modes, time reads as time + htimedelta.
        d(0xC01, lambda: (h.read_time() + (self.htimedelta if h.virt else 0)) & M32)
        d(0xC81, lambda: ((h.read_time() + (self.htimedelta if h.virt else 0)) >> 32) & M32)

    def _write_mip_h(self, v: int) -> None:
        # Priv 8.2.3: mip.VSSIP is an alias of hvip.VSSIP; VSTIP and VSEIP are read-only in mip.
        self._write_mip(v)
        self.mip_sw = (self.mip_sw & ~VSSIP) | (v & VSSIP)

    def _write_mstatush(self, v: int) -> None:
        old = self.mstatush
        self.mstatush = v & (MSTATUSH_MPV | MSTATUSH_GVA)
        if (old ^ self.mstatush) & MSTATUSH_MPV and self.mstatus & MSTATUS_MPRV:
            self.hart.context_changed()  # MPRV loads and stores use V = MPV

    def _write_hie(self, v: int) -> None:
        self.mie = (self.mie & ~VS_INTS) | (v & VS_INTS)

    def _write_hip(self, v: int) -> None:
        # Priv 8.2.3: only hip.VSSIP is writable (an alias of hvip.VSSIP).
        self.mip_sw = (self.mip_sw & ~VSSIP) | (v & VSSIP)

    def _write_hvip(self, v: int) -> None:
        # Priv 8.2.3: hvip sets the VS-level interrupts the hypervisor injects.
        self.mip_sw = (self.mip_sw & ~VS_INTS) | (v & VS_INTS)

    def _write_hgatp(self, v: int) -> None:
        self.hgatp = v & HGATP_WMASK
        self.hart.context_changed()

    def _write_vsstatus(self, v: int) -> None:
        old = self.vsstatus
        self.vsstatus = v & SSTATUS_WMASK  # Priv 8.2 (vsstatus): sstatus's layout; UBE 0, no FS/VS/XS
        if (old ^ self.vsstatus) & (MSTATUS_SUM | MSTATUS_MXR):
            self.hart.context_changed()

    def _write_vsie(self, v: int) -> None:
        # Priv 8.2 (vsip/vsie): vsie.SxIE are hie.VSxIE for the interrupts delegated by hideleg, else zero.
        mask = self.hideleg & VS_INTS
        self.mie = (self.mie & ~mask) | ((v << 1) & mask)

    def _write_vsip(self, v: int) -> None:
        # Priv 8.2 (vsip/vsie): only vsip.SSIP is writable, as hip.VSSIP, when hideleg delegates it.
        mask = self.hideleg & VSSIP
        self.mip_sw = (self.mip_sw & ~mask) | ((v << 1) & mask)

    def _write_vsatp(self, v: int) -> None:
        self.vsatp = v & M32
        self.hart.context_changed()

    def check_access_h(self, num: int, priv: int, virt: int, write: bool) -> int:
        """With H: 0 if the access is allowed, else the exception cause (ILLEGAL or VIRTUAL).

        Priv 8.6.1: from VS/VU, an access that HS-mode could make (assuming TVM=0) is a
        virtual-instruction exception instead of an illegal-instruction one."""
        if num not in self.table or (write and (num >> 10) & 3 == 3):
            return ILLEGAL
        level = (num >> 8) & 3  # 0 user, 1 supervisor, 2 hypervisor/VS, 3 machine (Priv 2.1)
        if priv == M_MODE:
            return 0
        if level == 3:
            return ILLEGAL
        if virt:
            if level == 2 or (level == 1 and priv == U_MODE):
                return VIRTUAL
        elif level and priv == U_MODE:
            return ILLEGAL
        if num in USER_COUNTERS:
            bit = 1 << (num & 31)
            if not self.mcounteren & bit:
                return ILLEGAL
            if virt and not self.hcounteren & bit:
                return VIRTUAL  # Priv 8.6.1: hcounteren clear, mcounteren set
            if priv == U_MODE and not self.scounteren & bit:
                return VIRTUAL if virt else ILLEGAL
        elif num == 0x180:
            if virt and self.hstatus & HSTATUS_VTVM:
                return VIRTUAL  # Priv 8.2.1: VTVM traps VS-mode satp accesses
            if not virt and self.mstatus & MSTATUS_TVM:
                return ILLEGAL  # Priv 3.1.6.5 (mstatus.TVM does not affect VS-mode)
        elif num == 0x680 and self.mstatus & MSTATUS_TVM:
            return ILLEGAL  # Priv 8.2 (hgatp): TVM also traps HS-mode hgatp accesses
        elif num == 0x14D or num == 0x15D:
            if not (self.menvcfgh & MENVCFGH_STCE and self.mcounteren & COUNTEREN_TM):
                return ILLEGAL
            if virt:
                return VIRTUAL  # Sstc: henvcfg.STCE is 0, so VS-mode has no stimecmp
        return 0

    # -- access -------------------------------------------------------------------------------
    def check_access(self, num: int, priv: int, write: bool) -> bool:
        """Whether privilege ``priv`` may read (and, if ``write``, write) CSR ``num``."""
        if num not in self.table:
            return False
        if priv < (num >> 8) & 3:
            return False
        if write and (num >> 10) & 3 == 3:
            return False
        if num in USER_COUNTERS:
            bit = 1 << (num & 31)
            # Priv 3.1.11 / 4.1.5: counter visible in S if mcounteren, in U if also scounteren.
            if priv < M_MODE and not self.mcounteren & bit:
                return False
            if priv == U_MODE and not self.scounteren & bit:
                return False
        if num == 0x180 and priv == S_MODE and self.mstatus & MSTATUS_TVM:
            return False  # Priv 3.1.6.5: TVM traps satp accesses in S-mode
        if (num == 0x14D or num == 0x15D) and priv < M_MODE:
            # Sstc: below M, stimecmp needs menvcfg.STCE and mcounteren.TM.
            return bool(self.menvcfgh & MENVCFGH_STCE and self.mcounteren & COUNTEREN_TM)
        return True

    def read(self, num: int) -> int:
        return self.table[num][0]() & M32

    def write(self, num: int, value: int) -> None:
        writer = self.table[num][1]
        if writer is not None:
            writer(value & M32)

    # -- snapshot -----------------------------------------------------------------------------
    STATE_FIELDS = (
        "mstatus", "medeleg", "mideleg", "mie", "mip_sw", "mip_hw", "mtvec", "stvec", "mscratch",
        "sscratch", "mepc", "sepc", "mcause", "scause", "mtval", "stval", "mcounteren", "scounteren", "satp",
    )  # fmt: skip

    H_FIELDS = (
        "mstatush", "mtval2", "mtinst", "hstatus", "hedeleg", "hideleg", "hcounteren", "htimedelta",
        "htval", "htinst", "hgatp", "vsstatus", "vstvec", "vsscratch", "vsepc", "vscause", "vstval", "vsatp",
    )  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {f: getattr(self, f) for f in self.STATE_FIELDS}
        state["pmpcfg"] = list(self.pmpcfg)
        state["pmpaddr"] = list(self.pmpaddr)
        state["menvcfgh"] = self.menvcfgh
        state["stimecmp"] = self.stimecmp
        if self.hext:  # only H machines carry these, so other snapshots read as before
            state["h"] = {f: getattr(self, f) for f in self.H_FIELDS}
        return state

    def restore(self, state: dict[str, Any]) -> None:
        for f in self.STATE_FIELDS:
            setattr(self, f, int(state[f]))
        self.pmpcfg = [int(v) for v in state["pmpcfg"]]
        self.pmpaddr = [int(v) for v in state["pmpaddr"]]
        self.menvcfgh = int(state.get("menvcfgh", 0))  # absent from snapshots taken before Sstc
        self.stimecmp = int(state.get("stimecmp", M64))
        for f, v in state.get("h", {}).items():
            if f in self.H_FIELDS:
                setattr(self, f, int(v))
