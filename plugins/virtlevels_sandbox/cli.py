"""``virtlevels sandbox run`` and ``virtlevels sandbox explain``.

``run`` boots a kernel (on a RISC-V machine when PROGRAM is an RV32 ELF file on the host, else a
machine-less kernel with the built-in programs ``probe``, ``echo`` and ``cat``), starts PROGRAM in
a sandbox and prints its output, then one summary line on stderr: the exit status and what the
filters cost. ``explain`` says, for every riscv32 system call, what a profile decides and why.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from virtlevels.errors import ConfigError
from virtlevels.registry import Command
from virtlevels_sandbox import bpf, landlock
from virtlevels_sandbox import profile as prof
from virtlevels_sandbox import seccomp as sec
from virtlevels_sandbox.programs import PROGRAMS, install_programs
from virtlevels_sandbox.sandbox import SandboxSpec, parse_cap, parse_rlimit, spawn_sandboxed

#: How long ``run`` lets the program run, in simulated cycles (60 s at 1 GHz).
RUN_LIMIT = 60_000_000_000


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    run = sub.add_parser("run", help="run a program in a sandbox")
    _profile_args(run)
    run.add_argument(
        "--rlimit",
        action="append",
        default=[],
        metavar="NAME=SOFT[:HARD]",
        help="e.g. nofile=16, nproc=4:4, fsize=4096",
    )
    run.add_argument(
        "--no-new-privs",
        dest="nnp",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="set no_new_privs before the filter (default: yes)",
    )
    for what, help_ in (
        ("read", "read files and list directories beneath PATH"),
        ("write", "write, create, remove and truncate beneath PATH"),
        ("exec", "execute files beneath PATH"),
    ):
        run.add_argument(
            f"--allow-{what}",
            dest=f"allow_{what}",
            action="append",
            default=[],
            metavar="PATH",
            help=f"Landlock-like rule: {help_} (with any --allow-*, all else is EACCES)",
        )
    run.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    run.add_argument("program", help=f"an RV32 ELF file, or one of: {', '.join(sorted(PROGRAMS))}")
    run.add_argument("args", nargs=argparse.REMAINDER)
    ex = sub.add_parser("explain", help="what a seccomp profile allows, denies and kills, and why")
    _profile_args(ex)
    ex.add_argument("--caps", help="the bounding set instead of Docker's default one: comma-separated names")
    ex.add_argument("--syscall", action="append", default=[], help="only these system calls")
    ex.add_argument("--disassemble", action="store_true", help="print the compiled BPF program")
    ex.add_argument("--json", action="store_true")


def _profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        default="docker-default",
        help="docker-default (default), docker-example, unconfined, or a JSON file",
    )
    p.add_argument(
        "--cap-drop", action="append", default=[], metavar="CAP", help="drop a capability (or ALL)"
    )
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP", help="add a capability (or ALL)")


def _spec(args: argparse.Namespace, rlimits: tuple[tuple[str, int, int], ...] = ()) -> SandboxSpec:
    for c in [*args.cap_drop, *args.cap_add]:
        if c.upper() != "ALL":
            parse_cap(c)
    profile = None if args.profile == "unconfined" else args.profile
    allow: dict[str, tuple[str, ...]] = {}
    for key in ("allow_read", "allow_write", "allow_exec"):
        paths = tuple(getattr(args, key, []))
        for path in paths:
            if not path.startswith("/"):
                raise ConfigError(f"--{key.replace('_', '-')} {path!r}: an absolute path is needed")
        allow[key] = paths
    return SandboxSpec(
        profile, tuple(args.cap_drop), tuple(args.cap_add), rlimits, getattr(args, "nnp", True), **allow
    )


def _run(args: argparse.Namespace) -> int:
    if args.verb == "explain":
        return _explain(args)
    rlimits = tuple(parse_rlimit(r) for r in args.rlimit)
    spec = _spec(args, rlimits)
    compiled = spec.compile()
    kernel, path = _boot(args.world, args.program)
    argv = [path, *[a for a in args.args if a != "--"]]

    def init() -> Any:
        from virtlevels.kernel import scripted as sc

        while True:
            r = yield sc.wait4(-1)
            if not isinstance(r, tuple):
                return 0

    kernel.spawn(init, name="init")
    t = spawn_sandboxed(kernel, spec, path, argv, compiled=compiled)
    p = t.process
    kernel.run(RUN_LIMIT)
    out = bytes(kernel.console).decode(errors="replace")
    status = p.exit_code if p.zombie or p.reaped else None
    st = sec.stats(kernel).to_dict()
    lls = landlock.stats(kernel)
    code = 0 if status is None else (128 + (status & 0x7F) if status & 0x7F else (status >> 8) & 0xFF)
    summary = {
        "program": args.program,
        "exit_code": code,
        "signal": (status or 0) & 0x7F,
        "profile": args.profile,
        "bpf_insns_in_filter": len(compiled.program) if compiled else 0,
        "capabilities": sorted(prof._caps(spec.capabilities())),
        **st,
        "cycles_by_category": _breakdown(kernel),
        # PLT indirections and interposer calls, when the interpose plugin linked the program.
        "library": ld.stats() if (ld := getattr(kernel, "_virtlevels_linker", None)) is not None else None,
        "landlock": {
            "rules": [[path, landlock.access_names(acc)] for path, acc in spec.fs_rules(path)],
            **lls.to_dict(),
        },
    }
    if status is None:
        summary["exit_code"] = None
    if args.json:
        summary["output"] = out
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        sys.stdout.write(out)
        what = (
            "still running"
            if status is None
            else (f"killed by signal {status & 0x7F}" if status & 0x7F else f"exit status {code}")
        )
        print(
            f"sandbox: {what}; {st['filtered_syscalls']} system calls filtered, {st['bpf_insns']} BPF "
            f"instructions ({st['bpf_insns_per_syscall']} per call), {st['filter_cycles']} cycles in filters",
            file=sys.stderr,
        )
        if spec.restricts_fs:
            print(
                f"sandbox: landlock: {lls.checks} filesystem accesses checked, {lls.denied} denied",
                file=sys.stderr,
            )
    return 1 if status is None else code


def _breakdown(kernel: Any) -> dict[str, int]:
    """Cycles by category: the machine's harts' (ISA programs), else the kernel's categorized ones."""
    machine = kernel.machine
    if machine is not None:
        out: dict[str, int] = {}
        for hart in machine.harts:
            for key, value in hart.cycles_by_category().items():
                if value:
                    out[key] = out.get(key, 0) + value
        return dict(sorted(out.items()))
    return dict(sorted(kernel.charged_by_category.items()))


