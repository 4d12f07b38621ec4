"""Lab: the CSR trap handler of a trap-and-emulate VMM.

The guest kernel runs deprivileged, so each of its csrrw/csrrs/csrrc/csrrwi/csrrsi/csrrci
instructions traps to the VMM, which must emulate it on the guest's *virtual* CSRs.

Implement ``emulate_csr``. Rules (RISC-V Unprivileged spec, chapter "Zicsr"; Privileged spec 2.3):

* the instruction word: csr = bits 31..20, rs1/uimm = 19..15, funct3 = 14..12, rd = 11..7;
  funct3 1/2/3 = csrrw/csrrs/csrrc with register rs1, 5/6/7 = the same with the 5-bit
  immediate uimm (zero-extended);
* the old value of the CSR is written to x[rd] (unless rd is x0; x0 stays 0);
* csrrw writes the source; csrrs sets the bits that are 1 in the source; csrrc clears them;
* csrrs/csrrc with rs1 = x0 (or uimm = 0) must NOT write the CSR at all (no side effects);
* a CSR only changes in its writable bits (WARL): new = (old & ~mask) | (value & mask),
  where mask = masks[csr].

``regs`` is the guest's register file (a list of 32 ints, modified in place); ``vcsr`` maps CSR
numbers to their current values (modified in place); ``masks`` maps CSR numbers to writable bits.
"""

from __future__ import annotations


def emulate_csr(word: int, regs: list[int], vcsr: dict[int, int], masks: dict[int, int]) -> None:
    # TODO: decode the instruction and emulate it.
    raise NotImplementedError("emulate_csr is not written yet")
