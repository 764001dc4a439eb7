"""The soak: a steady 5,000 events per second and 100 fires per second for ten minutes, with
memory, rates and latencies sampled every 10 seconds, and everything counted at the end.

    python bench/soak.py                          # 10 minutes on SQLite
    python bench/soak.py --minutes 1              # a short one
    python bench/soak.py --database-url postgresql://127.0.0.1/test --json soak.json

Processes: a real brain (`z4j brain serve`); `--emitters` application processes with the agent
(`z4j_core/testing/soak_emitter.py`) sharing `--events-per-s` between them (task lifecycles, paced
every 5 ms); `--fires-per-s` interval schedules of 1 s, anchors spread over the second, firing
into a real Huey consumer with the agent (SqliteHuey; its task records each run's job id, which
is the fire id). Each sample: resident memory of the brain and of every agent process (the
emitters, then the consumer), events stored per second by the brain (the consumer's lifecycle
events included), emit-to-ack latency p50/p99 (every 25th event), fire latency p50/p99 (slot
due to the agent's `enqueued` answer stored), fires run twice and slots not run (so far: slots
older than 15 s). At the end: events sent, acknowledged and stored (and stored distinct), slots
expected and run once. Also the medians of the first and the last minute of each figure.
Figures are printed (and written with `--json`), never asserted; the CI check is
`tests/soak/test_soak_short.py`. Needs huey and, for `--database-url`, psycopg.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from z4j_core.testing.soak import SoakPlan, run_soak

COLUMNS = (
    f"{'t s':>6} {'brain MiB':>9} {'agents MiB (emitters, consumer)':>34} {'ev/s':>7} "
    f"{'ack p50/p99 ms':>15} {'fire p50/p99 ms':>16} {'twice':>5} {'miss':>5} {'load':>5}"
)


def number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def row(sample: dict[str, Any]) -> str:
    agents = " ".join(number(v) for v in sample["agent_rss_mib"])
    ack = f"{number(sample['ack_p50_ms'])}/{number(sample['ack_p99_ms'])}"
    fire = f"{number(sample['fire_p50_ms'])}/{number(sample['fire_p99_ms'])}"
    return (
        f"{sample['t']:6.0f} {number(sample['brain_rss_mib'], 1):>9} {agents:>34} "
        f"{number(sample['events_per_s']):>7} {ack:>15} {fire:>16} {sample['doubled']:>5} "
        f"{sample['missing']:>5} {sample['loadavg']:5.1f}"
    )


def report(found: dict[str, Any]) -> None:
    totals = found["totals"]
    print(
        f"events: sent {totals['events_sent']:,}, acknowledged {totals['events_acked']:,}, "
        f"stored {totals['events_stored']:,} ({totals['events_stored_distinct']:,} distinct), "
        f"dropped {totals['events_dropped']}"
    )
    print(
        f"fires: {totals['fires_expected']:,} slots expected, {totals['fire_rows']:,} fires "
        f"written, {totals['fires']:,} run, run twice {totals['doubled']}, "
        f"missing {totals['missing']}"
    )
    flat = found["flatness"]
    print(f"flatness (median of the first vs the last {flat['window_s']:.0f} s):")
    for name, pair in flat.items():
        if name != "window_s":
            print(f"  {name:20s} {number(pair['first'], 1):>9} -> {number(pair['last'], 1)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length (10)")
    parser.add_argument("--events-per-s", type=float, default=5000.0, help="total (5000)")
    parser.add_argument("--fires-per-s", type=int, default=100, help="1 s schedules (100)")
    parser.add_argument("--emitters", type=int, default=4, help="agent processes (4)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds (10)")
    parser.add_argument("--database-url", help="Postgres URL for the brain (default: SQLite)")
    parser.add_argument("--json", type=Path, help="write samples and totals here")
    options = parser.parse_args()
    seconds = round(options.minutes * 60)
    if seconds < 2 * options.sample_every or options.sample_every < 1:
        parser.error("--minutes must cover at least two samples, --sample-every at least 1 s")
    if options.emitters < 1 or options.events_per_s <= 0 or options.fires_per_s < 1:
        parser.error("--emitters, --events-per-s and --fires-per-s must be positive")
    plan = SoakPlan(
        seconds=seconds,
        events_per_s=options.events_per_s,
        emitters=options.emitters,
        schedules=options.fires_per_s,
        sample_every=options.sample_every,
        database=options.database_url,
    )
    started = time.time()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="z4j-bench-soak-"))
    print(
        f"soak: {seconds} s, {options.events_per_s:,.0f} events/s from {options.emitters} "
        f"agent processes, {options.fires_per_s} fires/s into Huey, brain on "
        f"{'Postgres' if options.database_url else 'SQLite'}; load average {load_before[0]:.2f} "
        f"({os.cpu_count()} cores)",
        flush=True,
    )
    print(COLUMNS, flush=True)
    found = run_soak(work, plan, on_sample=lambda s: print(row(s), flush=True))
    load_after = os.getloadavg()
    report(found)
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"(work files in {work}: the brain's database holds every event; about 1.3 GB for ten "
          "minutes on SQLite; remove it when done)")  # fmt: skip
    if options.json is not None:
        document = {
            "bench": "soak",
            "started": started,
            "argv": sys.argv,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
                "database": "postgres" if options.database_url else "sqlite",
            },
            "plan": {
                "seconds": seconds,
                "events_per_s": options.events_per_s,
                "fires_per_s": options.fires_per_s,
                "emitters": options.emitters,
                "sample_every": options.sample_every,
            },
            "agents": found["agents"],
            "samples": found["samples"],
            "totals": found["totals"],
            "flatness": found["flatness"],
        }
        options.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"(written to {options.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
