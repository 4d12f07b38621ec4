"""Run the microbenchmarks on any level and turn total cycles into cycles per operation.

A *runner* is any ``run_guest(image) -> cycles``: it boots the image (natively, or in a VM under
some technique) and returns the cycles the whole run took on the machine's clock. It must raise if
the guest did not pass (the kernel checks its own results and fails the run otherwise).

For each benchmark we run the image twice, with ``N`` iterations and with 0, so boot, set-up and
shutdown cancel::

    per_op = (cycles(N) - cycles(0)) / N

``per_op`` still contains the loop's own instructions (a branch, a decrement, a jump); the empty
loop of the same privilege mode (``null-kernel`` / ``null-user``) measured the same way gives
``loop``, and ``net = per_op - loop`` is the operation alone (what the paper reports).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from virtlevels.cost import CostModel
from virtlevels.errors import ConfigError, VirtlevelsError
from virtlevels.machine.board import virt_machine
from virtlevels.machine.image import Image

from .build import BENCHMARKS, NULL_BENCHMARKS, Benchmark, Mode, benchmark, build_microbench

#: ``run_guest(image) -> cycles`` (an object with a ``cycles`` attribute is accepted too).
RunGuest = Callable[[Image], Any]
#: ``factory(profile, engine) -> RunGuest``: how a table column gets its runner.
ColumnFactory = Callable[[str, str], RunGuest]

DEFAULT_ITERATIONS = 100
MAX_INSTRUCTIONS = 50_000_000  # a limit per run, far above what 100k iterations need natively


class MicrobenchError(VirtlevelsError):
    """A microbenchmark guest did not pass (its kernel found a wrong result, or it never finished)."""


@attrs.frozen
class BenchResult:
    """Cycles per operation of one benchmark on one runner."""

    name: str
    mode: Mode
    iterations: int
    cycles_n: int  # the whole run with ``iterations`` operations (after the warm-up one)
    cycles_0: int  # the same run with none
    loop: float  # the empty loop's cycles per iteration in the same mode (0 when not subtracted)

    @property
    def per_op(self) -> float:
        """``(cycles(N) - cycles(0)) / N``: the operation plus one loop iteration."""
        return (self.cycles_n - self.cycles_0) / self.iterations

    @property
    def net(self) -> float:
        """The operation alone: ``per_op`` minus the empty loop's cycles per iteration."""
        return self.per_op - self.loop

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "mode": self.mode, "iterations": self.iterations, "cycles_n": self.cycles_n,
            "cycles_0": self.cycles_0, "per_op": self.per_op, "loop": self.loop, "net": self.net,
        }  # fmt: skip


def _cycles(run_guest: RunGuest, image: Image) -> int:
    out = run_guest(image)
    cycles = getattr(out, "cycles", out)
    if isinstance(cycles, bool) or not isinstance(cycles, int):
        raise MicrobenchError(f"{image.source}: the runner returned {out!r}, not a cycle count")
    return cycles


def per_iteration(run_guest: RunGuest, bench: Benchmark | str, iterations: int) -> tuple[int, int]:
    """``(cycles(N), cycles(0))`` of one benchmark."""
    b = benchmark(bench) if isinstance(bench, str) else bench
    with_n = _cycles(run_guest, build_microbench(b.name, iterations))
    return with_n, _cycles(run_guest, build_microbench(b.name, 0))


def run_microbench(
    run_guest: RunGuest,
    benches: Iterable[str] | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    *,
    subtract_loop: bool = True,
) -> dict[str, BenchResult]:
    """Cycles per operation of ``benches`` (default: all of :data:`BENCHMARKS`) on ``run_guest``.

    Returns ``{name: BenchResult}`` in the order given. With ``subtract_loop`` the empty loop of each
    mode used is measured too and ``BenchResult.net`` excludes it; otherwise ``loop`` is 0.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"microbenchmark iterations must be a positive integer, got {iterations!r}")
    chosen = [benchmark(n) for n in (BENCHMARKS if benches is None else benches)]
    loops: dict[Mode, float] = {}
    if subtract_loop:
        for mode in sorted({b.mode for b in chosen}):
            n_cycles, zero_cycles = per_iteration(run_guest, NULL_BENCHMARKS[mode], iterations)
            loops[mode] = (n_cycles - zero_cycles) / iterations
    results: dict[str, BenchResult] = {}
    for b in chosen:
        n_cycles, zero_cycles = per_iteration(run_guest, b, iterations)
        loop = loops.get(b.mode, 0.0)
        results[b.name] = BenchResult(b.name, b.mode, iterations, n_cycles, zero_cycles, loop)
    return results


# ---- runners ------------------------------------------------------------------------------------

def run_native(
    image: Image,
    *,
    profile: CostModel | str = "default",
    engine: str = "interp",
    max_instructions: int = MAX_INSTRUCTIONS,
) -> int:
    """Boot ``image`` on a fresh ``virt_machine()`` and return the run's cycles."""
    return run_to_pass(virt_machine(profile=profile), image, "native run", max_instructions, engine)


