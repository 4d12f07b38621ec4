"""Trap causes (Privileged ISA 20211203, table 3.6) and the internal :class:`Trap` signal.

A guest fault is never a Python error: the hart's memory helpers and the execute functions raise
:class:`Trap`, and the engine turns it into architectural trap entry (:meth:`Hart.take_trap`).
"""

from __future__ import annotations

# Exception codes (mcause with interrupt bit clear).
INSTRUCTION_ADDRESS_MISALIGNED = 0
INSTRUCTION_ACCESS_FAULT = 1
ILLEGAL_INSTRUCTION = 2
BREAKPOINT = 3
LOAD_ADDRESS_MISALIGNED = 4
LOAD_ACCESS_FAULT = 5
STORE_ADDRESS_MISALIGNED = 6
STORE_ACCESS_FAULT = 7
ECALL_FROM_U = 8
ECALL_FROM_S = 9
ECALL_FROM_M = 11
INSTRUCTION_PAGE_FAULT = 12
LOAD_PAGE_FAULT = 13
STORE_PAGE_FAULT = 15
# H extension (Priv 8.6.1, table 8.6): ecall from VS-mode, guest-page faults, virtual instruction.
ECALL_FROM_VS = 10
INSTRUCTION_GUEST_PAGE_FAULT = 20
LOAD_GUEST_PAGE_FAULT = 21
VIRTUAL_INSTRUCTION = 22
STORE_GUEST_PAGE_FAULT = 23

# Interrupt codes (mcause with interrupt bit set); also the bit numbers in mip/mie.
SSI, MSI, STI, MTI, SEI, MEI = 1, 3, 5, 7, 9, 11

EXCEPTION_NAMES: dict[int, str] = {
    0: "instruction_address_misaligned",
    1: "instruction_access_fault",
    2: "illegal_instruction",
    3: "breakpoint",
    4: "load_address_misaligned",
    5: "load_access_fault",
    6: "store_address_misaligned",
    7: "store_access_fault",
    8: "ecall_from_u",
    9: "ecall_from_s",
    11: "ecall_from_m",
    12: "instruction_page_fault",
    13: "load_page_fault",
    15: "store_page_fault",
    10: "ecall_from_vs",
    20: "instruction_guest_page_fault",
    21: "load_guest_page_fault",
    22: "virtual_instruction",
    23: "store_guest_page_fault",
}

INTERRUPT_NAMES: dict[int, str] = {
    1: "supervisor_software_interrupt",
    3: "machine_software_interrupt",
    5: "supervisor_timer_interrupt",
    7: "machine_timer_interrupt",
    9: "supervisor_external_interrupt",
    11: "machine_external_interrupt",
    2: "virtual_supervisor_software_interrupt",
    6: "virtual_supervisor_timer_interrupt",
    10: "virtual_supervisor_external_interrupt",
    12: "supervisor_guest_external_interrupt",
}

# Access kinds, used to pick the fault cause for an access.
FETCH, LOAD, STORE = 0, 1, 2
MISALIGNED_CAUSE = (INSTRUCTION_ADDRESS_MISALIGNED, LOAD_ADDRESS_MISALIGNED, STORE_ADDRESS_MISALIGNED)
ACCESS_FAULT_CAUSE = (INSTRUCTION_ACCESS_FAULT, LOAD_ACCESS_FAULT, STORE_ACCESS_FAULT)
PAGE_FAULT_CAUSE = (INSTRUCTION_PAGE_FAULT, LOAD_PAGE_FAULT, STORE_PAGE_FAULT)
GUEST_PAGE_FAULT_CAUSE = (INSTRUCTION_GUEST_PAGE_FAULT, LOAD_GUEST_PAGE_FAULT, STORE_GUEST_PAGE_FAULT)


def cause_name(cause: int, interrupt: bool = False) -> str:
    names = INTERRUPT_NAMES if interrupt else EXCEPTION_NAMES
    return names.get(cause, f"{'interrupt' if interrupt else 'exception'}_{cause}")


class Trap(Exception):  # noqa: N818 - a control-flow signal, not an error
    """A synchronous exception raised while executing an instruction; ``tval`` per Priv 3.1.16."""

    __slots__ = ("cause", "tval")

    def __init__(self, cause: int, tval: int = 0) -> None:
        self.cause = cause
        self.tval = tval

    def __repr__(self) -> str:
        return f"Trap({cause_name(self.cause)}, tval=0x{self.tval:08x})"


class HaltRequest(Exception):  # noqa: N818 - control-flow signal
    """Raised after an MMIO store asked the machine to stop (HTIF, test finisher); the store retired."""


class YieldToHost(Exception):  # noqa: N818 - control-flow signal
    """Raised by a native trap handler (see ``PhysicalMachine.add_native_entry``) to hand the hart
    back to the host code that is running it (``PhysicalMachine.run_hart``: a kernel's scheduler).

    It unwinds the engine the way a kernel's trap entry switches to its own stack: the handler has
    already saved what it needs, the hart stays where trap entry put it (at the native vector, in
    the handler's privilege), and whoever resumes it later does so with privileged instructions
    (``sret``) as usual. Engines need no code for it: it passes through them like any exception.
    """
