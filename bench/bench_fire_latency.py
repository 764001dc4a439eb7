"""Scheduler fire latency per engine: from a slot to the brain recording `enqueued` for its fire.

    python bench/bench_fire_latency.py --engine huey                 # 60 s, default rate
    python bench/bench_fire_latency.py --engine rq --quick           # 10 s
    python bench/bench_fire_latency.py --engine celery --rate 1000 --json out.json

A real brain (SQLite in a temporary folder, or `--database-url postgresql://...`) and one real
worker of the engine with the agent (bench/fire_apps/, Redis on 127.0.0.1:6379 in a database
claimed for this run). Interval schedules (`--schedules`, default: the rate; period =
schedules / rate, 1 s by default) are created through the brain's HTTP API with anchors spread
evenly over the period, so `--rate` fires fall due each second. After every schedule exists and
a 2 s warm-up, a window of `--seconds` (60, `--quick` 10) is measured: for every slot in it,
latency = the brain's `answered_at` of the agent's `enqueued` answer minus the slot (the
fires table), p50/p99/max. A slot is missing unless exactly one fire of it was enqueued;
doubled when it had two fires or its job ran twice (each run of the task appends its job id to
a sink file; the fire's native id is that job id). Prints figures; asserts nothing.

Default rates are half of each engine's no-op throughput measured on this machine by
bench/bench_<engine>.py (see `--help` and docs/engines/*.md), at most 1,000 per second.

The worker runs in `--python` if given; else in this interpreter when it has the engine and its
adapter; else in `.venv-bench-<engine>` at the repository root, built once with uv from this
checkout's z4j-core and adapter plus the engine (celery[redis]; rq, rq-scheduler;
dramatiq[redis]; arq; taskiq, taskiq-redis; huey, redis). This interpreter needs z4j-core,
z4j-brain, redis (and psycopg for Postgres).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from z4j_core.testing import services
from z4j_core.testing.fire import (
    ENGINES,
    Engine,
    Report,
    Rig,
    Tally,
    cpu_pressure,
    cpu_share,
    create_schedules,
    describe,
    engine_python,
    expected_slots,
    fire_rows,
    interval_bodies,
    loadavg,
    result,
    rig,
    settled_fires,
    sink_counts,
    tally,
    thread_cpu,
)

WARM_UP = 2.0
#: After the window: how long to wait for its fires' answers and runs while none arrives, and
#: at most (what is still unanswered then counts as missing).
SETTLE_STALL = 30.0
SETTLE_LIMIT = 900.0


def measure(
    engine: Engine,
    python: str,
    work: Path,
    *,
    schedules: int,
    rate: float,
    seconds: float,
    database_url: str | None,
    redis_db: int,
    label: str = "",
) -> dict[str, Any]:
    """Run one configuration and return its `fire_latency` result (also printed)."""
    period = round(schedules / rate, 6)
    with rig(engine, python, work, redis_db, database_url) as r:
        base = datetime.now(timezone.utc).replace(microsecond=0)
        # No slot before every schedule exists: creating them takes a while.
        start = base + timedelta(seconds=max(5, schedules // 100))
        prefix = f"lat-{engine.name}-{int(time.time()) % 100_000}-"
        bodies, anchors = interval_bodies(
            engine, schedules, period, base=base, start=start, prefix=prefix
        )
        began_creating = time.monotonic()
        ids = create_schedules(r.brain, bodies)
        created_in = time.monotonic() - began_creating
        # Any window of whole periods holds the same number of slots of every schedule.
        began = max(start.timestamp(), time.time()) + WARM_UP
        ended = began + seconds
        print(
            f"{engine.name}: {schedules} schedules of {period:g} s created in {created_in:.1f} s; "
            f"measuring {seconds:g} s from {datetime.fromtimestamp(began, timezone.utc):%H:%M:%S}"
            f" (load average {loadavg()})",
            flush=True,
        )
        slots = {
            ids[b["name"]]: expected_slots(a, period, began, ended)
            for b, a in zip(bodies, anchors, strict=True)
        }
        brain_pid = r.brain.process.pid if r.brain.process else 0
        time.sleep(max(0.0, began - time.time()))
        cpu_before = thread_cpu(brain_pid)
        time.sleep(max(0.0, ended - time.time()))
        busy = cpu_share(brain_pid, cpu_before, thread_cpu(brain_pid), seconds)
        pressure = cpu_pressure()
        time.sleep(3)
        counted, per_fire = settle(
            r, set(ids.values()), slots, began=began, ended=ended, cpu_before=cpu_before
        )
        if not r.worker.alive():
            print(f"  the worker died:\n{r.worker.output(3000)}", flush=True)
    samples = counted.latencies_ms
    print(f"{engine.name}{label}: {describe(samples)}", flush=True)
    print(f"  {counted.describe()}", flush=True)
    if counted.missing:
        print(
            "  (a fire the brain has not delivered within its schedule's misfire grace (60 s "
            "by default, at least 10 s) of being written is never delivered: missed, by design)",
            flush=True,
        )
    print(f"  the brain during the window: {busy}{per_fire}", flush=True)
    print(f"  CPU pressure at the window's end (share of time runnable tasks waited): {pressure}",
          flush=True)  # fmt: skip
    config = {"engine": engine.name, "schedules": schedules, "rate_per_s": as_number(rate),
              "seconds": as_number(seconds)}  # fmt: skip
    return result(config, samples, counted.missing, counted.doubled)


def settle(
    r: Rig,
    schedule_ids: set[str],
    slots: dict[str, list[float]],
    *,
    began: float,
    ended: float,
    cpu_before: dict[int, float],
) -> tuple[Tally, str]:
    """Wait for the window's fires to be answered, then for their jobs to run, each as long
    as that makes progress (a loaded brain may be minutes behind) and never past
    SETTLE_LIMIT; return the tally and the brain's CPU per fire answered."""
    limit = time.monotonic() + SETTLE_LIMIT

    def wait(probe: Callable[[], int]) -> None:
        last, since = probe(), time.monotonic()
        while last and time.monotonic() - since < SETTLE_STALL and time.monotonic() < limit:
            if not r.worker.alive():
                return
            time.sleep(1)
            now = probe()
            if now != last:
                last, since = now, time.monotonic()

    pid = r.brain.process.pid if r.brain.process else 0
    expected = sum(len(v) for v in slots.values())
    wait(lambda: expected - settled_fires(r.brain, began, ended))
    cpu_now, now = thread_cpu(pid), time.time()
    rows = fire_rows(r.brain, schedule_ids)
    # The brain's CPU from the window's start to the last of its fires answered, per fire
    # answered in that time: what a fire costs the brain, load aside.
    answered = sum(1 for f in rows if f["answered_at"] and began <= f["answered_at"] <= now)
    spent = sum(cpu_now.values()) - sum(cpu_before.values())
    per_fire = (
        f"; brain CPU {spent / max(answered, 1) * 1000:.2f} ms per fire answered "
        f"({answered} fires in {now - began:.0f} s)"
    )
    wait(lambda: tally(rows, slots, sink_counts(r.sink)).not_executed)
    return tally(rows, slots, sink_counts(r.sink)), per_fire


