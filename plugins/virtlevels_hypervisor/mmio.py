"""Emulating a trapped MMIO access on the VM's virtual devices.

When a guest load or store reaches a guest-physical address that is a virtual device (it is not
mapped in the shadow tables or the G-stage), the VMM decodes the faulting instruction and performs
the access on the VM's bus itself (Unpriv 2.6 for the load/store encodings; loads sign-extend
unless LBU/LHU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from virtlevels_hypervisor.vm import VirtualMachine

M32 = 0xFFFFFFFF
OP_LOAD, OP_STORE = 0x03, 0x23


def emulate_mmio(vm: VirtualMachine, x: list[int], word: int, gpa: int) -> bool:
    """Perform the load or store ``word`` at guest-physical ``gpa`` on the VM's bus, with the
    registers ``x``. False if ``word`` is not a load/store or ``gpa`` is no device (the caller then
    gives the guest an access fault)."""
    opcode, funct3 = word & 0x7F, word >> 12 & 7
    if opcode not in (OP_LOAD, OP_STORE) or funct3 & 3 == 3:
        return False
    width = 1 << (funct3 & 3)
    mapping = vm.bus.find(gpa, width)
    if mapping is None:
        return False
    dev, off = mapping.device, gpa - mapping.base
    if opcode == OP_STORE:
        dev.write(off, width, x[word >> 20 & 31] & ((1 << 8 * width) - 1))
    else:
        value = dev.read(off, width) & ((1 << 8 * width) - 1)
        if not funct3 & 4 and value >> (8 * width - 1) & 1:
            value |= M32 ^ ((1 << 8 * width) - 1)
        rd = word >> 7 & 31
        if rd:
            x[rd] = value & M32
    return True
