"""CSR names and numbers: one table for the machine, the assembler and the disassembler.

Privileged ISA 20211203, section 2.2 tables 2.2-2.6, plus the names GNU binutils 2.40 also
prints (H extension chapter 8, debug, AIA, Smstateen, Sstc, vector, Zkr), so a disassembly
reads the same as ``objdump -d``.
"""

from __future__ import annotations


def _csr_table() -> list[tuple[str, int]]:
    """(name, number) pairs; where two names share a number the first is the one printed."""
    t: list[tuple[str, int]] = [
        # Unprivileged floating point and vector CSRs (objdump names them whatever the ISA)
        ("fflags", 0x001),
        ("frm", 0x002),
        ("fcsr", 0x003),
        ("vstart", 0x008),
        ("vxsat", 0x009),
        ("vxrm", 0x00A),
        ("vcsr", 0x00F),
        ("seed", 0x015),
        # Supervisor (Priv table 2.3)
        ("sstatus", 0x100),
        ("sie", 0x104),
        ("stvec", 0x105),
        ("scounteren", 0x106),
        ("senvcfg", 0x10A),
        ("sstateen0", 0x10C),
        ("sstateen1", 0x10D),
        ("sstateen2", 0x10E),
        ("sstateen3", 0x10F),
        ("sieh", 0x114),
        ("sscratch", 0x140),
        ("sepc", 0x141),
        ("scause", 0x142),
        ("stval", 0x143),
        ("sip", 0x144),
        ("stimecmp", 0x14D),
        ("siselect", 0x150),
        ("sireg", 0x151),
        ("siph", 0x154),
        ("stopei", 0x15C),
        ("stimecmph", 0x15D),
        ("satp", 0x180),
        # Virtual supervisor (H extension, Priv table 2.4)
        ("vsstatus", 0x200),
        ("vsie", 0x204),
        ("vstvec", 0x205),
        ("vsieh", 0x214),
        ("vsscratch", 0x240),
        ("vsepc", 0x241),
        ("vscause", 0x242),
        ("vstval", 0x243),
        ("vsip", 0x244),
        ("vstimecmp", 0x24D),
        ("vsiselect", 0x250),
        ("vsireg", 0x251),
        ("vsiph", 0x254),
        ("vstopei", 0x25C),
        ("vstimecmph", 0x25D),
        ("vsatp", 0x280),
        # Machine (Priv tables 2.5 and 2.6)
        ("mstatus", 0x300),
        ("misa", 0x301),
        ("medeleg", 0x302),
        ("mideleg", 0x303),
        ("mie", 0x304),
        ("mtvec", 0x305),
        ("mcounteren", 0x306),
        ("mvien", 0x308),
        ("mvip", 0x309),
        ("menvcfg", 0x30A),
        ("mstateen0", 0x30C),
        ("mstateen1", 0x30D),
        ("mstateen2", 0x30E),
        ("mstateen3", 0x30F),
        ("mstatush", 0x310),
        ("midelegh", 0x313),
        ("mieh", 0x314),
        ("mvienh", 0x318),
        ("mviph", 0x319),
        ("menvcfgh", 0x31A),
        ("mstateen0h", 0x31C),
        ("mstateen1h", 0x31D),
        ("mstateen2h", 0x31E),
        ("mstateen3h", 0x31F),
        ("mcountinhibit", 0x320),
    ]
    t += [(f"mhpmevent{i}", 0x320 + i) for i in range(3, 32)]
    t += [
        ("mscratch", 0x340),
        ("mepc", 0x341),
        ("mcause", 0x342),
        ("mtval", 0x343),
        ("mip", 0x344),
        ("mtinst", 0x34A),
        ("mtval2", 0x34B),
        ("miselect", 0x350),
        ("mireg", 0x351),
        ("miph", 0x354),
        ("mtopei", 0x35C),
    ]
    t += [(f"pmpcfg{i}", 0x3A0 + i) for i in range(16)]
    t += [(f"pmpaddr{i}", 0x3B0 + i) for i in range(64)]
    t += [("scontext", 0x5A8)]
    # Hypervisor (Priv table 2.4)
    t += [
        ("hstatus", 0x600),
        ("hedeleg", 0x602),
        ("hideleg", 0x603),
        ("hie", 0x604),
        ("htimedelta", 0x605),
        ("hcounteren", 0x606),
        ("hgeie", 0x607),
        ("hvien", 0x608),
        ("hvictl", 0x609),
        ("henvcfg", 0x60A),
        ("hstateen0", 0x60C),
        ("hstateen1", 0x60D),
        ("hstateen2", 0x60E),
        ("hstateen3", 0x60F),
        ("hidelegh", 0x613),
        ("htimedeltah", 0x615),
        ("hvienh", 0x618),
        ("henvcfgh", 0x61A),
        ("hstateen0h", 0x61C),
        ("hstateen1h", 0x61D),
        ("hstateen2h", 0x61E),
        ("hstateen3h", 0x61F),
        ("htval", 0x643),
        ("hip", 0x644),
        ("hvip", 0x645),
        ("hviprio1", 0x646),
        ("hviprio2", 0x647),
        ("htinst", 0x64A),
        ("hviph", 0x655),
        ("hviprio1h", 0x656),
        ("hviprio2h", 0x657),
        ("hgatp", 0x680),
        ("hcontext", 0x6A8),
    ]
    t += [(f"mhpmevent{i}h", 0x720 + i) for i in range(3, 32)]
    t += [("mseccfg", 0x747), ("mseccfgh", 0x757)]
    # Debug and trigger CSRs (RISC-V Debug Specification 0.13, table 5.1/5.2)
    t += [
        ("tselect", 0x7A0),
        ("tdata1", 0x7A1),
        ("tdata2", 0x7A2),
        ("tdata3", 0x7A3),
        ("tinfo", 0x7A4),
        ("tcontrol", 0x7A5),
        ("mcontext", 0x7A8),
        ("mscontext", 0x7AA),
        ("dcsr", 0x7B0),
        ("dpc", 0x7B1),
        ("dscratch0", 0x7B2),
        ("dscratch1", 0x7B3),
        ("dscratch", 0x7B2),
    ]
    # Counters (Priv 3.1.10; Unprivileged chapter 10 "Zicntr")
    t += [("mcycle", 0xB00), ("minstret", 0xB02)]
    t += [(f"mhpmcounter{i}", 0xB00 + i) for i in range(3, 32)]
    t += [("mcycleh", 0xB80), ("minstreth", 0xB82)]
    t += [(f"mhpmcounter{i}h", 0xB80 + i) for i in range(3, 32)]
    t += [("cycle", 0xC00), ("time", 0xC01), ("instret", 0xC02)]
    t += [(f"hpmcounter{i}", 0xC00 + i) for i in range(3, 32)]
    t += [("vl", 0xC20), ("vtype", 0xC21), ("vlenb", 0xC22)]
    t += [("cycleh", 0xC80), ("timeh", 0xC81), ("instreth", 0xC82)]
    t += [(f"hpmcounter{i}h", 0xC80 + i) for i in range(3, 32)]
    t += [
        ("scountovf", 0xDA0),
        ("stopi", 0xDB0),
        ("hgeip", 0xE12),
        ("vstopi", 0xEB0),
        ("mvendorid", 0xF11),
        ("marchid", 0xF12),
        ("mimpid", 0xF13),
        ("mhartid", 0xF14),
        ("mconfigptr", 0xF15),
        ("mtopi", 0xFB0),
    ]
    return t


_TABLE = _csr_table()
CSRS: dict[str, int] = dict(_TABLE)
"""CSR name -> number, for the assembler."""

CSR_NAMES: dict[int, str] = {}
"""CSR number -> the name objdump prints, for the disassembler."""
for _name, _num in _TABLE:
    CSR_NAMES.setdefault(_num, _name)
