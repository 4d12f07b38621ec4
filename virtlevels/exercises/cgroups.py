"""cgroup v2 CPU shares and OOM prediction (OS level), solved by running the kernel's cgroups.

Part 1: busy groups share one CPU by ``cpu.weight`` (cgroup-v2.rst "Weights": each active
child gets weight / sum of active siblings' weights, whatever its number of tasks); idle groups
take nothing. Part 2: processes of one group touch memory in turn under ``memory.max``; the
kernel's OOM killer picks the victim inside the group (most pages charged, ties to the highest
pid). Both are run on :class:`virtlevels.kernel.kernel.Kernel` with scripted processes."""

from __future__ import annotations

from typing import Any

from virtlevels.exercises.base import Answer, Problem, rng

NAME = "cgroup-shares"
RUN_NS = 400_000_000  # 400 ms of simulated time
PAGE = 4096


def scenario(seed: int) -> dict[str, Any]:
    r = rng(NAME, seed)
    groups = {}
    for name in r.sample(["web", "db", "batch", "ml", "cron"], r.randint(3, 4)):
        groups[name] = {"weight": r.choice([50, 100, 200, 300, 400, 800]), "tasks": r.choice([0, 1, 1, 2, 3])}
    if all(g["tasks"] == 0 for g in groups.values()):
        next(iter(groups.values()))["tasks"] = 1
    limit = r.randint(24, 48)
    touches = [r.randint(6, 20) for _ in range(r.randint(3, 4))]
    return {"groups": groups, "memory_max_pages": limit, "touches": touches}


def generate(seed: int) -> Problem:
    s = scenario(seed)
    lines = ["Part 1. Sibling cgroups under one parent on a single CPU (cpu controller enabled):"]
    for name, g in s["groups"].items():
        lines.append(f"  /{name:6s} cpu.weight={g['weight']:4d}, {g['tasks']} CPU-bound task(s)")
    lines += ["What share of the CPU does each group get over a long run?", "",
              f"Part 2. /box has memory.max = {s['memory_max_pages'] * PAGE} "
              f"({s['memory_max_pages']} pages).",
              "Its processes run one after another; each touches its pages then stays alive:"]  # fmt: skip
    lines += [f"  p{i + 1}: touches {n} pages" for i, n in enumerate(s["touches"])]
    lines.append("Which processes does the OOM killer kill (p1 has the lowest pid)?")
    return Problem(NAME, seed, "\n".join(lines), s)


def measure_shares(groups: dict[str, dict[str, int]], run_ns: int = RUN_NS) -> dict[str, float]:
    """CPU share per group from the kernel's cpu.stat usage after ``run_ns`` of contention."""
    from virtlevels.kernel import scripted as sc
    from virtlevels.kernel.kernel import Kernel
    from virtlevels.world import World

    k = Kernel(World(0))
    h = k.cgroups
    h.set_subtree_control(h.root, {"cpu", "memory"}, set())
    cgs = {}
    for name, g in groups.items():
        cg = cgs[name] = h.mkdir(h.root, name)
        h.write_file(cg, "cpu.weight", str(g["weight"]), k.init_creds)

    def spin():  # type: ignore[no-untyped-def]
        yield sc.burn(10**15)

    def init():  # type: ignore[no-untyped-def]
        yield sc.wait4(-1)  # pid 1 sleeps: the spinners never exit

    k.spawn(init)
    for name, g in groups.items():
        for _ in range(g["tasks"]):
            k.spawn(spin, cgroup=cgs[name])
    k.run(until=k.world.now + run_ns)
    usage = {n: _usage(h.read_file(cg, "cpu.stat")) for n, cg in cgs.items()}
    total = sum(usage.values()) or 1
    return {n: u / total for n, u in usage.items()}


def _usage(text: str) -> int:
    for line in text.splitlines():
        key, value = line.split()
        if key == "usage_usec":
            return int(value)
    return 0


def run_oom(limit_pages: int, touches: list[int]) -> dict[str, Any]:
    """Run the memory part; returns which processes were SIGKILLed and memory.events."""
    from virtlevels.kernel import scripted as sc
    from virtlevels.kernel.kernel import Kernel
    from virtlevels.kernel.mm import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
    from virtlevels.world import World

    k = Kernel(World(0))
    h = k.cgroups
    h.set_subtree_control(h.root, {"memory"}, set())
    box = h.mkdir(h.root, "box")
    h.write_file(box, "memory.max", str(limit_pages * PAGE), k.init_creds)
    done: dict[int, bool] = {}

    def toucher(i: int, n: int):  # type: ignore[no-untyped-def]
        addr = yield sc.mmap(0, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        yield sc.touch(addr, n * PAGE)
        yield sc.burn(50_000_000)  # stay alive (holding the pages) while the others run
        done[i] = True

    def init():  # type: ignore[no-untyped-def]
        # pid 1 must outlive the others: when a pid namespace's init exits, the rest are killed
        for _ in touches:
            yield sc.wait4(-1)

    k.spawn(init)
    for i, n in enumerate(touches):
        k.spawn(lambda i=i, n=n: toucher(i, n), cgroup=box)
    k.run(until=k.world.now + 2_000_000_000)
    events = {ln.split()[0]: int(ln.split()[1]) for ln in h.read_file(box, "memory.events").splitlines()}
    killed = [f"p{i + 1}" for i in range(len(touches)) if not done.get(i)]
    return {"killed": killed, "events": events}


def solve(seed: int) -> Answer:
    s = scenario(seed)
    shares = measure_shares(s["groups"])
    oom = run_oom(s["memory_max_pages"], s["touches"])
    lines = ["Part 1 (measured cpu.stat usage_usec shares):"]
    lines += [f"  /{n:6s} {100 * v:5.1f}%" for n, v in shares.items()]
    lines += ["Part 2:", f"  killed: {', '.join(oom['killed']) or 'none'} (memory.events oom_kill="
              f"{oom['events'].get('oom_kill', 0)})"]  # fmt: skip
    return Answer(
        NAME,
        seed,
        "\n".join(lines),
        {"shares": shares, "killed": oom["killed"]},
        "run on virtlevels.kernel.kernel.Kernel: cpu.stat usage and the memory controller's OOM killer",
    )
