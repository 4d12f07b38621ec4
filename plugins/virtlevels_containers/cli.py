"""``virtlevels runc ...`` and ``virtlevels container ...``: the runtime and the engine from a shell.

Each CLI invocation is a fresh Python process, but a container lives in a simulated kernel. So
what persists is a *journal*: ``--root DIR`` (default ``$XDG_RUNTIME_DIR/virtlevels`` or
``/tmp/virtlevels-$UID``) holds ``journal.json``, the seed and the list of operations that
succeeded (create, start, kill, exec, run, wait, delete...). Every invocation rebuilds the World
and kernel from the seed, replays the journal deterministically (same inputs give the same
simulated system, bit for bit; the replayed clock is checked against the recorded one), applies
its own operation and, if it changed anything, appends it. Simulated time only passes inside
operations. Bundles are re-read on replay: changing a bundle's files under a live journal makes
the replay diverge, which is reported. ``virtlevels runc reset`` (or removing DIR) starts over.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from virtlevels.errors import ConfigError, VirtlevelsError
from virtlevels.registry import Command
from virtlevels_containers.engine import Engine, RunOptions
from virtlevels_containers.oci.bundle import check_bundle
from virtlevels_containers.runtime import Runtime

JOURNAL = "journal.json"
#: How long `run` waits for a container's process (simulated seconds at 1 GHz) before detaching.
DEFAULT_TIMEOUT_S = 60.0


def default_root() -> str:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return str(Path(xdg) / "virtlevels") if xdg else f"/tmp/virtlevels-{os.getuid()}"


class Session:
    """A World, kernel, runtime and engine rebuilt from the journal in ``root``."""

    def __init__(self, root: str, world: Any) -> None:
        from virtlevels.kernel.kernel import Kernel

        self.root = Path(root)
        self.path = self.root / JOURNAL
        self.ops: list[dict[str, Any]] = []
        if self.path.exists():
            try:
                self.ops = json.loads(self.path.read_text())["ops"]
            except (ValueError, KeyError) as exc:
                raise ConfigError(f"{self.path}: not a virtlevels journal ({exc})") from None
        self.kernel = Kernel(world)
        self.runtime = Runtime(self.kernel)
        self.engine = Engine(self.runtime)
        for i, op in enumerate(self.ops):
            try:
                self.apply(op)
            except VirtlevelsError as exc:
                raise ConfigError(
                    f"{self.path}: replaying operation {i} ({op['op']}) failed: {exc}"
                ) from None
            if op.get("now") is not None and op["now"] != self.kernel.world.now:
                raise ConfigError(f"{self.path}: replay diverged at operation {i} ({op['op']}): "
                                  f"clock {self.kernel.world.now}, recorded {op['now']}")  # fmt: skip

    def apply(self, op: dict[str, Any]) -> Any:
        rt, kind = self.runtime, op["op"]
        if kind == "create":
            return rt.create(op["id"], op["bundle"])
        if kind == "start":
            return rt.start(op["id"])
        if kind == "kill":
            return rt.kill(op["id"], op["signal"])
        if kind == "delete":
            return rt.delete(op["id"], force=op.get("force", False))
        if kind == "exec":
            return rt.exec(op["id"], op["args"])
        if kind == "wait":
            return rt.wait(op["id"], op["limit"])
        if kind == "run":
            o = RunOptions(**op["options"])
            o.env = tuple(o.env)
            return self.engine.run(
                op["image"], op["cmd"], o, detach=op["detach"], rm=op["rm"], limit=op["limit"]
            )
        raise ConfigError(f"unknown journal operation {kind!r}")

    def do(self, op: dict[str, Any]) -> Any:
        """Apply a new operation and record it (only if it succeeded)."""
        result = self.apply(op)
        op["now"] = self.kernel.world.now
        self.ops.append(op)
        self.root.mkdir(parents=True, exist_ok=True)
        live = any(True for _ in self.runtime.containers)
        # With no container left the journal can start afresh.
        self.path.write_text(json.dumps({"ops": self.ops if live else []}, indent=1))
        return result


def _limit(args: argparse.Namespace) -> int:
    return int(args.timeout * 1_000_000_000)


# -- runc -------------------------------------------------------------------------------------------
def _configure_runc(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=default_root(), help="state directory on the host (default %(default)s)")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, help_ in (("create", "create a container from a bundle"), ("run", "create, start and wait"),
                        ("start", "start a created container"), ("state", "print the state JSON"),
                        ("kill", "signal the container's process"), ("delete", "delete a stopped container"),
                        ("exec", "run a process in a container"), ("list", "list containers"),
                        ("validate", "check a bundle (schema and runtime support)"),
                        ("output", "print what the container's process wrote"),
                        ("reset", "forget every container (remove the journal)")):  # fmt: skip
        sp = sub.add_parser(verb, help=help_)
        if verb in ("create", "run", "validate"):
            sp.add_argument("--bundle", "-b", default=".", help="bundle directory (default: .)")
        if verb not in ("list", "validate", "reset"):
            sp.add_argument("id")
        if verb == "kill":
            sp.add_argument("signal", nargs="?", default="TERM")
        if verb == "delete":
            sp.add_argument("--force", "-f", action="store_true")
        if verb == "exec":
            sp.add_argument("command", nargs=argparse.REMAINDER)
        if verb == "run":
            sp.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="simulated seconds")
        if verb == "validate":
            sp.add_argument("--json", action="store_true")


def _run_runc(args: argparse.Namespace) -> int:
    if args.verb == "validate":
        report = check_bundle(args.bundle)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            for line in report.lines():
                print(line)
        return 0 if report.ok else 1
    if args.verb == "reset":
        path = Path(args.root) / JOURNAL
        if path.exists():
            path.unlink()
        return 0
    s = Session(args.root, args.world)
    v = args.verb
    if v == "create":
        s.do({"op": "create", "id": args.id, "bundle": str(Path(args.bundle).absolute())})
    elif v == "run":
        s.do({"op": "create", "id": args.id, "bundle": str(Path(args.bundle).absolute())})
        s.do({"op": "start", "id": args.id})
        code = s.do({"op": "wait", "id": args.id, "limit": _limit(args)})
        sys.stdout.write(s.runtime.output(args.id))
        return code if code is not None else 0
    elif v == "start":
        s.do({"op": "start", "id": args.id})
    elif v == "state":
        print(s.runtime.state(args.id).to_json())
    elif v == "kill":
        s.do({"op": "kill", "id": args.id, "signal": args.signal})
    elif v == "delete":
        s.do({"op": "delete", "id": args.id, "force": args.force})
    elif v == "exec":
        cmd = [c for c in args.command if c != "--"]
        res = s.do({"op": "exec", "id": args.id, "args": cmd})
        sys.stdout.write(res.output)
        return res.exit_code if not res.signal else 128 + res.signal
    elif v == "list":
        print(f"{'ID':<16} {'PID':>6} {'STATUS':<8} BUNDLE")
        for st in s.runtime.list():
            print(f"{st.id:<16} {st.pid or 0:>6} {st.status.value:<8} {st.bundle}")
    elif v == "output":
        sys.stdout.write(s.runtime.output(args.id))
    return 0


# -- container (docker-like) ---------------------------------------------------------------------------
def _configure_container(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default=default_root(), help="state directory on the host (default %(default)s)")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    run = sub.add_parser("run", help="run a command in a new container")
    run.add_argument("--memory", "-m")
    run.add_argument("--cpus", type=float)
    run.add_argument("--pids-limit", type=int)
    run.add_argument("--hostname")
    run.add_argument("--read-only", action="store_true")
    run.add_argument("--env", "-e", action="append", default=[])
    run.add_argument("--user", "-u")
    run.add_argument("--name")
    run.add_argument("--detach", "-d", action="store_true")
    run.add_argument("--rm", action="store_true")
    run.add_argument("--security-opt", action="append", default=[], metavar="seccomp=unconfined|FILE",
                     help="seccomp profile (default: Docker's, when the sandbox plugin is installed)")
    run.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="simulated seconds to wait")
    run.add_argument("image")
    run.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("ps", help="list containers")
    ex = sub.add_parser("exec", help="run a command in a running container")
    ex.add_argument("name")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    st = sub.add_parser("stats", help="cgroup counters of a container")
    st.add_argument("name")
    st.add_argument("--json", action="store_true")
    k = sub.add_parser("kill", help="signal a container")
    k.add_argument("--signal", "-s", default="KILL")
    k.add_argument("name")
    rm = sub.add_parser("rm", help="remove a stopped container")
    rm.add_argument("--force", "-f", action="store_true")
    rm.add_argument("name")
    lg = sub.add_parser("logs", help="what a container's process wrote")
    lg.add_argument("name")


def _run_container(args: argparse.Namespace) -> int:
    s = Session(args.root, args.world)
    v = args.verb
    if v == "run":
        opts = {
            "memory": args.memory, "cpus": args.cpus, "pids_limit": args.pids_limit,
            "hostname": args.hostname, "read_only": args.read_only, "env": list(args.env),
            "user": args.user, "name": args.name,
        }  # fmt: skip
        if args.security_opt:
            opts["security_opt"] = list(args.security_opt)
        res = s.do({"op": "run", "image": args.image, "cmd": list(args.command), "options": opts,
                    "detach": args.detach, "rm": args.rm, "limit": _limit(args)})  # fmt: skip
        if args.detach or res.exit_code is None:
            print(res.name)
            return 0
        sys.stdout.write(res.output)
        return res.exit_code
    if v == "ps":
        print(f"{'NAME':<16} {'PID':>6} {'STATUS':<8} {'EXIT':>4}  COMMAND")
        for row in s.engine.ps():
            code = "" if row["exit_code"] is None else str(row["exit_code"])
            print(f"{row['name']:<16} {row['pid']:>6} {row['status']:<8} {code:>4}  {row['command']}")
        return 0
    if v == "exec":
        res = s.do({"op": "exec", "id": args.name, "args": [c for c in args.command if c != "--"]})
        sys.stdout.write(res.output)
        return res.exit_code if not res.signal else 128 + res.signal
    if v == "stats":
        stats = s.engine.stats(args.name)
        if args.json:
            print(json.dumps(stats, indent=2, sort_keys=True))
        else:
            for key, value in stats.items():
                print(f"{key}: {value}")
        return 0
    if v == "kill":
        s.do({"op": "kill", "id": args.name, "signal": args.signal})
        return 0
    if v == "rm":
        s.do({"op": "delete", "id": args.name, "force": args.force})
        return 0
    if v == "logs":
        sys.stdout.write(s.runtime.output(args.name))
        return 0
    return 2


COMMANDS = [
    Command("runc", "OCI runtime (runc-like): create, start, run, state, kill, delete, exec, list, validate",
            _configure_runc, _run_runc),
    Command("container", "docker-like containers: run, ps, exec, stats, kill, rm, logs",
            _configure_container, _run_container),
]  # fmt: skip
