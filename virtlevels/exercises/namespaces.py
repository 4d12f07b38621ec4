"""Namespace visibility (OS level): which pid and hostname a process in nested namespaces sees,
and which other processes it can see (pid_namespaces(7), uts_namespaces(7)).

A chain of processes is built with clone(2): each child gets a random subset of CLONE_NEWPID
and CLONE_NEWUTS and may set its hostname. Solved by running the chain on the simulated kernel
with scripted processes (getpid, uname, kill(pid, 0))."""

from __future__ import annotations

from typing import Any

from virtlevels.exercises.base import Answer, Problem, rng
from virtlevels.kernel.ns.common import CLONE_NEWPID, CLONE_NEWUTS

NAME = "ns-visibility"
SIGCHLD = 17


def scenario(seed: int) -> list[dict[str, Any]]:
    r = rng(NAME, seed)
    chain = []
    for i in range(r.randint(3, 4)):
        chain.append({"newpid": r.random() < 0.5, "newuts": r.random() < 0.5,
                      "hostname": f"node{i}" if r.random() < 0.6 else None})  # fmt: skip
    return chain


def generate(seed: int) -> Problem:
    chain = scenario(seed)
    lines = ["The initial process P0 (pid 1, hostname '(none)') starts a chain; each Pk clones Pk+1 with:"]
    for i, c in enumerate(chain):
        flags = " | ".join(
            [f for f, on in (("CLONE_NEWPID", c["newpid"]), ("CLONE_NEWUTS", c["newuts"])) if on]
        )
        host = f", then P{i + 1} calls sethostname('{c['hostname']}')" if c["hostname"] else ""
        lines.append(f"  P{i} -> P{i + 1}: clone({flags or 'SIGCHLD'}){host}")
    lines += ["(each Pk sets its hostname before cloning the next one)",
              "For every process: what does getpid() return, what hostname does uname() show at the end,",
              "and which pids among 1..N+1 exist in its pid namespace (kill(pid, 0) succeeds)?"]  # fmt: skip
    return Problem(NAME, seed, "\n".join(lines), {"chain": chain})


def run(chain: list[dict[str, Any]]) -> dict[str, Any]:
    from virtlevels.kernel import scripted as sc
    from virtlevels.kernel.kernel import Kernel
    from virtlevels.world import World

    k = Kernel(World(0))
    n = len(chain) + 1
    pids: dict[int, int] = {}
    hostnames: dict[int, str] = {}
    seen: dict[int, list[int]] = {}

    def proc(i: int):  # type: ignore[no-untyped-def]
        if i > 0 and chain[i - 1]["hostname"]:
            yield sc.sethostname(chain[i - 1]["hostname"])
        pids[i] = yield sc.getpid()
        if i + 1 < n:
            c = chain[i]
            flags = SIGCHLD | (CLONE_NEWPID if c["newpid"] else 0) | (CLONE_NEWUTS if c["newuts"] else 0)
            yield sc.clone(flags, proc, i + 1)
        yield sc.burn(5_000_000)  # until the whole chain exists
        hostnames[i] = (yield sc.uname())["nodename"]
        # kill(pid, 0) succeeds for the pids visible in the caller's pid namespace (kill(2))
        seen[i] = []
        for p in range(1, n + 2):
            if (yield sc.kill(p, 0)) == 0:
                seen[i].append(p)
        if i + 1 < n:
            yield sc.wait4(-1)

    k.spawn(lambda: proc(0))
    k.run(until=k.world.now + 500_000_000)
    return {"pids": pids, "hostnames": hostnames, "seen": seen}


def solve(seed: int) -> Answer:
    res = run(scenario(seed))
    lines = [f"  P{i}: getpid()={res['pids'][i]}, hostname {res['hostnames'].get(i)!r}, sees "
             f"pids {res['seen'].get(i, [])}" for i in sorted(res["pids"])]  # fmt: skip
    return Answer(
        NAME,
        seed,
        "\n".join(lines),
        res,
        "run on virtlevels.kernel.kernel.Kernel (clone, getpid, uname, kill)",
    )
