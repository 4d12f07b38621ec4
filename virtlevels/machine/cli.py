"""``virtlevels machine run|asm|disasm``: run, assemble and disassemble RV32 programs.

Exit status of ``machine run`` (documented in docs/machine.md):

* 0 — the program passed (HTIF ``tohost`` = 1, or the test finisher's 0x5555);
* its failure code — the program failed (HTIF test number, or the finisher's code), mod 256,
  and 1 if that would be 0;
* 124 — the instruction limit ran out first (as GNU ``timeout`` reports a time-out);
* 125 — every hart waits in WFI with nothing left that could wake it;
* 1 — bad input (a malformed ELF or assembly file), with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, Any

from virtlevels.errors import VirtlevelsError
from virtlevels.machine.image import Image
from virtlevels.machine.trap import cause_name
from virtlevels.registry import Command

EXIT_LIMIT = 124
EXIT_DEADLOCK = 125
PRIV_LETTER = {0: "U", 1: "S", 3: "M"}


def load_program(path: str | Path) -> Image:
    """An ELF file (by its magic number) or assembly source (anything else)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise VirtlevelsError(f"{p}: cannot read: {exc.strerror}") from None
    if data[:4] == b"\x7fELF":
        from virtlevels.machine.elf import load_elf

        return load_elf(data, str(p))
    from virtlevels.machine.asm import assemble

    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise VirtlevelsError(f"{p}: neither an ELF file nor UTF-8 assembly source") from None
    return assemble(text, str(p))


class TextTracer:
    """Spike-like instruction trace and trap log (``--trace``)."""

    def __init__(self, out: IO[str], instructions: bool = True) -> None:
        from virtlevels.machine.disasm import disassemble

        self.out = out
        self.instructions = instructions
        self._disassemble = disassemble

    def instruction(self, hart: Any, pc: int, word: int) -> None:
        if self.instructions:
            text = self._disassemble(word, pc)
            priv = PRIV_LETTER.get(hart.priv, "?")
            self.out.write(f"core {hart.id:3}: {priv} 0x{pc:08x} (0x{word:08x}) {text}\n")

    def trap(
        self, hart: Any, cause: int, tval: int, epc: int, from_priv: int, to_priv: int, interrupt: bool
    ) -> None:
        kind = "interrupt" if interrupt else "exception"
        self.out.write(
            f"core {hart.id:3}: {kind} {cause_name(cause, interrupt)}, epc 0x{epc:08x}, tval 0x{tval:08x}, "
            f"{PRIV_LETTER.get(from_priv, '?')}->{PRIV_LETTER.get(to_priv, '?')}\n"
        )


def exit_status(status: str, exit_code: int | None) -> int:
    if status == "pass":
        return 0
    if status == "fail":
        code = (exit_code or 1) & 0xFF
        return code or 1
    if status == "limit":
        return EXIT_LIMIT
    if status == "wfi-deadlock":
        return EXIT_DEADLOCK
    return 0  # "halt": the guest asked the board to stop (finisher reset)


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="machine_command", metavar="VERB", required=True)
    run = sub.add_parser("run", help="run an ELF or assembly program on the simulated machine")
    run.add_argument("program", help="an ELF file or a .S assembly file")
    run.add_argument("--engine", choices=("interp", "fast"), default="interp")
    run.add_argument("--max-instructions", type=int, default=100_000_000, metavar="N",
                     help="stop after N instructions (exit status 124); default 100,000,000")
    run.add_argument("--harts", type=int, default=1, metavar="N")
    run.add_argument("--profile", default="default", help="cost profile name or TOML file")
    run.add_argument("--ram", type=int, default=128, metavar="MIB", help="RAM size in MiB (default 128)")
    run.add_argument("--input", metavar="FILE", help="UART input ('-' for standard input)")
    run.add_argument("--trace", action="store_true", help="instruction trace and trap log on stderr")
    run.add_argument("--trace-traps", action="store_true", help="trap log only, on stderr")
    run.add_argument("--stats", action="store_true", help="counts and cycles by category on stderr")
    run.add_argument("--json", action="store_true", help="print the result as JSON (UART output inside it)")
    asm = sub.add_parser("asm", help="assemble a .S file into an ELF executable")
    asm.add_argument("source")
    asm.add_argument("-o", "--output", required=True)
    asm.add_argument("--base", type=lambda s: int(s, 0), default=0x8000_0000, help="address of .text")
    dis = sub.add_parser("disasm", help="disassemble an ELF file (or assemble and list a .S file)")
    dis.add_argument("program")
    dis.add_argument("--no-aliases", action="store_true", help="print base instructions only")


