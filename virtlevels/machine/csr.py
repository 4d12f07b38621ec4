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

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {f: getattr(self, f) for f in self.STATE_FIELDS}
        state["pmpcfg"] = list(self.pmpcfg)
        state["pmpaddr"] = list(self.pmpaddr)
        state["menvcfgh"] = self.menvcfgh
        state["stimecmp"] = self.stimecmp
        return state

    def restore(self, state: dict[str, Any]) -> None:
        for f in self.STATE_FIELDS:
            setattr(self, f, int(state[f]))
        self.pmpcfg = [int(v) for v in state["pmpcfg"]]
        self.pmpaddr = [int(v) for v in state["pmpaddr"]]
        self.menvcfgh = int(state.get("menvcfgh", 0))  # absent from snapshots taken before Sstc
        self.stimecmp = int(state.get("stimecmp", M64))
