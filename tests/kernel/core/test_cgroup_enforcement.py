"""cgroup v2 limits enforced on real (scripted) processes, with their counters."""

from __future__ import annotations

from virtlevels.kernel import scripted as sc
from virtlevels.kernel.kernel import Kernel
from virtlevels.kernel.mm import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from virtlevels.kernel.vfs.constants import AT_FDCWD, O_WRONLY


def _cg(k: Kernel, name: str, **files: str):
    k.cgroups.set_subtree_control(k.cgroups.root, {"cpu", "memory", "pids"}, set())
    cg = k.cgroups.mkdir(k.cgroups.root, name)
    for f, v in files.items():
        k.cgroups.write_file(cg, f.replace("_", ".", 1), v, k.init_creds)
    return cg


def _stat(text: str) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[1]) for line in text.splitlines()}


def test_memory_max_oom_kills_toucher(kernel):
    cg = _cg(kernel, "box", memory_max=str(64 * 4096))
    out = {}

    def hog():
        addr = yield sc.mmap(0, 256 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        out["addr"] = addr
        yield sc.touch(addr, 256 * 4096)
        out["survived"] = True

    def root():
        out["w"] = yield sc.wait4(-1)

    kernel.spawn(root)
    kernel.spawn(hog, cgroup=cg)
    kernel.run()
    assert "survived" not in out and out["w"][1] == 9  # SIGKILL
    events = _stat(kernel.cgroups.read_file(cg, "memory.events"))
    assert events["oom_kill"] == 1 and events["max"] >= 1
    assert kernel.cgroups.read_file(cg, "memory.current") == "0\n"  # freed at exit


def test_memory_under_max_is_charged_per_touched_page(kernel):
    cg = _cg(kernel, "box", memory_max=str(64 * 4096))
    seen = {}

    def ok():
        addr = yield sc.mmap(0, 256 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        yield sc.touch(addr, 10 * 4096)
        seen["current"] = kernel.cgroups.read_file(cg, "memory.current")
        yield sc.munmap(addr, 256 * 4096)
        seen["after"] = kernel.cgroups.read_file(cg, "memory.current")

    kernel.spawn(ok, cgroup=cg)
    kernel.run()
    assert seen["current"] == f"{10 * 4096}\n" and seen["after"] == "0\n"


def test_segv_on_unmapped_touch(kernel):
    out = {}

    def bad():
        yield sc.touch(0x1234000, 4)
        out["survived"] = True

    def root():
        yield sc.fork(bad)
        out["w"] = yield sc.wait4(-1)

    kernel.spawn(root)
    kernel.run()
    assert "survived" not in out and out["w"][1] == 11


def test_pids_max_fork_fails_with_eagain(kernel):
    cg = _cg(kernel, "box", pids_max="3")
    out = {"forks": []}

    def child():
        yield sc.nanosleep(10**6)

    def parent():
        for _ in range(4):
            out["forks"].append((yield sc.fork(child)))
        while (yield sc.wait4(-1)) != -10:
            pass

    kernel.spawn(parent, cgroup=cg)
    kernel.run()
    assert [r > 0 for r in out["forks"]] == [True, True, False, False]
    assert out["forks"][2] == -11
    assert kernel.cgroups.read_file(cg, "pids.events") == "max 2\n"
    assert kernel.cgroups.read_file(cg, "pids.current") == "0\n"


def test_cpu_max_throttles_spinner(kernel):
    cg = _cg(kernel, "box", cpu_max="10000 100000")  # 10 ms per 100 ms

    def spin():
        yield sc.burn(50_000_000)  # 50 ms of CPU

    t = kernel.spawn(spin, cgroup=cg)
    kernel.run()
    st = _stat(kernel.cgroups.read_file(cg, "cpu.stat"))
    assert st["nr_throttled"] >= 4 and st["throttled_usec"] > 0
    assert 50_000 <= st["usage_usec"] <= 51_000
    assert kernel.now_ns() >= 400_000_000  # 5 quotas of 10 ms need at least 4 full periods
    assert t.dead


def test_cpu_weight_shares(kernel):
    a = _cg(kernel, "a", cpu_weight="200")
    b = kernel.cgroups.mkdir(kernel.cgroups.root, "b")

    def spin():
        yield sc.burn(10**12)

    kernel.spawn(spin, cgroup=a)
    kernel.spawn(spin, cgroup=b)
    kernel.spawn(spin, cgroup=b)  # the number of tasks in b does not matter
    kernel.run(until=600_000_000)
    ua = _stat(kernel.cgroups.read_file(a, "cpu.stat"))["usage_usec"]
    ub = _stat(kernel.cgroups.read_file(b, "cpu.stat"))["usage_usec"]
    assert abs(ua / ub - 2.0) < 0.1


def test_nice_weights_between_tasks(kernel):
    def spin():
        yield sc.burn(10**12)

    t0 = kernel.spawn(spin, nice=0)
    t5 = kernel.spawn(spin, nice=5)
    kernel.run(until=300_000_000)
    ratio = t0.process.cpu_ns / t5.process.cpu_ns
    assert abs(ratio - 1024 / 335) < 0.3


def test_cgroup_procs_through_the_filesystem(kernel):
    out = {}

    def prog():
        out["mk"] = yield sc.mkdirat(AT_FDCWD, "/sys/fs/cgroup/web", 0o755)
        fd = yield sc.openat(AT_FDCWD, "/sys/fs/cgroup/web/cgroup.procs", O_WRONLY)
        out["move"] = yield sc.write(fd, b"0")
        fd2 = yield sc.openat(AT_FDCWD, "/proc/self/cgroup", 0)
        out["cg"] = yield sc.read(fd2, 100)

    def root():
        yield sc.fork(prog)
        yield sc.wait4(-1)

    kernel.spawn(root)
    kernel.run()
    assert out["mk"] == 0 and out["move"] == 1 and out["cg"] == b"0::/web\n"


def _trace_run(seed: int) -> tuple[list, int]:
    k = Kernel(hostname="h")
    k.tracing = True

    def worker(n):
        for _ in range(n):
            yield sc.getpid()
            yield sc.burn(100_000)

    def root():
        for n in (3, 5, 7):
            yield sc.fork(worker, n)
        while (yield sc.wait4(-1)) != -10:
            pass

    k.spawn(root)
    k.run()
    return k.trace, k.world.now


def test_determinism_same_trace_and_cycles():
    assert _trace_run(0) == _trace_run(0)


def test_thawing_a_frozen_cgroup_runs_its_tasks_again():
    """cgroup.freeze 0 kicks idle CPUs, as the cpu.max refill does, so thawed tasks run."""
    k = Kernel(ncpus=2)  # the worker gets the other CPU, idle while frozen
    done: dict[str, int] = {}

    def worker():
        yield sc.burn(20_000_000)  # longer than a slice: the freeze stops it
        done["worker"] = k.world.now
        return 0

    def controller():
        yield sc.mkdirat(AT_FDCWD, "/sys/fs/cgroup/box")
        pid = yield sc.fork(worker)
        fd = yield sc.openat(AT_FDCWD, "/sys/fs/cgroup/box/cgroup.procs", O_WRONLY)
        yield sc.write(fd, str(pid))
        yield sc.close(fd)
        fd = yield sc.openat(AT_FDCWD, "/sys/fs/cgroup/box/cgroup.freeze", O_WRONLY)
        yield sc.write(fd, "1")
        yield sc.nanosleep(50_000_000)
        done["frozen_for"] = k.world.now
        yield sc.write(fd, "0")
        yield sc.close(fd)
        yield sc.wait4(pid)  # (pid 1 exiting would kill the worker)
        return 0

    k.spawn(controller)
    k.run()
    assert "worker" in done and done["worker"] > done["frozen_for"]
