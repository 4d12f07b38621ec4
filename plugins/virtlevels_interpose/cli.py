"""``virtlevels interpose run|libs``: run a program under the dynamic linker from a shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from virtlevels.errors import ConfigError
from virtlevels.registry import Command


def _configure_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preload", action="append", default=[], metavar="LIB",
                   help="a library to preload (LD_PRELOAD); repeatable")  # fmt: skip
    p.add_argument("--ltrace", action="store_true", help="trace library calls (ltrace-like) to stderr")
    p.add_argument(
        "--faketime", metavar="SPEC", help="libfaketime's FAKETIME: +2d, '@2008-12-24 08:15:42', ..."
    )
    p.add_argument(
        "--fakeroot", action="store_true", help="getuid() returns 0; chown is recorded, not applied"
    )
    p.add_argument("--fail", action="append", default=[], metavar="RULE",
                   help="inject a failure: SYMBOL[:N] or SYMBOL:every=K,errno=E,path=GLOB")  # fmt: skip
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="an environment variable")
    p.add_argument("--json", action="store_true", help="print the stats as JSON")
    p.add_argument("program", help="a demo (hello, win32-hello) or an RV32 program (.S or ELF file)")
    p.add_argument("args", nargs="*")


def _load_program(kernel_factory: Any, program: str) -> tuple[Any, str]:
    """(kernel, path in it) for a demo name or a host file."""
    from virtlevels_interpose.demos import DEMOS

    if program in DEMOS:
        from virtlevels.kernel.kernel import Kernel

        k = Kernel()
        path = f"/bin/{program}"
        k.install_program(path, program=DEMOS[program])
        return k, path
    f = Path(program)
    if not f.is_file():
        raise ConfigError(f"{program}: no such demo ({', '.join(sorted(DEMOS))}) or file")
    data = f.read_bytes()
    if not data.startswith(b"\x7fELF"):
        from virtlevels.machine.asm import assemble
        from virtlevels.machine.elf.writer import write_elf

        data = write_elf(assemble(data.decode(), str(f), base=0x10000))
    from virtlevels.kernel.kernel import Kernel
    from virtlevels.machine.board import virt_machine
    from virtlevels.world import World

    world = World(entry_points=False)
    k = Kernel(world, machine=virt_machine(world=world))
    path = f"/bin/{f.stem}"
    k.write_file(path, data, 0o755)
    return k, path


def _run(args: argparse.Namespace) -> int:
    import json

    from virtlevels_interpose.backend import InterposeBackend, InterposeSpec

    kernel, path = _load_program(None, args.program)
    spec = InterposeSpec(path, (path, *args.args), tuple(args.env), tuple(args.preload), args.ltrace,
                         args.faketime, args.fakeroot, tuple(args.fail))  # fmt: skip
    guest = InterposeBackend().define(kernel, spec)
    stats = guest.run()
    sys.stdout.write(kernel.console.decode(errors="replace"))
    for line in stats.get("ltrace", []):
        sys.stderr.write(line + "\n")
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        print(f"--- {args.program}: exit status {stats.get('exit_status', '?')}")
        print(guest.linker.report(guest.pid))
    status = stats.get("exit_status", 0)
    return int(status >> 8 if status & 0x7F == 0 else 128 + (status & 0x7F))


def _configure_libs(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="list this library's symbols")


def _libs(args: argparse.Namespace) -> int:
    from virtlevels.kernel.kernel import Kernel
    from virtlevels_interpose.linker import Linker

    ld = Linker.of(Kernel())
    if args.name:
        lib = ld.libraries.get(args.name)
        if lib is None:
            raise ConfigError(f"no library {args.name!r} (known: {', '.join(sorted(ld.libraries))})")
        print("\n".join(lib.symbols()))
        return 0
    for name, lib in sorted(ld.libraries.items()):
        print(f"{name:20} {len(lib.symbols()):3} symbols  {lib.description}")
    return 0


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="interpose_cmd", required=True)
    _configure_run(sub.add_parser("run", help="run a program with preloads, hooks and a cost report"))
    _configure_libs(sub.add_parser("libs", help="list the shipped libraries and their symbols"))


def _dispatch(args: argparse.Namespace) -> int:
    if args.interpose_cmd == "run":
        return _run(args)
    return _libs(args)


COMMANDS = [Command("interpose", "library-level virtualization: LD_PRELOAD, ltrace, faketime, Win32",
                    _configure, _dispatch)]  # fmt: skip
