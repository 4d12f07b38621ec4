"""What the lab graders use: the machine's real CSR semantics, the sandbox's filter evaluation and
the kernel's cgroups. Graders import this module; students do not need to."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from types import ModuleType
from typing import Any

M32 = 0xFFFFFFFF

# -- lab csr-handler ------------------------------------------------------------------------------
#: The virtual supervisor CSRs the lab's VMM keeps, by number (Priv 4.1).
CSRS = {0x100: "sstatus", 0x140: "sscratch", 0x141: "sepc", 0x142: "scause", 0x143: "stval", 0x180: "satp"}


def warl_masks() -> dict[int, int]:
    """Writable bits of each lab CSR, from the machine's CSR file (virtlevels.machine.csr)."""
    from virtlevels.machine.csr import SSTATUS_WMASK

    return {0x100: SSTATUS_WMASK, 0x140: M32, 0x141: M32 & ~3, 0x142: M32, 0x143: M32, 0x180: M32}


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def encode_csr(funct3: int, rd: int, rs1: int, csr: int) -> int:
    """A SYSTEM-opcode Zicsr instruction (Unpriv 9.1): csr | rs1/uimm | funct3 | rd | 1110011."""
    return csr << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | 0x73


def random_cases(seed: int, n: int) -> list[tuple[int, list[int], dict[int, int]]]:
    """(instruction word, registers, CSR values as the machine reads them back) test cases."""
    r = random.Random(seed)
    cases = []
    for _ in range(n):
        funct3 = r.choice([1, 2, 3, 5, 6, 7])
        rd, rs1 = r.choice([0, 5, 6, 10, 31]), r.choice([0, 0, 7, 11, 28, 3])
        word = encode_csr(funct3, rd, rs1, r.choice(sorted(CSRS)))
        regs = [0] + [r.getrandbits(32) for _ in range(31)]
        init = {num: r.getrandbits(32) for num in CSRS}
        cases.append((word, regs, machine_csrs(init)))
    return cases


def _hart(values: dict[int, int]) -> Any:
    from virtlevels.machine.machine import PhysicalMachine

    machine = PhysicalMachine(ram_size=1 << 16, with_clint=False, name="lab-csr")
    hart = machine.harts[0]
    for num, v in values.items():
        hart.csr.write(num, v)
    hart.set_priv(1)  # the guest kernel's privilege: S-mode
    hart.context_changed()
    return hart


def machine_csrs(values: dict[int, int]) -> dict[int, int]:
    """What the CSRs read after writing ``values`` (WARL applied by the machine)."""
    hart = _hart(values)
    return {num: hart.csr.read(num) for num in CSRS}


def run_on_machine(word: int, regs: list[int], csrs: dict[int, int]) -> tuple[list[int], dict[int, int]]:
    """Execute ``word`` on a real hart in S-mode: the registers and CSRs afterwards."""
    hart = _hart(csrs)
    for i in range(1, 32):
        hart.x[i] = regs[i]
    from virtlevels.machine.isa.table import InstructionTable

    op, _cls = InstructionTable().decode(word)  # the machine's own instruction semantics
    op(hart, hart.x, 0x8000_0000)
    return list(hart.x), {num: hart.csr.read(num) for num in CSRS}


# -- lab seccomp-profile --------------------------------------------------------------------------
SPEC_ALLOW = ("read", "write", "close", "exit_group", "getpid", "brk", "mmap", "munmap")
SPEC_EPERM = ("mkdirat", "unlinkat", "chroot", "setuid")
SPEC_KILL_SAMPLES = ("execve", "clone", "mount", "kill", "openat", "uname")


def decide(doc: dict[str, Any], name: str) -> int:
    """The seccomp return value the profile gives ``name`` (the sandbox's BPF when installed)."""
    from virtlevels.exercises.seccomp import decider

    return int(decider(doc)[0](name))


def load_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


# -- lab cgroup-slo ---------------------------------------------------------------------------------
LATENCY_MIN_SHARE = 0.75  # the latency service's CPU share under contention
LATENCY_PAGES = 24  # the latency service's working set
BATCH_TOUCHES = 400  # pages the batch job tries to touch (a leak)
BATCH_MAX_PAGES = 128  # the batch job must be contained at or below this


def apply_config(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A kernel with /latency and /batch configured from ``config`` through the cgroup files."""
    from virtlevels.kernel.kernel import Kernel
    from virtlevels.world import World

    k = Kernel(World(0))
    h = k.cgroups
    h.set_subtree_control(h.root, {"cpu", "memory"}, set())
    cgs = {}
    for name in ("latency", "batch"):
        cg = cgs[name] = h.mkdir(h.root, name)
        for file, value in dict(config.get(name, {})).items():
            h.write_file(cg, file, str(value), k.init_creds)
    return k, cgs


def cpu_shares(config: dict[str, Any]) -> dict[str, float]:
    from virtlevels.exercises.cgroups import _usage
    from virtlevels.kernel import scripted as sc

    k, cgs = apply_config(config)

    def init():  # type: ignore[no-untyped-def]
        yield sc.wait4(-1)

    def spin():  # type: ignore[no-untyped-def]
        yield sc.burn(10**15)

    k.spawn(init)
    k.spawn(spin, cgroup=cgs["latency"])
    for _ in range(3):
        k.spawn(spin, cgroup=cgs["batch"])
    k.run(until=k.world.now + 300_000_000)
    usage = {n: _usage(k.cgroups.read_file(cg, "cpu.stat")) for n, cg in cgs.items()}
    total = sum(usage.values()) or 1
    return {n: u / total for n, u in usage.items()}


def memory_run(config: dict[str, Any]) -> dict[str, Any]:
    """The latency service holds its working set while the batch job leaks; who survives?"""
    from virtlevels.kernel import scripted as sc
    from virtlevels.kernel.mm import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE

    k, cgs = apply_config(config)
    done: dict[str, bool] = {}

    def init():  # type: ignore[no-untyped-def]
        yield sc.wait4(-1)
        yield sc.wait4(-1)

    def toucher(name: str, pages: int):  # type: ignore[no-untyped-def]
        addr = yield sc.mmap(0, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        yield sc.touch(addr, pages * 4096)
        yield sc.burn(20_000_000)
        done[name] = True

    k.spawn(init)
    k.spawn(lambda: toucher("latency", LATENCY_PAGES), cgroup=cgs["latency"])
    k.spawn(lambda: toucher("batch", BATCH_TOUCHES), cgroup=cgs["batch"])
    k.run(until=k.world.now + 1_000_000_000)
    peak = int(k.cgroups.read_file(cgs["batch"], "memory.peak"))
    return {"latency_survived": done.get("latency", False), "batch_survived": done.get("batch", False),
            "batch_peak_pages": peak // 4096}  # fmt: skip
