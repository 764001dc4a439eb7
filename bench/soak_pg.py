"""The fleet soak on Postgres: an hour (by default) at 5,000 events/s and 100 fires/s over six
engines' workers on two brains, a leader killed every 5 minutes, a brain restarted every 7, one
agent's network cut every 3; prints figures every sample and a verdict at the end.

    python bench/soak_pg.py                                 # an hour
    python bench/soak_pg.py --minutes 10 --json soak.json   # what `nox -s soak_nightly` runs
    python bench/soak_pg.py --minutes 2 --events-per-s 500 --fires-per-s 10

Processes, all real (z4j_core/testing/soak_fleet.py): two `z4j brain serve` on one throwaway
Postgres database (retention a fifth of the run, at least a minute; `--retention-s`), the fleet
of scripts/fleet (Celery, RQ, Dramatiq, Huey, arq, taskiq workers with the agent; Celery, arq
and taskiq from their .venv-fleet-* environments, made on the first run), `--emitters` agent
processes streaming task lifecycles, `--fires-per-s` interval schedules of 1 s over the six
engines. Fault periods shorter than ten minutes are scaled down proportionally.

Each sample: resident memory of the brains, of the largest emitter and of each engine's worker
(all its processes added up), the soak's events stored per second, emit-to-ack and fire latency
p50/p99, the database's size on disk, brains leading, load average. At the end: events sent,
acknowledged, stored once/twice/never; slots, fires, runs once/twice/never/in another engine;
the faults; per process the memory slope after warm-up (MiB per minute, with the spread of what
the slope does not explain, and whether it is flat); disk at one retention and after. Figures
are printed (and written with `--json`), never asserted; tests/soak/test_soak_fleet.py asserts
the behaviour. Needs Redis and Postgres (scripts/services.sh) and the fleet's packages.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from z4j_core.testing.engines import FLEET_ENVIRONMENTS
from z4j_core.testing.fleet import ENGINES
from z4j_core.testing.postgres import temporary_database
from z4j_core.testing.services import claim_redis_database, redis_url, release_redis_database
from z4j_core.testing.soak_fleet import FleetSoakPlan, FleetSoakResult, run_fleet_soak
from z4j_core.testing.venvs import ensure

ENGINE_NAMES = [e.name for e in ENGINES]
COLUMNS = (
    f"{'t s':>6} {'brains MiB':>11} {'emit':>5} "
    + " ".join(f"{n[:6]:>6}" for n in ENGINE_NAMES)
    + f" {'ev/s':>6} {'ack p50/p99':>12} {'fire p50/p99':>13} {'db MiB':>7} {'lead':>4} {'load':>5}"
)


def number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def group(rss: dict[str, float], engine: str) -> float | None:
    """All the processes of one engine's worker, added up."""
    parts = [v for k, v in rss.items() if re.fullmatch(rf"{engine}-\d+(/\d+)?(-\d+)?", k)]
    return sum(parts) if parts else None


def row(sample: dict[str, Any]) -> str:
    rss = sample["rss_mib"]
    brains = "/".join(number(rss.get(f"brain-{x}")) for x in "ab")
    emit = max((v for k, v in rss.items() if re.fullmatch(r"e\d+", k)), default=None)
    engines = " ".join(f"{number(group(rss, n)):>6}" for n in ENGINE_NAMES)
    ack = f"{number(sample['ack_p50_ms'])}/{number(sample['ack_p99_ms'])}"
    fire = f"{number(sample['fire_p50_ms'])}/{number(sample['fire_p99_ms'])}"
    return (
        f"{sample['t']:6.0f} {brains:>11} {number(emit):>5} {engines} "
        f"{number(sample['events_per_s']):>6} {ack:>12} {fire:>13} "
        f"{number(sample['database_mib']):>7} {sample['leaders']:>4} {sample['loadavg']:5.1f}"
    )


