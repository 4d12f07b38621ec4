"""Reference solution of the CSR trap-handler lab (for instructors)."""

from __future__ import annotations

M32 = 0xFFFFFFFF


def emulate_csr(word: int, regs: list[int], vcsr: dict[int, int], masks: dict[int, int]) -> None:
    csr, src, funct3, rd = word >> 20 & 0xFFF, word >> 15 & 0x1F, word >> 12 & 7, word >> 7 & 0x1F
    value = src if funct3 & 4 else regs[src]  # uimm for the *i forms
    old = vcsr[csr]
    op = funct3 & 3
    if op == 1:
        new: int | None = value
    elif src == 0:
        new = None  # csrrs/csrrc with x0 or uimm 0: a read only, no write side effects
    elif op == 2:
        new = old | value
    else:
        new = old & ~value
    if new is not None:
        mask = masks[csr]
        vcsr[csr] = ((old & ~mask) | (new & mask)) & M32
    if rd != 0:
        regs[rd] = old & M32
