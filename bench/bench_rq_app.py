"""The no-op job bench_rq.py runs: the first and the last job write when they ran."""

from __future__ import annotations

import os
import time


def noop(index: int, last: int) -> None:
    if index in (0, last):
        with open(os.environ["BENCH_TIMES"], "a") as times:
            times.write(f"{index} {time.time()} {worker_cpu()}\n")


def worker_cpu() -> float:
    """The CPU seconds of the worker (this horse's parent) and of the horses it has reaped so
    far, from /proc (Linux); -1 elsewhere. Read at the first and the last job, it gives the
    CPU per job without the worker's start-up and shutdown."""
    try:
        with open(f"/proc/{os.getppid()}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return -1.0
    utime, stime, cutime, cstime = (int(field) for field in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def always_fails(index: int) -> None:
    """The job bench_actions.py makes fail, then retries in bulk."""
    raise RuntimeError(f"bench job {index} fails on purpose")
