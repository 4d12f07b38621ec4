"""The physical memory map of the simulated machine, modelled on QEMU's ``virt`` board.

QEMU ``hw/riscv/virt.c`` places the test finisher ("sifive_test") at 0x10_0000, the CLINT at
0x200_0000, the PLIC at 0xC00_0000, a 16550 UART at 0x1000_0000, virtio-mmio slots from
0x1000_1000 and RAM at 0x8000_0000. We keep those addresses so that programs written for
``qemu-system-riscv32 -machine virt`` find their devices where they expect them; the NIC gets the
second virtio-style slot. HTIF has no fixed address: it lives at the ELF symbol ``tohost``.
"""

from __future__ import annotations

import attrs

TEST_FINISHER_BASE = 0x0010_0000
TEST_FINISHER_SIZE = 0x1000
CLINT_BASE = 0x0200_0000
CLINT_SIZE = 0x0001_0000
PLIC_BASE = 0x0C00_0000
PLIC_SIZE = 0x0400_0000
UART_BASE = 0x1000_0000
UART_SIZE = 0x100
BLOCK_BASE = 0x1000_1000
BLOCK_SIZE = 0x1000
NIC_BASE = 0x1000_2000
NIC_SIZE = 0x1000
RAM_BASE = 0x8000_0000
RAM_SIZE_DEFAULT = 128 * 1024 * 1024
# Native code: addresses whose "code" is a Python handler (a kernel's or hypervisor's trap entry),
# registered with ``PhysicalMachine.add_native_entry``. Nothing is mapped here (no RAM, no device),
# so fetching from it faults; trap entry that lands on a registered address calls the handler
# instead. The top 64 KiB, which is above RAM and the devices, and which an Sv32 kernel keeps out
# of every user page table (RV32 Linux's TASK_SIZE ends at 0x8000_0000).
NATIVE_BASE = 0xFFFF_0000
NATIVE_SIZE = 0x0001_0000

# PLIC interrupt source numbers, as QEMU virt numbers them (UART0 = 10, virtio slots from 1).
UART_IRQ = 10
BLOCK_IRQ = 1
NIC_IRQ = 2


@attrs.frozen
class Region:
    name: str
    base: int
    size: int
    irq: int | None
    note: str


MEMORY_MAP: tuple[Region, ...] = (
    Region("test-finisher", TEST_FINISHER_BASE, TEST_FINISHER_SIZE, None,
           "write 0x5555 pass, (code<<16) \\| 0x3333 fail"),
    Region("clint", CLINT_BASE, CLINT_SIZE, None,
           "msip +0x0, mtimecmp +0x4000, mtime +0xBFF8 (SiFive layout)"),
    Region("plic", PLIC_BASE, PLIC_SIZE, None, "platform-level interrupt controller"),
    Region("uart", UART_BASE, UART_SIZE, UART_IRQ, "16550-compatible"),
    Region("block", BLOCK_BASE, BLOCK_SIZE, BLOCK_IRQ, "block device"),
    Region("nic", NIC_BASE, NIC_SIZE, NIC_IRQ, "network interface"),
    Region("ram", RAM_BASE, RAM_SIZE_DEFAULT, None, "sparse DRAM (size configurable)"),
    Region("native", NATIVE_BASE, NATIVE_SIZE, None,
           "native code entries: trap vectors handled by Python (no memory)"),
)


def table_markdown() -> str:
    """The memory map as a Markdown table, for the docs."""
    lines = ["| device | base | size | irq | notes |", "|---|---|---|---|---|"]
    for r in MEMORY_MAP:
        irq = "" if r.irq is None else str(r.irq)
        lines.append(f"| {r.name} | `0x{r.base:08x}` | `0x{r.size:x}` | {irq} | {r.note} |")
    return "\n".join(lines)
