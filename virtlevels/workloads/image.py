"""What a workload's ``build(**params)`` returns, and the checking of its parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from virtlevels.errors import ConfigError


@attrs.frozen
class WorkloadImage:
    """One built workload: what a level installs and runs, and what it must print.

    A level installs ``elf`` at ``argv[0]`` (mode 0755) and each of ``files`` at its path, then
    execs ``argv[0]`` with ``argv`` and fds 0-2 on a console; the run is correct when the process
    exits 0 and its stdout equals ``expected_stdout`` (None: not checked).
    """

    name: str
    elf: bytes
    argv: tuple[str, ...]
    files: dict[str, bytes] = attrs.field(factory=dict)
    expected_stdout: bytes | None = None
    #: What the level must offer beyond "an RV32 process": ``"net"`` = an IPv4 stack with
    #: sockets in the process's network namespace (the vnet plugin), ``"fork"`` = clone.
    needs: frozenset[str] = frozenset()
    #: The parameters it was built with (defaults filled in), for reports.
    params: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class IntParam:
    """An integer parameter with a default and an inclusive range."""

    default: int
    lo: int
    hi: int
    help: str = ""


def check_params(workload: str, spec: Mapping[str, IntParam], given: Mapping[str, Any],
                 presets: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, int]:
    """The parameters of ``workload`` with defaults filled in; a clear ConfigError for an unknown
    name, a value of the wrong type or out of range, or an unknown ``preset``."""
    given = dict(given)
    values = {name: p.default for name, p in spec.items()}
    preset = given.pop("preset", None)
    if preset is not None:
        presets = presets or {}
        if preset not in presets:
            raise ConfigError(
                f"workload {workload!r}: unknown preset {preset!r} (known: {', '.join(sorted(presets))})"
            )
        values.update(presets[preset])
    for name, value in given.items():
        if name not in spec:
            known = ", ".join(sorted(spec)) or "none"
            raise ConfigError(f"workload {workload!r}: unknown parameter {name!r} (known: {known})")
        p = spec[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"workload {workload!r}: parameter {name!r} must be an integer, got {value!r}")
        if not p.lo <= value <= p.hi:
            raise ConfigError(
                f"workload {workload!r}: parameter {name!r} must be in {p.lo}..{p.hi}, got {value}"
            )
        values[name] = value
    return values
