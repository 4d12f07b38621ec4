"""Privileged operations for code that runs *as* a hart's software but is written in Python.

A kernel or firmware written in Python (the simulated kernel, the boot stub) changes hardware
state only by executing real instruction words on its hart with :meth:`Hart.execute
<virtlevels.machine.hart.Hart.execute>`, exactly as compiled code would: so on a deprivileged
virtual hart the same words trap to the hypervisor. These helpers encode the words from the one
instruction table (:mod:`virtlevels.machine.isa.encodings`) and move values through a scratch
register, as real code must (a CSR instruction takes its operand from a register, or a 5-bit
immediate): the register is saved before and restored after, so the caller's register state
is untouched. Each takes ``pc``: the native address the instruction is "fetched" from, so a
trap it causes has a meaningful epc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from virtlevels.machine.isa.encodings import BY_NAME

if TYPE_CHECKING:
    from virtlevels.machine.hart import Hart

M32 = 0xFFFFFFFF
SCRATCH = 5  # t0: carries a CSR value in or out
SCRATCH2 = 6  # t1: sfence.vma's second operand


def _csr_word(name: str, rd: int, rs1: int, csr: int) -> int:
    # Unpriv 9.1: csr[31:20] rs1/uimm[19:15] funct3 rd[11:7] opcode.
    return BY_NAME[name].match | (csr & 0xFFF) << 20 | (rs1 & 31) << 15 | (rd & 31) << 7


def csrrw_word(csr: int, rd: int, rs1: int) -> int:
    return _csr_word("csrrw", rd, rs1, csr)


def csrrs_word(csr: int, rd: int, rs1: int) -> int:
    return _csr_word("csrrs", rd, rs1, csr)


def csrrc_word(csr: int, rd: int, rs1: int) -> int:
    return _csr_word("csrrc", rd, rs1, csr)


def csrrwi_word(csr: int, rd: int, uimm: int) -> int:
    return _csr_word("csrrwi", rd, uimm, csr)


def csrrsi_word(csr: int, rd: int, uimm: int) -> int:
    return _csr_word("csrrsi", rd, uimm, csr)


def csrrci_word(csr: int, rd: int, uimm: int) -> int:
    return _csr_word("csrrci", rd, uimm, csr)


def sfence_vma_word(rs1: int = 0, rs2: int = 0) -> int:
    return BY_NAME["sfence.vma"].match | (rs2 & 31) << 20 | (rs1 & 31) << 15


SRET = BY_NAME["sret"].match
MRET = BY_NAME["mret"].match
WFI = BY_NAME["wfi"].match


def _through_scratch(hart: Hart, value: int, word: int, pc: int | None) -> None:
    x = hart.x
    saved = x[SCRATCH]
    x[SCRATCH] = value & M32
    try:
        hart.execute(word, pc)
    finally:
        x[SCRATCH] = saved


def csr_read(hart: Hart, num: int, pc: int | None = None) -> int:
    """``csrr t0, num`` (csrrs t0, num, x0): reads without writing."""
    x = hart.x
    saved = x[SCRATCH]
    try:
        hart.execute(csrrs_word(num, SCRATCH, 0), pc)
        return x[SCRATCH]
    finally:
        x[SCRATCH] = saved


def csr_write(hart: Hart, num: int, value: int, pc: int | None = None) -> None:
    """``csrwi num, uimm`` when the value fits 5 bits, else ``csrw num, t0``."""
    value &= M32
    if value < 32:
        hart.execute(csrrwi_word(num, 0, value), pc)
    else:
        _through_scratch(hart, value, csrrw_word(num, 0, SCRATCH), pc)


def csr_set(hart: Hart, num: int, bits: int, pc: int | None = None) -> None:
    """``csrs num, bits`` (``csrsi`` for small masks)."""
    bits &= M32
    if bits < 32:
        hart.execute(csrrsi_word(num, 0, bits), pc)
    else:
        _through_scratch(hart, bits, csrrs_word(num, 0, SCRATCH), pc)


def csr_clear(hart: Hart, num: int, bits: int, pc: int | None = None) -> None:
    """``csrc num, bits`` (``csrci`` for small masks)."""
    bits &= M32
    if bits < 32:
        hart.execute(csrrci_word(num, 0, bits), pc)
    else:
        _through_scratch(hart, bits, csrrc_word(num, 0, SCRATCH), pc)


def sfence_vma(hart: Hart, vaddr: int | None = None, asid: int | None = None, pc: int | None = None) -> None:
    """``sfence.vma`` with rs1 = the address (or x0: all) and rs2 = the ASID (or x0: all)."""
    x = hart.x
    saved = x[SCRATCH], x[SCRATCH2]
    if vaddr is not None:
        x[SCRATCH] = vaddr & M32
    if asid is not None:
        x[SCRATCH2] = asid & M32
    try:
        word = sfence_vma_word(SCRATCH if vaddr is not None else 0, SCRATCH2 if asid is not None else 0)
        hart.execute(word, pc)
    finally:
        x[SCRATCH], x[SCRATCH2] = saved