def _run(args: argparse.Namespace) -> int:
    verb = args.machine_command
    if verb == "asm":
        from virtlevels.machine.asm import assemble_file
        from virtlevels.machine.elf import write_elf

        image = assemble_file(args.source, base=args.base)
        Path(args.output).write_bytes(write_elf(image))
        return 0
    if verb == "disasm":
        from virtlevels.machine.disasm import disassemble_image

        for line in disassemble_image(load_program(args.program), aliases=not args.no_aliases):
            print(line)
        return 0
    return _run_program(args)


def _run_program(args: argparse.Namespace) -> int:
    from virtlevels.machine.board import virt_machine

    if args.harts < 1:
        raise VirtlevelsError(f"--harts must be at least 1, got {args.harts}")
    if args.max_instructions < 1:
        raise VirtlevelsError(f"--max-instructions must be at least 1, got {args.max_instructions}")
    image = load_program(args.program)
    stream: Any = None
    if args.input == "-":
        stream = sys.stdin.buffer
    elif args.input:
        try:
            stream = open(args.input, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise VirtlevelsError(f"{args.input}: cannot read: {exc.strerror}") from None
    echo = None if args.json else _stdout_echo
    try:
        machine = virt_machine(num_harts=args.harts, ram_size=args.ram << 20, profile=args.profile,
                               world=args.world, echo=echo, input_stream=stream)
        if args.trace or args.trace_traps:
            machine.tracer = TextTracer(sys.stderr, instructions=args.trace)
        machine.load(image)
        result = machine.run(args.max_instructions, engine=args.engine)
    finally:
        if stream is not None and stream is not sys.stdin.buffer:
            stream.close()
    sys.stdout.flush()
    status = exit_status(result.status, result.exit_code)
    if args.json:
        data = result.to_dict()
        data["exit_status"] = status
        data["engine"] = args.engine
        data["profile"] = machine.cost.name
        print(json.dumps(data, indent=2, sort_keys=True))
    if args.stats:
        _print_stats(result, sys.stderr)
    return status


def _stdout_echo(data: bytes) -> None:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        buffer.write(data)
    else:  # stdout replaced by a text stream (tests, notebooks)
        sys.stdout.write(data.decode("utf-8", "replace"))
    sys.stdout.flush()


def _print_stats(result: Any, out: IO[str]) -> None:
    code = f" (code {result.exit_code})" if result.exit_code is not None else ""
    out.write(f"status: {result.status}{code}\n")
    out.write(f"instructions: {result.instructions}\ncycles: {result.cycles}\n")
    out.write("cycles by category:\n")
    for k, v in sorted(result.cycles_by_category.items()):
        out.write(f"  {k:<16}{v:>14}\n")
    out.write("instructions by class:\n")
    for k, v in sorted(result.instructions_by_class.items()):
        out.write(f"  {k:<16}{v:>14}\n")
    out.write("traps:" + ("" if result.traps else " none") + "\n")
    for k, v in sorted(result.traps.items()):
        out.write(f"  {k:<32}{v:>8}\n")


COMMANDS = (Command("machine", "run, assemble and disassemble programs on the simulated RISC-V machine",
                    _configure, _run),)