def report(found: FleetSoakResult) -> None:
    t = found.totals
    print(
        f"events: sent {t['events_sent']:,}, acknowledged {t['events_acked']:,}, stored once "
        f"{t['stored_once']:,}, twice {t['stored_twice']}, never {t['never_stored']}, "
        f"dropped {t['events_dropped']}"
    )
    print(
        f"fires: {t['slots_expected']:,} slots, {t['fire_rows']:,} fires ({t['fire_states']}), "
        f"run once {t['ran_once']:,}, twice {t['ran_twice']}, never {t['never_ran']}, "
        f"in another engine {t['ran_in_another_engine']}; leaders at the end {t['leaders_at_end']}"
    )
    print("faults:")
    for fault in found.faults:
        detail = {k: v for k, v in fault.items() if k not in ("kind", "t")}
        print(f"  +{fault['t']:>6.0f} s {fault['kind']:14s} {detail}")
    print(f"memory after {found.plan.warm_up:.0f} s of warm-up (slope MiB/min, spread MiB):")
    for name, v in sorted(found.memory.items()):
        print(
            f"  {name:24s} {v['first_mib']:7.1f} -> {v['last_mib']:7.1f} MiB over "
            f"{v['minutes']:5.1f} min: slope {v['slope_mib_per_min']:+.3f}, spread "
            f"{v['spread_mib']:.1f}, {'flat' if v['flat'] else 'GROWING'}"
        )
    if found.disk:
        d = found.disk
        print(
            f"disk (retention {d['retention_s']:.0f} s): database "
            f"{d['database_mib_at_retention']:.0f} MiB at one retention, peak after "
            f"{d['database_mib_peak_after']:.0f}, end "
            f"{d['database_mib_end']:.0f}; events table {d['events_table_mib_at_retention']:.0f}"
            f" / {d['events_table_mib_peak_after']:.0f} / {d['events_table_mib_end']:.0f} MiB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length (60)")
    parser.add_argument("--events-per-s", type=float, default=5000.0, help="total (5000)")
    parser.add_argument("--fires-per-s", type=int, default=100, help="1 s schedules (100)")
    parser.add_argument("--emitters", type=int, default=4, help="agent processes (4)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds (10)")
    parser.add_argument("--retention-s", type=float, help="event retention (a fifth of the run)")
    parser.add_argument("--json", type=Path, help="write samples, totals and verdicts here")
    options = parser.parse_args()
    # SIGTERM (and SIGINT, which a shell ignores in a background job) stop the run in order:
    # every brain, worker and emitter is stopped and the database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    seconds = round(options.minutes * 60)
    if seconds < 4 * options.sample_every or options.sample_every < 1:
        parser.error("--minutes must cover at least four samples, --sample-every at least 1 s")
    if options.emitters < 1 or options.events_per_s <= 0 or options.fires_per_s < 1:
        parser.error("--emitters, --events-per-s and --fires-per-s must be positive")
    plan = FleetSoakPlan(
        seconds=seconds,
        events_per_s=options.events_per_s,
        fires_per_s=options.fires_per_s,
        emitters=options.emitters,
        sample_every=options.sample_every,
        retention_s=options.retention_s,
    )
    needed = {e.environment for e in ENGINES} - {"main"}
    pythons = {"main": Path(sys.executable)}
    pythons |= {name: ensure(FLEET_ENVIRONMENTS[name]) for name in sorted(needed)}
    started = time.time()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="z4j-bench-soak-pg-"))
    print(
        f"fleet soak: {seconds} s, {options.events_per_s:,.0f} events/s from {options.emitters} "
        f"agent processes, {options.fires_per_s} fires/s over {len(ENGINES)} engines, "
        f"{plan.brains} brains on Postgres, retention {plan.retention:.0f} s; load average "
        f"{load_before[0]:.2f} ({os.cpu_count()} cores); work files in {work}",
        flush=True,
    )
    print(COLUMNS, flush=True)
    redis_db = claim_redis_database()
    try:
        with temporary_database("soakpg") as database:
            found = run_fleet_soak(
                work, plan, pythons, redis_url(redis_db), database,
                say=lambda line: print(f"# {line}", flush=True),
                on_sample=lambda s: print(row(s), flush=True),
            )  # fmt: skip
    finally:
        release_redis_database(redis_db)
    load_after = os.getloadavg()
    report(found)
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if options.json is not None:
        document = {
            "bench": "soak_pg",
            "started": started,
            "argv": sys.argv,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "loadavg_before": load_before,
                "loadavg_after": load_after,
            },
            "plan": {
                "seconds": seconds,
                "events_per_s": plan.events_per_s,
                "fires_per_s": plan.fires_per_s,
                "emitters": plan.emitters,
                "brains": plan.brains,
                "retention_s": plan.retention,
                "warm_up_s": plan.warm_up,
                "faults": plan.fault_plan.__dict__,
            },
            "samples": found.samples,
            "totals": found.totals,
            "faults": found.faults,
            "memory": found.memory,
            "disk": found.disk,
        }
        options.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"(written to {options.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
