"""A thousand agents reconnecting at once after a brain restart: how the storm spreads, how the
brain answers during it, and when the last agent is back.

    python bench/bench_storm.py                      # 1,000 agents in 4 processes, SQLite
    python bench/bench_storm.py --agents 200 --hosts 2
    python bench/bench_storm.py --database-url postgresql://127.0.0.1/test --json storm.json

Each simulated agent is a real `Link` (the agent's own connection class: backoff with full
jitter, real token, signed handshake, an event batch per session); several hundred share one
process's event loop (`z4j_core/testing/storm_host.py`). The brain is a real `z4j brain serve`
process, stopped with SIGTERM and started again on the same port and database. Prints figures;
asserts nothing (the CI test is `tests/soak/test_storm.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from z4j_core.testing.stats import percentile
from z4j_core.testing.storm import StormResult, run_storm


def histogram(delays: list[float], width: float = 1.0) -> list[tuple[float, int]]:
    """(bucket start, agents reconnected in [start, start + width)) up to the last agent."""
    if not delays:
        return []
    buckets = [0] * (int(max(0.0, delays[-1]) // width) + 1)
    for delay in delays:
        buckets[int(max(0.0, delay) // width)] += 1
    return [(i * width, n) for i, n in enumerate(buckets)]


def figures(result: StormResult) -> dict[str, Any]:
    delays = result.reconnect_delays
    last_back = max(result.reopens.values())
    during = [p for p in result.probes_after_back() if p.t <= last_back]
    answered_after = [p for p in result.probes_after_back() if p.latency is not None]
    latency: dict[str, Any] = {}
    for route in sorted({p.route for p in result.probes}):
        values = [p.latency for p in during if p.route == route and p.latency is not None]
        latency[route] = {
            "probes": len([p for p in during if p.route == route]),
            "answered": len(values),
            "p50_ms": 1000 * percentile(values, 0.5) if values else None,
            "p99_ms": 1000 * percentile(values, 0.99) if values else None,
            "max_ms": 1000 * max(values) if values else None,
        }
    before = [p.latency for p in result.probes if p.t < result.sigterm_at and p.latency is not None]
    attempts = [max(0, a["connects"] - 1) for a in result.finals]
    stored = sum(result.events_by_agent.values())
    return {
        "agents": result.agents,
        "hosts": result.hosts,
        "stop_seconds": result.down_at - result.sigterm_at,
        "stop_exit_code": result.exit_code,
        "all_disconnected_s": (
            None if result.disconnected_at is None else result.disconnected_at - result.sigterm_at
        ),
        "restart_seconds": result.back_at - result.down_at,
        "reconnect_p50_s": percentile(delays, 0.5),
        "reconnect_p90_s": percentile(delays, 0.9),
        "reconnect_p99_s": percentile(delays, 0.99),
        "reconnect_max_s": delays[-1],
        "sigterm_to_all_back_s": last_back - result.sigterm_at,
        "histogram_1s": histogram(delays),
        "probe_latency_during_storm": latency,
        "probe_latency_before_ms": 1000 * statistics.median(before) if before else None,
        "probes_unanswered_after_back": len(result.probes_after_back()) - len(answered_after),
        "connect_attempts_per_agent": {
            "median": statistics.median(attempts) if attempts else None,
            "max": max(attempts) if attempts else None,
        },
        "events_stored": stored,
        "events_expected": 2 * result.agents,
        "agents_with_two_events": sum(1 for n in result.events_by_agent.values() if n == 2),
    }


def report(found: dict[str, Any]) -> None:
    agents = found["agents"]
    print(f"reconnect storm: {agents} agents in {found['hosts']} processes")
    dropped = found["all_disconnected_s"]
    print(
        f"  brain stop: SIGTERM to every agent disconnected "
        f"{'-' if dropped is None else f'{dropped:.2f}'} s, to exit {found['stop_seconds']:.2f} s "
        f"(exit code {found['stop_exit_code']}); restart (exit to back) "
        f"{found['restart_seconds']:.2f} s"
    )
    print(
        f"  reconnect after the brain is back: p50 {found['reconnect_p50_s']:.2f} s, "
        f"p90 {found['reconnect_p90_s']:.2f} s, p99 {found['reconnect_p99_s']:.2f} s, "
        f"max {found['reconnect_max_s']:.2f} s"
    )
    print(f"  every agent back {found['sigterm_to_all_back_s']:.2f} s after the SIGTERM")
    print("  reconnects per second after the brain is back:")
    peak = max(n for _, n in found["histogram_1s"])
    for start, count in found["histogram_1s"]:
        bar = "#" * max(1 if count else 0, round(40 * count / peak))
        print(f"    {start:4.0f}-{start + 1:3.0f} s {count:5d} {bar}")
    print(
        f"  connect attempts per agent while the brain was away: median "
        f"{found['connect_attempts_per_agent']['median']}, "
        f"max {found['connect_attempts_per_agent']['max']}"
    )
    before = found["probe_latency_before_ms"]
    print(f"  brain during the storm (idle before: /healthz median {before:.1f} ms):")
    for route, row in found["probe_latency_during_storm"].items():
        if row["answered"]:
            print(
                f"    {route:24s} {row['answered']}/{row['probes']} answered, "
                f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
                f"max {row['max_ms']:.1f} ms"
            )
        else:
            print(f"    {route:24s} 0/{row['probes']} answered")
    print(f"  probes unanswered after the brain was back: {found['probes_unanswered_after_back']}")
    print(
        f"  events stored {found['events_stored']} of {found['events_expected']} "
        f"({found['agents_with_two_events']} of {agents} agents with exactly two)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000, help="simulated agents (1000)")
    parser.add_argument("--hosts", type=int, default=4, help="processes hosting them (4)")
    parser.add_argument("--tokens", type=int, default=10, help="agent tokens shared out (10)")
    parser.add_argument("--database-url", help="Postgres URL for the brain (default: SQLite)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    if options.agents < 1 or options.hosts < 1 or options.tokens < 1:
        parser.error("--agents, --hosts and --tokens must be at least 1")
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="z4j-bench-storm-"))
    load_before = os.getloadavg()
    result = run_storm(
        work,
        options.agents,
        hosts=options.hosts,
        tokens=options.tokens,
        database=options.database_url,
    )
    load_after = os.getloadavg()
    found = figures(result)
    report(found)
    print(
        f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"({os.cpu_count()} cores; other work on the machine counts)"
    )
    if options.json is not None:
        document = {
            "bench": "storm",
            "started": started,
            "argv": sys.argv,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "database": "postgres" if options.database_url else "sqlite",
            },
            **found,
        }
        options.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"  (figures written to {options.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
