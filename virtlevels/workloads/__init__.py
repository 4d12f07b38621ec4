"""The standard workloads: RV32 Linux programs that run unchanged at every level (docs/workloads.md).

Each is a :class:`virtlevels.registry.Workload` whose ``build(**params)`` returns a
:class:`WorkloadImage` (the ELF, its argv, files, the stdout it must print, what it needs).
The core's built-in plugin registers them (hook ``virtlevels_register_workloads``); plugins
add theirs the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from virtlevels.registry import Workload
from virtlevels.workloads import compute, fileio, forkwait, memory, net, startup, syscall
from virtlevels.workloads.image import IntParam, WorkloadImage
from virtlevels.workloads.run import RunResult, install, run

_MODULES: tuple[tuple[str, Any, str, tuple[str, ...]], ...] = (
    ("compute", compute, "CoreMark-like integer kernel: list, matrix, state machine, CRC-16", ("cpu",)),
    ("syscall", syscall, "getpid(2) loop: the null system call", ("kernel", "syscall")),
    ("fileio", fileio, "write a file in 1 KiB blocks, read it back and verify it", ("kernel", "io")),
    ("memory", memory, "mmap anonymous pages and touch each once: demand-paging faults", ("memory",)),
    ("forkwait", forkwait, "fork a child that exits and wait for it, N times (Adams & Agesen)",
     ("kernel", "process")),
    ("net", net, "UDP ping-pong between two processes over 127.0.0.1", ("net",)),
    ("startup", startup, "a minimal process: time to its first user instruction", ("startup",)),
)


def _builder(module: Any) -> Callable[..., WorkloadImage]:
    build: Callable[..., WorkloadImage] = module.build
    return build


def standard_workloads() -> list[Workload]:
    """The seven standard workloads, in a stable order."""
    return [Workload(name, desc, _builder(mod), tags) for name, mod, desc, tags in _MODULES]


def parameters(name: str) -> dict[str, IntParam]:
    """The parameters a standard workload accepts (name -> IntParam with default and range)."""
    for wname, mod, _d, _t in _MODULES:
        if wname == name:
            return dict(mod.PARAMS)
    raise KeyError(name)


__all__ = ["IntParam", "RunResult", "WorkloadImage", "install", "parameters", "run", "standard_workloads"]
