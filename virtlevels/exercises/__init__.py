"""Coursework: seeded exercises (OSTEP homework style) and graded labs, across the levels.

Every exercise is a :class:`virtlevels.registry.Exercise` registered by the core's built-in
plugin; ``generate(seed)`` returns a :class:`Problem`, ``solve(seed)`` an :class:`Answer`. The
same seed gives the same problem and answer on every machine. See docs/coursework.md."""

from __future__ import annotations

from virtlevels.exercises import cgroups, exits, namespaces, nat, pg, seccomp, shadow, vlan
from virtlevels.exercises.base import Answer, Problem
from virtlevels.registry import Exercise

EXERCISES: tuple[Exercise, ...] = (
    Exercise(pg.NAME, "hardware", "Popek-Goldberg classification of a random instruction set",
             pg.generate, pg.solve),
    Exercise(shadow.NAME, "hardware", "shadow page-table entries for a guest Sv32 table and a gPA->hPA map",
             shadow.generate, shadow.solve),
    Exercise(exits.NAME, "hardware", "VM exits of a small guest: trap-and-emulate vs hardware assistance",
             exits.generate, exits.solve),
    Exercise(cgroups.NAME, "os", "cgroup v2 cpu.weight shares and memory.max OOM victims",
             cgroups.generate, cgroups.solve),
    Exercise(namespaces.NAME, "os", "pids, hostnames and visible processes in nested namespaces",
             namespaces.generate, namespaces.solve),
    Exercise(seccomp.NAME, "process", "seccomp filter decisions for a Docker-format profile",
             seccomp.generate, seccomp.solve),
    Exercise(vlan.NAME, "service", "host reachability across VLANs, a trunk and a router",
             vlan.generate, vlan.solve),
    Exercise(nat.NAME, "service", "conntrack entries for SNAT and DNAT flows",
             nat.generate, nat.solve),
)  # fmt: skip

__all__ = ["EXERCISES", "Answer", "Problem"]
