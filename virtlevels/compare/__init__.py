"""The comparison harness: every workload at every level, in one Report (issue 8).

``virtlevels.compare.compare(...)`` (also callable as ``virtlevels.compare(...)``) returns a
:class:`~virtlevels.compare.report.Report`; ``virtlevels compare`` is the CLI.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any

from virtlevels.compare.executor import Progress, run_jobs
from virtlevels.compare.levels import LevelError, LevelSpec, installed_levels, parse_level
from virtlevels.compare.report import Report, schema
from virtlevels.compare.runner import Job, run_job
from virtlevels.errors import ConfigError


def compare(
    workloads: Iterable[Any] | None = None,
    levels: Iterable[str] | None = None,
    profile: str = "default",
    jobs: int = 1,
    executor: str | None = None,
    *,
    scheduler: str | None = None,
    isa: str | None = None,
    seed: int = 0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Progress | None = None,
    world: Any = None,
) -> Report:
    """Run ``workloads`` (names or Workload objects; default: every registered one) at ``levels``
    (spec strings; default: every installed level). ``native`` is always run: it is the baseline."""
    from virtlevels.world import World

    w = world if world is not None else World(seed)
    registry = w.registry
    if profile not in registry.cost_profiles:
        raise ConfigError(f"unknown cost profile {profile!r} (known: {', '.join(registry.cost_profiles)})")
    if isa is not None and isa not in registry.isa_extensions:
        raise ConfigError(f"unknown ISA profile {isa!r} (known: {', '.join(registry.isa_extensions)})")
    chosen: list[tuple[str, Any]] = []
    for item in workloads if workloads is not None else list(registry.workloads) or ["hello"]:
        if isinstance(item, str):
            from virtlevels.compare.probes import PROBES

            if item not in registry.workloads and item not in PROBES:
                known = sorted(set(registry.workloads) | set(PROBES))
                raise ConfigError(f"unknown workload {item!r} (known: {', '.join(known)})")
            chosen.append((item, None))
        else:
            chosen.append((item.name, item))
    specs = [parse_level(t) for t in (levels if levels is not None else installed_levels(registry.backends))]
    for spec in specs:
        missing = [b for b in spec.backends if b not in registry.backends]
        if missing:
            raise LevelError(f"level {spec.text!r} needs the {missing[0]!r} backend, which is not installed")
    names = [s.text for s in specs]
    if "native" not in names:
        names.insert(0, "native")
    all_params = params or {}
    job_list = [
        Job(wl, lv, profile, isa, seed, tuple(sorted(dict(all_params.get(wl, {})).items())), source)
        for wl, source in chosen
        for lv in names
    ]
    raw = run_jobs(job_list, jobs_n=jobs, executor=executor, scheduler=scheduler, progress=progress)
    return Report.build([n for n, _ in chosen], names, profile, isa, seed, raw)


class _CallableModule(types.ModuleType):
    """Lets ``virtlevels.compare(...)`` call :func:`compare` while the package stays importable."""

    def __call__(self, *args: Any, **kwargs: Any) -> Report:
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "Job", "LevelError", "LevelSpec", "Report", "compare", "installed_levels", "parse_level", "run_job",
    "schema",
]  # fmt: skip