def _boot(world: Any, program: str) -> tuple[Any, str]:
    from virtlevels.kernel.kernel import Kernel

    host = Path(program)
    if program in PROGRAMS and not host.is_file():
        kernel = Kernel(world)
        sec.install(kernel)
        install_programs(kernel)
        return kernel, f"/bin/{program}"
    if not host.is_file():
        raise ConfigError(f"{program}: no such file (built-in programs: {', '.join(sorted(PROGRAMS))})")
    image = host.read_bytes()
    if not image.startswith(b"\x7fELF"):
        raise ConfigError(f"{program}: not an ELF file")
    from virtlevels.machine.board import virt_machine

    machine = virt_machine(world=world)
    kernel = Kernel(world, machine=machine)
    sec.install(kernel)
    path = f"/bin/{host.name}"
    kernel.write_file(path, image, 0o755)
    return kernel, path


def _explain(args: argparse.Namespace) -> int:
    if args.profile == "unconfined":
        raise ConfigError("--profile unconfined has nothing to explain: every call is allowed")
    doc, source = prof.load_json(args.profile)
    caps: Any
    if args.caps is not None:
        caps = [c.strip() for c in args.caps.split(",") if c.strip()]
    else:
        caps = _spec(args).capabilities()
    cp = prof.compile_profile(doc, caps=caps, source=source)
    rows = cp.explain()
    if args.syscall:
        want = set(args.syscall)
        unknown = [n for n in want if prof.rv32names.lookup(n) is None]
        if unknown:
            raise ConfigError(f"--syscall: {', '.join(sorted(unknown))}: not a riscv32 system call")
        nrs = {prof.rv32names.lookup(n) for n in want}
        rows = [r for r in rows if r[1] in nrs]
    if args.json:
        print(
            json.dumps(
                {
                    "profile": source,
                    "default": sec.describe_action(cp.default),
                    "instructions": len(cp.program),
                    "capabilities": sorted(cp.caps),
                    "syscalls": [{"name": n, "nr": nr, "verdict": v, "why": w} for n, nr, v, w in rows],
                    "skipped": [
                        {"where": s.where, "names": list(s.names), "reason": s.reason} for s in cp.skipped
                    ],
                },
                indent=2,
            )
        )
        return 0
    print(
        f"profile {source}: default {sec.describe_action(cp.default)}, {len(cp.program)} BPF instructions, "
        f"bounding set {', '.join(sorted(cp.caps)) or '(empty)'}"
    )
    for name, nr, verdict, why in rows:
        print(f"{name:<24} {nr:>4}  {verdict:<28} {why}")
    missing = sorted({n for s in cp.skipped if s.reason.startswith("no such") for n in s.names})
    if missing and not args.syscall:
        print(f"not on riscv32 (skipped): {' '.join(missing)}")
    if args.disassemble:
        print(bpf.disassemble(cp.program))
    return 0


COMMANDS = [
    Command(
        "sandbox",
        "process-level sandboxes: run a program under seccomp/caps/rlimits, explain a profile",
        _configure,
        _run,
    ),
]
