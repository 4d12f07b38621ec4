"""Where the matrix runs: serially, in local processes (``--jobs N``) or on a Dask cluster.

Each job builds its own World from its own seed (:func:`virtlevels.compare.runner.run_job`), so
the results do not depend on the executor, the order or the worker that ran them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from virtlevels.compare.runner import Job, run_job
from virtlevels.errors import ConfigError

Progress = Callable[[int, int, Job], None]


def run_jobs(
    jobs: Sequence[Job],
    *,
    jobs_n: int = 1,
    executor: str | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Results in the order of ``jobs``."""
    total = len(jobs)
    results: list[dict[str, Any] | None] = [None] * total
    done = 0

    def tick(i: int, r: dict[str, Any]) -> None:
        nonlocal done
        results[i] = r
        done += 1
        if progress is not None:
            progress(done, total, jobs[i])

    if executor in (None, "local", "serial", "processes"):
        if jobs_n < 1:
            raise ConfigError(f"--jobs must be at least 1, got {jobs_n}")
        if jobs_n == 1 or total <= 1:
            for i, job in enumerate(jobs):
                tick(i, run_job(job))
        else:
            import concurrent.futures as cf
            import multiprocessing as mp

            # spawn: a fresh interpreter per worker, nothing inherited from the parent's state.
            with cf.ProcessPoolExecutor(max_workers=jobs_n, mp_context=mp.get_context("spawn")) as pool:
                futures = {pool.submit(run_job, job): i for i, job in enumerate(jobs)}
                for fut in cf.as_completed(futures):
                    tick(futures[fut], fut.result())
    elif executor == "dask":
        try:
            from dask.distributed import Client, as_completed
        except ImportError:
            raise ConfigError(
                "--executor dask needs dask[distributed]: pip install 'virtlevels[dask]'"
            ) from None
        if scheduler is None:
            raise ConfigError("--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
        with Client(scheduler) as client:
            futures = client.map(run_job, list(jobs), pure=False)
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in as_completed(futures):
                tick(index[fut.key], fut.result())
    else:
        raise ConfigError(f"unknown executor {executor!r} (local or dask)")
    return [r for r in results if r is not None]
