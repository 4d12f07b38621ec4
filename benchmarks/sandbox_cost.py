"""Seccomp cost: simulated cycles per system call with no filter, Docker's default profile and a
1-rule profile, and the simulator's own wall time per filtered call.

    python benchmarks/sandbox_cost.py [--calls N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins"))

from virtlevels_sandbox import profile as prof  # noqa: E402
from virtlevels_sandbox import seccomp as sec  # noqa: E402

from virtlevels.kernel import scripted as sc  # noqa: E402
from virtlevels.kernel.kernel import Kernel  # noqa: E402
from virtlevels.world import World  # noqa: E402

CALLS = {"getpid": sc.getpid, "read(0, 0)": lambda: sc.read(0, 0), "write(1, '')": lambda: sc.write(1, b"")}


def measure(program: tuple | None, call, n: int) -> tuple[float, float, float]:
    """(cycles per call, BPF instructions per call, wall seconds per call)."""
    k = Kernel(World(entry_points=False))
    sec.install(k)
    box = {}

    def prog():
        if program is not None:
            yield sc.prctl(38, 1)
            yield sec.set_mode_filter(program)
        yield call()  # warm the verdict cache, as a real run would
        t0, w0, i0 = k.world.now, time.perf_counter(), sec.stats(k).bpf_insns
        for _ in range(n):
            yield call()
        box["r"] = (k.world.now - t0, time.perf_counter() - w0, sec.stats(k).bpf_insns - i0)
        return 0

    k.spawn(prog)
    k.run()
    cycles, wall, insns = box["r"]
    return cycles / n, insns / n, wall / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    n = ap.parse_args().calls
    doc, src = prof.load_json("docker-default")
    docker = prof.compile_profile(doc, source=src).program
    one = prof.compile_profile(prof.one_rule_profile("mount")).program
    print(f"{'call':<14} {'profile':<16} {'cycles/call':>12} {'BPF insns':>10} {'wall us/call':>13}")
    for cname, call in CALLS.items():
        for pname, program in (("none", None), ("docker-default", docker), ("1-rule", one)):
            cyc, ins, wall = measure(program, call, n)
            print(f"{cname:<14} {pname:<16} {cyc:>12.1f} {ins:>10.1f} {wall * 1e6:>13.2f}")
    print(f"docker-default compiles to {len(docker)} BPF instructions; the 1-rule profile to {len(one)}.")


if __name__ == "__main__":
    main()
