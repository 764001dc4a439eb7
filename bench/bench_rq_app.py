"""The no-op job bench_rq.py runs: the first and the last job write when they ran."""

from __future__ import annotations

import os
import time

from z4j_core.testing.stats import cpu_seconds


def noop(index: int, last: int) -> None:
    if index in (0, last):
        with open(os.environ["BENCH_TIMES"], "a") as times:
            times.write(f"{index} {time.time()} {worker_cpu()}\n")


def worker_cpu() -> float:
    """The CPU seconds of the worker (this horse's parent) and of the horses it has reaped so
    far, from /proc (Linux); -1 elsewhere. Read at the first and the last job, it gives the
    CPU per job without the worker's start-up and shutdown."""
    try:
        return cpu_seconds(os.getppid(), children=True)
    except OSError:
        return -1.0


def always_fails(index: int) -> None:
    """The job bench_actions.py makes fail, then retries in bulk."""
    raise RuntimeError(f"bench job {index} fails on purpose")