def as_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 6)


def main() -> int:
    notes = "; ".join(f"{e.name} {e.default_rate} ({e.rate_note})" for e in ENGINES.values())
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=f"default rates: {notes}",
    )
    parser.add_argument("--engine", required=True, choices=sorted(ENGINES))
    parser.add_argument("--quick", action="store_true", help="a 10 s window instead of 60 s")
    parser.add_argument("--json", metavar="PATH", help="write the results here")
    parser.add_argument("--rate", type=float, help="fires per second (default: per engine)")
    parser.add_argument("--schedules", type=int, help="schedules (default: the rate, 1 s each)")
    parser.add_argument("--seconds", type=float, help="the measured window (60, quick 10)")
    parser.add_argument("--database-url", help="a Postgres URL for the brain (default SQLite)")
    parser.add_argument("--python", help="the interpreter of the engine's worker")
    options = parser.parse_args()
    engine = ENGINES[options.engine]
    rate = options.rate or float(engine.default_rate)
    schedules = options.schedules or int(rate)
    seconds = options.seconds or (10.0 if options.quick else 60.0)
    if rate <= 0 or schedules <= 0 or seconds <= 0:
        parser.error("--rate, --schedules and --seconds must be positive")
    if not services.SERVICES["redis"].reachable():
        raise SystemExit(services.SERVICES["redis"].unreachable_reason())
    python = engine_python(engine, options.python)
    report = Report("fire_latency")
    redis_db = services.claim_redis_database()
    try:
        with tempfile.TemporaryDirectory(prefix=f"z4j-bench-fire-{engine.name}-") as folder:
            entry = measure(
                engine, python, Path(folder), schedules=schedules, rate=rate, seconds=seconds,
                database_url=options.database_url, redis_db=redis_db,
            )  # fmt: skip
            report.add(entry)
    finally:
        services.release_redis_database(redis_db)
    report.finish(options.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
