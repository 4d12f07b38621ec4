"""Build the standard board, assemble a program with virtlevels' own assembler, run it, and see
where its cycles went.

    python examples/machine_hello.py [--engine interp|fast] [--profile default|modern-x86]

The guest prints through the 16550 UART and ends the run through the test finisher, as a program
for ``qemu-system-riscv32 -machine virt`` would (docs/machine.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from virtlevels.machine.asm import assemble
from virtlevels.machine.board import virt_machine

SOURCE = r"""
    .equ UART, 0x10000000           # 16550 transmit holding register
    .equ FINISHER, 0x100000         # test finisher: 0x5555 = pass
    .globl _start
_start:
    la a1, message
    li a2, UART
1:  lbu a3, 0(a1)
    beqz a3, 2f
    sb a3, 0(a2)
    addi a1, a1, 1
    j 1b
2:  li a2, FINISHER
    li a3, 0x5555
    sw a3, 0(a2)
    j .

    .section .rodata
message:
    .asciz "Hello from RV32!\n"
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("interp", "fast"), default="interp")
    parser.add_argument("--profile", default="default")
    args = parser.parse_args(argv)

    image = assemble(SOURCE, "hello.S")  # an Image: segments, entry point, symbols
    machine = virt_machine(profile=args.profile)  # 1 hart, 128 MiB RAM, UART, PLIC, finisher
    machine.load(image)
    result = machine.run(max_instructions=10_000, engine=args.engine)

    print(result.uart, end="")
    print(f"status: {result.status}, {result.instructions} instructions, {result.cycles} cycles "
          f"({machine.cost.name} profile, {args.engine} engine)")  # fmt: skip
    for category, cycles in sorted(result.cycles_by_category.items()):
        print(f"  {category:<10}{cycles:>8}")
    return 0 if result.status == "pass" else 1


if __name__ == "__main__":
    raise SystemExit(main())
