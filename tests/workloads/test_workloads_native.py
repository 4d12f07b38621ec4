"""Each standard workload on the simulated kernel on a physical machine: right output, exit 0,
the work it claims (system calls, faults, processes), deterministic cycles."""

from __future__ import annotations

from collections import Counter

import pytest
from workloads_util import native_kernel, run_native

from virtlevels.kernel.kernel import Kernel
from virtlevels.machine.board import virt_machine
from virtlevels.workloads import RunResult, WorkloadImage, run, standard_workloads
from virtlevels.world import World

NAMES = ["compute", "syscall", "fileio", "memory", "forkwait", "net", "startup"]
BUILD = {w.name: w.build for w in standard_workloads()}


def traced(image: WorkloadImage) -> tuple[Counter[str], Kernel, RunResult]:
    k = native_kernel(image)
    k.tracing = True
    r = run(k, image)
    return Counter(name for _t, _tid, name, _res in k.trace), k, r


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("engine", ["interp", "fast"])
def test_each_workload_prints_its_line_and_exits_0(name: str, engine: str) -> None:
    image = BUILD[name]()
    assert image.name == name and image.elf[:4] == b"\x7fELF" and image.argv[0] == f"/bin/{name}"
    assert image.expected_stdout is not None and image.expected_stdout.endswith(b"\n")
    r, k = run_native(image, engine)
    assert r.status == 0, r.stdout
    assert r.stdout == image.expected_stdout
    assert r.ok(image) and r.cycles > 0
    assert k.isa.frames.in_use == 0  # every process exited and gave its frames back
    assert [p for p in k.live_processes if p.host_pid != 1] == []


def test_the_same_run_twice_gives_the_same_cycles() -> None:
    for name in NAMES:
        a, ka = run_native(BUILD[name]())
        b, kb = run_native(BUILD[name]())
        assert (a.cycles, a.stdout) == (b.cycles, b.stdout), name
        assert ka.machine.stats()["instructions"] == kb.machine.stats()["instructions"], name
        assert ka.world.now == kb.world.now, name


def test_syscall_makes_the_getpid_calls_it_says() -> None:
    calls, _k, _r = traced(BUILD["syscall"](calls=57))
    assert calls["getpid"] == 58 and calls["write"] == 1 and calls["exit_group"] == 1


def test_fileio_writes_reads_and_removes_its_file() -> None:
    image = BUILD["fileio"](kib=5)
    calls, k, r = traced(image)
    assert r.ok(image)
    assert calls["write"] == 5 + 1 and calls["read"] == 5 + 1  # 5 blocks, the line; 5 blocks, EOF
    assert calls["openat"] == 1 and calls["lseek"] == 1 and calls["unlinkat"] == 1
    with pytest.raises(Exception, match="ENOENT|No such"):
        k.read_file("/tmp/vl-fileio.dat")


def test_memory_takes_one_fault_per_page() -> None:
    faults = []
    for pages in (10, 30):
        image = BUILD["memory"](pages=pages)
        r, k = run_native(image)
        assert r.ok(image)
        traps = k.machine.stats()["traps"]
        faults.append(traps.get("load_page_fault", 0) + traps.get("store_page_fault", 0))
    assert faults[1] - faults[0] == 20
    assert faults[0] >= 10


def test_forkwait_forks_and_reaps_each_child() -> None:
    image = BUILD["forkwait"](children=9)
    calls, k, r = traced(image)
    assert r.ok(image)
    assert calls["clone"] == 9 and calls["wait4"] == 9 + 1  # the children, and the test's waiter
    assert calls["exit"] == 9  # each child exits at once
    assert k.processes == []  # every child was reaped (and the waiter has exited)


def test_net_pings_over_loopback() -> None:
    image = BUILD["net"](pings=5, size=100)
    calls, _k, r = traced(image)
    assert r.ok(image), r.stdout
    assert r.stdout == b"net: 5 UDP round trips of 100 bytes over 127.0.0.1\n"
    assert calls["sendto"] == 10 and calls["recvfrom"] == 10  # 5 each way
    assert calls["socket"] == 2 and calls["bind"] == 1 and calls["clone"] == 1


def test_net_without_an_ip_stack_fails_cleanly() -> None:
    image = BUILD["net"]()
    world = World(entry_points=False)
    k = Kernel(world, machine=virt_machine(world=world), engine="fast")  # no vnet: socket(2) fails
    r = run(k, image)
    assert r.exit_code == 1 and r.stdout == b"FAIL 1\n" and not r.ok(image)


def test_startup_is_two_system_calls() -> None:
    calls, k, r = traced(BUILD["startup"]())
    assert +calls == Counter({"write": 1, "exit_group": 1, "wait4": 1})
    assert k.machine.stats()["instructions"] < 100  # 7 user instructions + the kernel's privileged ones
