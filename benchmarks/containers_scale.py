"""Start 1,000 containers, each running a short process, on one simulated kernel.

Prints wall time, peak Python memory (tracemalloc), and the simulated cycles per container
start (create + start + the process's exit, every system call of runc included) against a plain
process spawn (fork + execve + exit of the same program). Usage:

    python benchmarks/containers_scale.py [N]
"""

from __future__ import annotations

import sys
import time
import tracemalloc

from virtlevels_containers.engine import Engine, RunOptions
from virtlevels_containers.runtime import Runtime

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.kernel import Kernel


def plain_spawn_cycles(rt: Runtime, n: int = 20) -> float:
    """Cycles for fork + execve(/bin/true) + exit + wait, from a host process."""

    def spawner(count: int) -> object:
        for _ in range(count):
            pid = yield sc.fork(_child)
            yield sc.wait4(pid)
        return 0

    world = rt.kernel.world
    start = world.now
    rt._run(spawner, n, what="spawner")
    return (world.now - start) / n


def _child() -> object:
    yield sc.execve("/var/lib/virtlevels/images/busybox/0/bin/true", ["true"])
    return 1


def main(n: int = 1000) -> None:
    tracemalloc.start()
    t0 = time.perf_counter()
    rt = Runtime(Kernel())
    engine = Engine(rt)
    engine.pull("busybox")
    world = rt.kernel.world
    cycles = []
    for i in range(n):
        before = world.now
        res = engine.run("busybox", ["true"], RunOptions(name=f"c{i}"), rm=True)
        assert res.exit_code == 0, res
        cycles.append(world.now - before)
    wall = time.perf_counter() - t0
    _cur, peak = tracemalloc.get_traced_memory()
    plain = plain_spawn_cycles(rt)
    tracemalloc.stop()
    per = sum(cycles) / len(cycles)
    print(f"containers started:          {n}")
    print(f"wall time:                   {wall:.2f} s ({wall / n * 1000:.2f} ms per container)")
    print(f"peak Python memory:          {peak / 2**20:.1f} MiB")
    print(f"simulated cycles/container:  {per:,.0f} (create+start+run+delete, incl. rootfs overlay)")
    print(f"simulated cycles/spawn:      {plain:,.0f} (fork+execve+exit+wait)")
    print(f"ratio:                       {per / plain:.1f}x")
    print(f"live containers at the end:  {len(rt.containers)}; graph nodes: {len(world.graph)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
