"""Fault benchmarks: what each fault of tests/reliability costs, at full counts.

    python bench/bench_faults.py                  # every scenario, full counts
    python bench/bench_faults.py --quick          # the test suite's counts
    python bench/bench_faults.py --only cut,blackhole --json figures.json

Scenarios (real brain, agent and Huey processes; a TCP proxy injects the fault):
- cut: the agent<->brain link reset (RST both ways) while batches are in flight, 5 times
  in quick succession (the reconnect backoff grows), then 5 times 11 s apart (each from a
  stable session); recovery = from the cut to the agent's next session.
- blackhole: every byte dropped both ways for 10 s (a half-open link); detect = from the hole
  to the agent dropping the link, recovery = from the path's return to the next session; the
  agent's RSS and events held in memory while blackholed.
- blackhole-bounded: the same with a 200 kB spool: what the agent drops is counted and reported.
- sigstop: the brain SIGSTOPped for 10 s, then SIGCONTed.
- latency: a worker loop (3 emits around ~1 ms of work per task) with the brain healthy vs
  blackholed: task latency p50/p99/max and the slowest single emit.
- shutdown: `agent.stop(T)` while blackholed with events pending, for T = 0.5, 2, 5 s; and a
  Huey consumer SIGTERMed while its brain drops everything it sends (drain timeout 2 s) vs
  healthy.
- skew: agents 7 minutes ahead and behind the brain: events, acks and fires.
- postgres: two brains on Postgres through the proxy, a per-second schedule into a Huey sink;
  every brain<->Postgres connection reset 5 times, or blackholed 5 s then reset 3 times;
  recovery = from the path's return to the next slot fired.

Every scenario also reports events lost and stored twice (must be 0) and slots doubled (must
be 0). Needs Postgres on 127.0.0.1:5432 (trust) for `postgres`. Figures are printed (and
written with --json), never asserted; say how loaded the machine was when you quote them.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from z4j_core.testing.faults import engine as engine_faults
from z4j_core.testing.faults import link as link_faults
from z4j_core.testing.faults.harness import print_figure

SCENARIOS = ("cut", "blackhole", "sigstop", "latency", "shutdown", "skew", "postgres")


def run(quick: bool, only: set[str]) -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = []
    root = Path(tempfile.mkdtemp(prefix="z4j-bench-faults-"))
    step = iter(range(1000))

    def record(scenario: str, measure: Callable[[Path], dict[str, Any]]) -> None:
        workdir = root / f"{next(step):02d}-{scenario.replace(' ', '-')}"
        began = time.monotonic()
        result = measure(workdir)
        result = {"scenario": scenario, **result, "took_s": time.monotonic() - began}
        print_figure(scenario, **{k: v for k, v in result.items() if k != "scenario"})
        figures.append(result)

    if "cut" in only:
        count, cuts = (10_000, 2) if quick else (50_000, 5)
        record("cut mid-batch", lambda w: link_faults.cut_mid_batch(w, count, 2500, cuts))
        if not quick:  # each cut after a stable session: the backoff starts from zero
            record(
                "cut mid-batch, 11 s apart",
                lambda w: link_faults.cut_mid_batch(w, 160_000, 2500, 5, spacing=11),
            )
    if "blackhole" in only:
        small = {"Z4J_MAX_MEMORY_EVENTS": "1000"}
        hole = 6.0 if quick else 10.0
        record(
            "blackhole",
            lambda w: link_faults.blackhole(
                w, count=30_000, rate=2500, hole_seconds=hole, extra_env=small
            ),
        )
        bounded = {**small, "Z4J_MAX_SPOOL_BYTES": "200000"}
        record(
            "blackhole past the spool bound",
            lambda w: link_faults.blackhole(
                w, count=30_000, rate=2500, hole_seconds=hole, extra_env=bounded
            ),
        )
    if "sigstop" in only:
        seconds = 6.0 if quick else 10.0
        record("brain SIGSTOP", lambda w: link_faults.brain_stopped(w, 20_000, 1500, seconds))
    if "latency" in only:
        tasks = 1500 if quick else 5000
        for hole in (False, True):
            record(
                "worker loop " + ("blackholed" if hole else "healthy"),
                lambda w, h=hole: link_faults.host_latency(w, tasks, hole=h),
            )
    if "shutdown" in only:
        for timeout in (0.5, 2.0) if quick else (0.5, 2.0, 5.0):
            record(
                f"stop({timeout}) while blackholed",
                lambda w, t=timeout: link_faults.shutdown_while_blackholed(w, drain_timeout=t),
            )
        for hole in (False, True):
            record(
                "huey SIGTERM " + ("blackholed" if hole else "healthy"),
                lambda w, h=hole: engine_faults.worker_stop_while_blackholed(w, 2.0, hole=h),
            )
    if "skew" in only:
        for offset in (-420.0, 420.0):
            record(
                f"clock skew {offset:+.0f} s", lambda w, o=offset: engine_faults.clock_skew(w, o)
            )
    if "postgres" in only:
        from z4j_core.testing.postgres import temporary_database

        for mode, faults in (("cut", 2 if quick else 5), ("blackhole", 1 if quick else 3)):
            with temporary_database("benchfaults") as database:
                record(
                    f"postgres {mode}",
                    lambda w, d=database, m=mode, n=faults: engine_faults.postgres_cut(
                        w, d, faults=n, mode=m, outage=5.0
                    ),
                )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the test suite's counts")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    options = parser.parse_args()
    only = {name.strip() for name in options.only.split(",") if name.strip()}
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(sorted(unknown))}; use {', '.join(SCENARIOS)}"
        )
    print(f"load average before: {os.getloadavg()}", flush=True)
    figures = run(options.quick, only)
    print(f"load average after: {os.getloadavg()}", flush=True)
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
