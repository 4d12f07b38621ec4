"""Adams & Agesen (ASPLOS 2006) microbenchmarks: cycles per operation natively and under a VMM.

A tiny S-mode kernel (``mbkernel.S``, booted behind the SBI firmware like teachos) runs one of
syscall, in, out, cr8wr, call/ret, pgfault, divzero, ptemod in a loop; :func:`run_microbench`
turns the cycles of runs with N and 0 iterations into cycles per operation on any runner::

    from virtlevels_hypervisor.microbench import native_runner, run_microbench
    results = run_microbench(native_runner("2006-p4"), iterations=100)
    results["syscall"].net        # cycles per system call, the empty loop subtracted

docs/hypervisor-microbench.md describes the benchmarks, the method and the table.
"""

from __future__ import annotations

from .build import (
    BENCHMARKS,
    NULL_BENCHMARKS,
    Benchmark,
    base_image,
    benchmark,
    build_kernel,
    build_microbench,
    patch_words,
)
from .runner import (
    COLUMNS,
    DEFAULT_ITERATIONS,
    BenchResult,
    MicrobenchError,
    RunGuest,
    native_runner,
    net_table,
    per_iteration,
    register_column,
    run_columns,
    run_microbench,
    run_native,
    vm_runner,
)
from .table import PAPER, PaperRow, direction_checks, markdown_table

__all__ = [
    "BENCHMARKS",
    "COLUMNS",
    "DEFAULT_ITERATIONS",
    "NULL_BENCHMARKS",
    "PAPER",
    "BenchResult",
    "Benchmark",
    "MicrobenchError",
    "PaperRow",
    "RunGuest",
    "base_image",
    "benchmark",
    "build_kernel",
    "build_microbench",
    "direction_checks",
    "markdown_table",
    "native_runner",
    "net_table",
    "patch_words",
    "per_iteration",
    "register_column",
    "run_columns",
    "run_microbench",
    "run_native",
    "vm_runner",
]
