"""Where teachos and its firmware live: the physical and user-virtual memory layout.

These numbers are the single source for the firmware, the kernel (they reach the assembly as
``.equ`` lines the builder generates) and the docs (docs/guests.md draws the same map).
"""

from __future__ import annotations

from virtlevels.machine.memmap import CLINT_BASE, RAM_BASE, TEST_FINISHER_BASE, UART_BASE

MIB = 1 << 20
PAGE = 4096

# Physical memory (RAM starts at 0x8000_0000 on the virt board).
FW_BASE = RAM_BASE                        # the SBI firmware, entered at reset
KERNEL_BASE = RAM_BASE + 0x20_0000        # FW_JUMP_ADDR, as OpenSBI's fw_jump puts Linux
USER_REGION_BASE = RAM_BASE + 0x40_0000   # process i's image and stack at + i * USER_REGION_SIZE
USER_REGION_SIZE = 1 * MIB
NPROC_MAX = 8
PAGE_POOL_BASE = USER_REGION_BASE + NPROC_MAX * USER_REGION_SIZE  # page tables, heap pages
PAGE_POOL_END = RAM_BASE + 16 * MIB
KERNEL_MEGAPAGES = (PAGE_POOL_END - RAM_BASE) // (4 * MIB)  # RAM the kernel identity-maps
RAM_NEEDED = PAGE_POOL_END - RAM_BASE
RAM_END = RAM_BASE + 128 * MIB            # the default board's RAM (mmu_update's upper bound)

# A process's virtual memory (all below 4 MiB: one level-0 page table per process).
USER_BASE = 0x0001_0000                   # text, rodata, data, bss (as Linux's default)
USER_IMAGE_LIMIT = 0x000F_C000            # the image must end below this
USER_STACK_PAGES = 4
USER_STACK_TOP = 0x0040_0000
USER_STACK_PHYS_OFFSET = USER_IMAGE_LIMIT  # the stack's pages within the process region
HEAP_MAX = 0x0030_0000                    # brk may not go above this

# Time: the default cost profile clocks the hart at 1 GHz with mtime at 10 MHz (QEMU virt).
TIMEBASE_HZ = 10_000_000
DEFAULT_TIMER_INTERVAL = 1000             # mtime ticks between timer interrupts (100 us)

# The VLP paravirtualization SBI extension (docs/guests.md).
VLP_EID = 0x0956_4C50


def firmware_constants() -> dict[str, int]:
    """The ``.equ`` values the firmware is assembled with."""
    return {
        "FW_JUMP_ADDR": KERNEL_BASE,
        "KERNEL_BASE": KERNEL_BASE,
        "RAM_END": RAM_END,
        "UART_BASE": UART_BASE,
        "CLINT_BASE": CLINT_BASE,
        "FINISHER_BASE": TEST_FINISHER_BASE,
    }


def kernel_constants(timer_interval: int, timebase_hz: int) -> dict[str, int]:
    """The ``.equ`` values the kernel is assembled with."""
    return {
        "RAM_BASE": RAM_BASE,
        "UART_BASE": UART_BASE,
        "NPROC_MAX": NPROC_MAX,
        "PAGE_POOL_BASE": PAGE_POOL_BASE,
        "PAGE_POOL_END": PAGE_POOL_END,
        "KERNEL_MEGAPAGES": KERNEL_MEGAPAGES,
        "USER_STACK_TOP": USER_STACK_TOP,
        "HEAP_MAX": HEAP_MAX,
        "TIMER_INTERVAL": timer_interval,
        "TIMEBASE_HZ": timebase_hz,
        "NS_PER_TICK": 1_000_000_000 // timebase_hz,
    }