def run_to_pass(machine: Any, image: Image, what: str, max_instructions: int, engine: str = "interp") -> int:
    """Load ``image`` on ``machine`` (bare or a VM), run it, and return the run's cycles; a guest
    that does not pass raises :class:`MicrobenchError` naming ``what`` ran and its console."""
    machine.load(image)
    result = machine.run(max_instructions, engine=engine)
    if result.status != "pass":
        raise MicrobenchError(
            f"{image.source}: {what} ended {result.status} (exit code {result.exit_code}); "
            f"console: {result.uart.strip()!r}"
        )
    return int(result.cycles)


def native_runner(profile: CostModel | str = "default", engine: str = "interp") -> RunGuest:
    """A ``run_guest`` that boots natively with ``profile`` and ``engine``."""

    def run_guest(image: Image) -> int:
        return run_native(image, profile=profile, engine=engine)

    return run_guest


def vm_runner(
    technique: str,
    profile: CostModel | str = "default",
    engine: str = "interp",
    *,
    mode: str = "native",
    max_instructions: int = MAX_INSTRUCTIONS,
) -> RunGuest:
    """A ``run_guest`` that boots the image in a fresh VM under ``technique`` on a native host
    (``Hypervisor(virt_machine(profile)).create_vm(technique)``) and returns the VM run's cycles.

    The hypervisor is imported when the runner first runs, so a column whose technique is not
    built yet fails with that technique's import error, not at registration.
    """

    def run_guest(image: Image) -> int:
        from virtlevels_hypervisor.equivalence import host_machine
        from virtlevels_hypervisor.hypervisor import Hypervisor

        # The board the technique needs (the H extension for hardware-assisted).
        host = host_machine(None, technique, profile=profile if isinstance(profile, str) else "default")
        if not isinstance(profile, str):
            host.cost = profile
        vm = Hypervisor(host, mode=mode).create_vm(technique, profile=host.cost)
        return run_to_pass(vm, image, f"run under {technique!r}", max_instructions, engine)

    return run_guest


#: Table columns by name: ``factory(profile, engine) -> run_guest``. ``native`` boots on the bare
#: machine; the technique columns use :func:`vm_runner` (the lead may replace them with
#: :func:`register_column`, e.g. to add hosted mode or nested columns).
def _technique_column(technique: str) -> ColumnFactory:
    def factory(profile: str, engine: str) -> RunGuest:
        return vm_runner(technique, profile, engine)

    return factory


def _nested_column(profile: str, engine: str) -> RunGuest:
    from virtlevels_hypervisor.nested import nested_runner

    return nested_runner("trap", "trap", profile=profile)


# No "pv" column: the microbenchmark kernel has no paravirtual build, and an unmodified kernel
# under the PV technique is simply trap-and-emulate.
COLUMNS: dict[str, ColumnFactory] = {"native": native_runner}
COLUMNS.update({t: _technique_column(t) for t in ("emulate", "trap", "bt", "hw")})
COLUMNS["trap-in-trap"] = _nested_column


def register_column(name: str, factory: ColumnFactory, *, replace: bool = False) -> None:
    """Add a table column (``factory(profile, engine) -> run_guest``)."""
    if name in COLUMNS and not replace:
        raise ConfigError(f"microbenchmark column {name!r} already exists (pass replace=True)")
    COLUMNS[name] = factory


def run_columns(
    columns: Iterable[str],
    *,
    profile: str = "default",
    engine: str = "interp",
    benches: Iterable[str] | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    subtract_loop: bool = True,
) -> dict[str, dict[str, BenchResult]]:
    """``{column: run_microbench(...)}`` for named columns of :data:`COLUMNS`."""
    names = list(columns)
    for name in names:
        if name not in COLUMNS:
            raise ConfigError(f"unknown microbenchmark column {name!r} (known: {', '.join(COLUMNS)})")
    chosen = None if benches is None else list(benches)
    return {
        name: run_microbench(COLUMNS[name](profile, engine), chosen, iterations, subtract_loop=subtract_loop)
        for name in names
    }


def net_table(results: Mapping[str, Mapping[str, BenchResult]]) -> dict[str, dict[str, float]]:
    """``{column: {bench: net cycles per op}}``."""
    return {col: {name: r.net for name, r in rows.items()} for col, rows in results.items()}
