"""The figures tests and benchmarks print: percentiles of samples, and a process's memory.

Owns the one definition of a percentile (nearest rank, as every report of ours quotes it) and
the one way a process's resident memory and CPU time, and a thread's CPU time, page faults and
wake-ups, are read (Linux `/proc`). Never asserts on a figure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """The sample at rank `q` (0..1) of `values`, nearest rank from below; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of process `pid` (this one when None) in bytes.

    Raises OSError when the process is gone.
    """
    where = "self" if pid is None else str(pid)
    with open(f"/proc/{where}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def cpu_seconds(pid: int | None = None, *, children: bool = False) -> float:
    """CPU time (user + system) process `pid` (this one when None) has used, in seconds; with
    `children`, also that of its children it has waited for (a worker's reaped work horses).

    Raises OSError when the process is gone.
    """
    where = "self" if pid is None else str(pid)
    with open(f"/proc/{where}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / CLOCK_TICKS


def thread_counters(tid: int | None = None) -> tuple[int, float, int]:
    """A thread of this process (its main thread when None): minor page faults, CPU seconds
    (user + system) and voluntary context switches (its wake-ups), from `/proc`.

    Raises OSError when the thread is gone.
    """
    where = "self" if tid is None else f"self/task/{tid}"
    with open(f"/proc/{where}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{where}/status") as status:
        switches = next(ln for ln in status if ln.startswith("voluntary_ctxt_switches"))
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return int(fields[7]), cpu, int(switches.split()[1])  # minflt first


def rss_mib(pid: int | None = None) -> float:
    return rss_bytes(pid) / 2**20


def rss_kib(pid: int | None = None) -> int:
    return rss_bytes(pid) // 1024


def process_group(pgid: int) -> list[int]:
    """The live processes of process group `pgid`, leader first: a worker started in a session
    of its own and every process it forked (a prefork pool, a job's work horse)."""
    members: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # state, ppid, pgrp
            members.append(int(entry))
    return sorted(members, key=lambda pid: (pid != pgid, pid))


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, value) points, per minute; 0 for fewer than two."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread_t = sum((t - mean_t) ** 2 for t, _ in points)
    if spread_t == 0:
        return 0.0
    return 60.0 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread_t
