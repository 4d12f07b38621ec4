"""``python -m virtlevels.guests``: build teachos images, list the user programs, run one.

    python -m virtlevels.guests build -o teachos.elf [--pv] [PROGRAM ...]
    virtlevels machine run teachos.elf
    python -m virtlevels.guests run [--pv] [--engine fast] [PROGRAM ...]
    python -m virtlevels.guests list

A PROGRAM is a shipped program's name (``list`` shows them) or a path to a ``.S`` file.
``run`` exits as ``virtlevels machine run`` does (0 pass, the failure code, 124 out of
instructions, 125 every hart waits forever).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from virtlevels.errors import VirtlevelsError

from .builder import DEFAULT_PROGRAMS, boot_teachos, build_teachos, program_names
from .layout import DEFAULT_TIMER_INTERVAL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m virtlevels.guests",
                                     description="build and run the teachos teaching kernel")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, text in (("build", "write a bootable ELF image (firmware + kernel + programs)"),
                       ("run", "build and run on the virt board; the UART goes to stdout")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("programs", nargs="*", metavar="PROGRAM",
                       help=f"user programs, one process each (default: {' '.join(DEFAULT_PROGRAMS)})")
        p.add_argument("--pv", action="store_true",
                       help="the paravirtual kernel (hypercalls, no privileged instructions)")
        p.add_argument("--timer-interval", type=int, default=DEFAULT_TIMER_INTERVAL, metavar="TICKS",
                       help=f"mtime ticks between timer interrupts (default {DEFAULT_TIMER_INTERVAL})")
        if verb == "build":
            p.add_argument("-o", "--output", required=True, help="ELF file to write")
        else:
            p.add_argument("--engine", choices=("interp", "fast"), default="interp")
            p.add_argument("--max-instructions", type=int, default=50_000_000, metavar="N")
    sub.add_parser("list", help="list the shipped user programs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    except VirtlevelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _main(args: argparse.Namespace) -> int:
    if args.verb == "list":
        for name in program_names():
            print(name)
        return 0
    image = build_teachos(args.programs or None, paravirt=args.pv, timer_interval=args.timer_interval)
    if args.verb == "build":
        from virtlevels.machine.elf import write_elf

        Path(args.output).write_bytes(write_elf(image))
        return 0
    from virtlevels.machine.board import virt_machine
    from virtlevels.machine.cli import exit_status

    machine = virt_machine()
    boot_teachos(machine, image)
    result = machine.run(args.max_instructions, engine=args.engine)
    sys.stdout.write(result.uart)
    return exit_status(result.status, result.exit_code)


if __name__ == "__main__":
    sys.exit(main())
