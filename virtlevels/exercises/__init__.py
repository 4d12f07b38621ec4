"""Coursework: seeded exercises (OSTEP homework style) and graded labs, across the levels.

Every exercise is a :class:`virtlevels.registry.Exercise` registered by the core's built-in
plugin; ``generate(seed)`` returns a :class:`Problem`, ``solve(seed)`` an :class:`Answer`. The
same seed gives the same problem and answer on every machine. See docs/coursework.md."""

from __future__ import annotations

from types import ModuleType

from virtlevels.exercises import cgroups, exits, namespaces, nat, pg, seccomp, shadow, vlan
from virtlevels.exercises.base import Answer, Problem
from virtlevels.registry import Exercise


def _exercise(module: ModuleType, level: str, help: str) -> Exercise:
    """An exercise module (``NAME``, ``generate``, ``solve``) as a registry entry."""
    return Exercise(module.NAME, level, help, module.generate, module.solve)


EXERCISES: tuple[Exercise, ...] = (
    _exercise(pg, "hardware", "Popek-Goldberg classification of a random instruction set"),
    _exercise(shadow, "hardware", "shadow page-table entries for a guest Sv32 table and a gPA->hPA map"),
    _exercise(exits, "hardware", "VM exits of a small guest: trap-and-emulate vs hardware assistance"),
    _exercise(cgroups, "os", "cgroup v2 cpu.weight shares and memory.max OOM victims"),
    _exercise(namespaces, "os", "pids, hostnames and visible processes in nested namespaces"),
    _exercise(seccomp, "process", "seccomp filter decisions for a Docker-format profile"),
    _exercise(vlan, "service", "host reachability across VLANs, a trunk and a router"),
    _exercise(nat, "service", "conntrack entries for SNAT and DNAT flows"),
)

__all__ = ["EXERCISES", "Answer", "Problem"]
