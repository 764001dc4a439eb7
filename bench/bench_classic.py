"""The classic schedulers against z4j on the same workload: fire lateness from the slot to the
task being on the broker.

    python bench/bench_classic.py             # per-second runs 60 s, per-minute runs 300 s
    python bench/bench_classic.py --quick     # 10 s and 120 s
    python bench/bench_classic.py --only beat,z4j-celery --json out.json

Five runs (`--only`: beat, z4j-celery, beat-minute, rq-scheduler, z4j-rq), one after the
other, each with fresh processes and an emptied Redis database:

- `celery beat`: 1,000 entries of `timedelta(seconds=1)` (per-second; `--beat-period 60` for
  per-minute) in beat's default `PersistentScheduler`, with a plain Celery worker (prefork 2, no
  agent) consuming. Lateness = when beat's `apply_entry` returned (the task published to
  Redis) minus the instant beat itself computed for that run (`last_run_at + run_every`); the
  beat process writes both (bench/fire_apps/fire_beat.py). Each entry's first run is set to
  z4j's anchor (spread over the second) instead of beat's start.
- `beat-minute`: the same with `timedelta(seconds=60)` entries (per-minute), first runs spread
  over the minute.
- `rq-scheduler`: 1,000 jobs scheduled with `interval=60` (per-minute), first runs spread over
  the minute, polled every `--rqs-interval` seconds (what `rqscheduler --interval` sets;
  default 60), with a plain `rq worker` consuming. Lateness = when the job was on its queue
  minus its scheduled time (the score rq-scheduler keeps, whole seconds); the scheduler process
  writes both (bench/fire_apps/fire_rqscheduler.py runs `Scheduler.run()` as `rqscheduler`
  does).
- `z4j-celery`, `z4j-rq`: 1,000 interval schedules of 1 s, anchors spread over the second, through a
  real brain into a Celery worker (prefork 2) with the agent; and 1,000 interval schedules of
  60 s spread over the minute into `rq worker -w z4j_rq.Worker`. Lateness = the
  slot to the brain recording the agent's `enqueued` answer (bench_fire_latency.py's
  measure): the task was on the broker before that answer left the worker, so z4j's figure
  includes one WebSocket hop more than the classic schedulers' own.

Slots: every schedule should fire once in each period of its own grid (anchor + k * period)
inside the measured window. A classic scheduler's run belongs to the grid slot its own due
instant falls in (beat's drift moves later runs into later slots); a slot with no run is
missing, one with two is doubled. A scheduler that is behind gets up to 120 s after the window
to issue the window's runs (late runs count as late, not missing). z4j's fires carry their slot
(`fires.slot`); see bench_fire_latency.py. Prints figures; asserts nothing. Needs Redis on
127.0.0.1:6379; the Celery and RQ interpreters are chosen as bench_fire_latency.py's are
(`--celery-python`, `--rq-python`); this interpreter needs rq-scheduler for its run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench_fire_latency import as_number, measure

from z4j_core.testing import services
from z4j_core.testing.fire import (
    ENGINES,
    Process,
    Report,
    app_env,
    cpu_pressure,
    describe,
    engine_python,
    lateness,
    loadavg,
    result,
    start_worker,
    thread_cpu,
)

RUNS = ("beat", "z4j-celery", "beat-minute", "rq-scheduler", "z4j-rq")
WARM_UP = 2.0
#: How long after its window a classic scheduler may take to issue the window's runs.
BEHIND_LIMIT = 120.0


def flush(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()


def print_classic(name: str, samples: list[float], slots: int, missing: int, doubled: int) -> None:
    print(f"{name}: {describe(samples)}", flush=True)
    print(f"  {slots} slots, {len(samples)} runs; missing {missing}, doubled {doubled}", flush=True)


def window_cpu(process: Process, began: float, ended: float) -> float:
    """The CPU seconds `process` used from `began` to `ended` (sleeps until `ended`)."""
    time.sleep(max(0.0, began - time.time()))
    before = sum(thread_cpu(process.process.pid).values())
    time.sleep(max(0.0, ended - time.time()))
    return sum(thread_cpu(process.process.pid).values()) - before


def print_cpu(
    name: str, cpu: float, runs: list[tuple[int, float, float]], began: float, ended: float
) -> None:
    sent = sum(1 for _, _, at in runs if began <= at < ended)
    per_run = f"{cpu / sent * 1000:.2f} ms per run sent" if sent else "no run sent"
    print(
        f"  {name}'s process during the window: {cpu / (ended - began):.0%} of a CPU, "
        f"{per_run} ({sent} in {ended - began:g} s); CPU pressure {cpu_pressure()}",
        flush=True,
    )


def beat_runs(log: Path) -> list[tuple[int, float, float]]:
    """(entry index, due, published) of every run beat's process has written so far."""
    runs = []
    for line in log.read_text().splitlines() if log.exists() else []:
        name, due, published = line.split()
        runs.append((int(name[1:]), float(due), float(published)))
    return runs


def run_beat(
    python: str, work: Path, *, redis_db: int, count: int, period: float, seconds: float
) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    redis_url = services.redis_url(redis_db)
    flush(redis_url)
    queue = f"z4j-fire-{services.run_id()}"
    base = math.ceil(time.time()) + 8.0
    log = work / "beat-runs.txt"
    env = app_env(redis_url, queue, work / "sink.txt", {
        "FIRE_NO_AGENT": "1", "FIRE_BEAT_COUNT": str(count), "FIRE_BEAT_PERIOD": str(period),
        "FIRE_BEAT_BASE": str(base), "FIRE_BEAT_LOG": str(log),
    })  # fmt: skip
    worker = start_worker(ENGINES["celery"], python, queue, env, work / "worker.log")
    beat = Process(
        [python, "-m", "celery", "-A", "fire_beat", "beat", "-S", "fire_beat:RecordingScheduler",
         "--schedule", str(work / "beat-schedule"), "--loglevel", "WARNING"],
        env, work / "beat.log",
    )  # fmt: skip
    # Loading 1,000 entries takes beat a while: the window opens once it has sent its first.
    deadline = time.monotonic() + 180
    while not (log.exists() and log.stat().st_size):
        if not beat.alive() or time.monotonic() > deadline:
            beat.stop()
            worker.stop()
            raise SystemExit(f"celery beat sent nothing:\n{beat.output(3000)}")
        time.sleep(0.1)
    began = max(base, time.time()) + WARM_UP
    ended = began + seconds
    print(
        f"celery beat: {count} entries of {period:g} s; measuring {seconds:g} s from "
        f"{datetime.fromtimestamp(began, timezone.utc):%H:%M:%S} (load average {loadavg()})",
        flush=True,
    )
    try:
        cpu = window_cpu(beat, began, ended)
        # Beat may be behind: wait until every entry has a run due at or after the window's
        # end (so each of its slots in the window has had its chance), at most BEHIND_LIMIT.
        limit = time.monotonic() + BEHIND_LIMIT
        while True:
            runs = beat_runs(log)
            past = {index for index, due, _ in runs if due >= ended}
            if len(past) == count or time.monotonic() > limit or not beat.alive():
                break
            time.sleep(1)
        if not beat.alive():
            raise SystemExit(f"celery beat exited:\n{beat.output(3000)}")
    finally:
        beat.stop()
        worker.stop()
    behind = count - len(past)
    if behind:
        print(f"  {behind} entries had not reached the window's end {BEHIND_LIMIT:g} s after it")
    anchors = [base + i * period / count for i in range(count)]
    samples, slots, missing, doubled = lateness(runs, anchors, period, began, ended)
    print_classic("celery beat", samples, slots, missing, doubled)
    print_cpu("celery beat", cpu, runs, began, ended)
    config = {"scheduler": "celery beat", "engine": "celery", "schedules": count,
              "period_s": as_number(period)}  # fmt: skip
    return result(config, samples, missing, doubled)


def run_rq_scheduler(
    python: str,
    work: Path,
    *,
    redis_db: int,
    count: int,
    period: float,
    seconds: float,
    interval: float,
) -> dict[str, Any]:
    from redis import Redis
    from rq_scheduler import Scheduler

    work.mkdir(parents=True, exist_ok=True)
    redis_url = services.redis_url(redis_db)
    flush(redis_url)
    log = work / "rqs-runs.txt"
    env = app_env(redis_url, "default", work / "sink.txt",
                  {"FIRE_NO_AGENT": "1", "FIRE_RQS_LOG": str(log)})  # fmt: skip
    rq = str(Path(python).parent / "rq")
    worker = Process(
        [rq, "worker", "-w", "rq.worker.Worker", "-u", redis_url, "--logging_level", "WARNING",
         "--disable-job-desc-logging", "default"],
        env, work / "worker.log",
    )  # fmt: skip
    # The scheduler first, as a deployment runs it: its polls keep their own phase.
    scheduler_process = Process(
        [python, "fire_rqscheduler.py", redis_url, str(interval)], env, work / "scheduler.log"
    )
    base = math.ceil(time.time()) + 10.0
    scheduler = Scheduler(connection=Redis.from_url(redis_url))
    anchors = []
    for i in range(count):
        at = datetime.fromtimestamp(base + i * period / count, timezone.utc)
        scheduler.schedule(scheduled_time=at, func="fire_rq.tick", interval=period,
                           repeat=None, id=f"rqs-{i:05d}")  # fmt: skip
        anchors.append(float(math.floor(at.timestamp())))  # rq-scheduler keeps whole seconds
    began = max(base, time.time()) + WARM_UP
    ended = began + seconds
    print(
        f"rq-scheduler: {count} jobs every {period:g} s, polled every {interval:g} s; measuring "
        f"{seconds:g} s from {datetime.fromtimestamp(began, timezone.utc):%H:%M:%S} "
        f"(load average {loadavg()})",
        flush=True,
    )
    try:
        cpu = window_cpu(scheduler_process, began, ended)
        time.sleep(max(0.0, ended - time.time()) + interval + 5)
        if not scheduler_process.alive():
            raise SystemExit(f"rq-scheduler exited:\n{scheduler_process.output(3000)}")
    finally:
        scheduler_process.stop()
        worker.stop()
    runs = []
    for line in log.read_text().splitlines() if log.exists() else []:
        job_id, due, enqueued = line.split()
        runs.append((int(job_id.rpartition("-")[2]), float(due), float(enqueued)))
    samples, slots, missing, doubled = lateness(runs, anchors, period, began, ended)
    print_classic("rq-scheduler", samples, slots, missing, doubled)
    print_cpu("rq-scheduler", cpu, runs, began, ended)
    config = {"scheduler": "rq-scheduler", "engine": "rq", "schedules": count,
              "period_s": as_number(period)}  # fmt: skip
    return result(config, samples, missing, doubled)


def run_z4j(
    engine: str,
    python: str,
    work: Path,
    *,
    redis_db: int,
    count: int,
    period: float,
    seconds: float,
    database_url: str | None,
) -> dict[str, Any]:
    entry = measure(
        ENGINES[engine], python, work, schedules=count, rate=count / period, seconds=seconds,
        database_url=database_url, redis_db=redis_db, label=" (z4j)",
    )  # fmt: skip
    entry["config"] = {"scheduler": "z4j", "engine": engine, "schedules": count,
                       "period_s": as_number(period)}  # fmt: skip
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s per-second, 120 s per-minute")
    parser.add_argument("--json", metavar="PATH", help="write the results here")
    parser.add_argument("--only", help=f"comma-separated runs of {', '.join(RUNS)}")
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument(
        "--beat-period", type=float, default=1.0, help="beat's entries' period (and z4j's), s"
    )
    parser.add_argument(
        "--rq-period", type=float, default=60.0, help="rq-scheduler's jobs' interval (and z4j's), s"
    )
    parser.add_argument(
        "--rqs-interval", type=float, default=60.0, help="rq-scheduler's polling, s (default 60)"
    )
    parser.add_argument("--seconds", type=float, help="per-second window (60, quick 10)")
    parser.add_argument("--minute-seconds", type=float, help="per-minute window (300, quick 120)")
    parser.add_argument("--database-url", help="a Postgres URL for z4j's brain (default SQLite)")
    parser.add_argument("--celery-python", help="the interpreter for Celery's processes")
    parser.add_argument("--rq-python", help="the interpreter for RQ's processes")
    options = parser.parse_args()
    chosen = options.only.split(",") if options.only else list(RUNS)
    unknown = sorted(set(chosen) - set(RUNS))
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}: choose from {', '.join(RUNS)}")
    if not services.SERVICES["redis"].reachable():
        raise SystemExit(services.SERVICES["redis"].unreachable_reason())
    fast = options.seconds or (10.0 if options.quick else 60.0)
    slow = options.minute_seconds or (120.0 if options.quick else 300.0)
    celery_python = rq_python = ""
    if {"beat", "beat-minute", "z4j-celery"} & set(chosen):
        celery_python = engine_python(ENGINES["celery"], options.celery_python)
    if {"rq-scheduler", "z4j-rq"} & set(chosen):
        rq_python = engine_python(ENGINES["rq"], options.rq_python)
        if "rq-scheduler" in chosen:
            import rq_scheduler  # noqa: F401 -- jobs are scheduled from this process

    beat_window = slow if options.beat_period >= 60 else fast
    rq_window = slow if options.rq_period >= 60 else fast
    report = Report("classic_schedulers")
    redis_db = services.claim_redis_database()
    n = options.schedules
    try:
        with tempfile.TemporaryDirectory(prefix="z4j-bench-classic-") as folder:
            work = Path(folder)
            for name in chosen:
                folder_of_run = work / name
                if name in ("beat", "beat-minute"):
                    period = options.beat_period if name == "beat" else 60.0
                    window = slow if period >= 60 else fast
                    entry = run_beat(celery_python, folder_of_run, redis_db=redis_db, count=n,
                                     period=period, seconds=window)  # fmt: skip
                elif name == "rq-scheduler":
                    entry = run_rq_scheduler(
                        rq_python, folder_of_run, redis_db=redis_db, count=n,
                        period=options.rq_period, seconds=rq_window,
                        interval=options.rqs_interval,
                    )  # fmt: skip
                else:
                    engine = "celery" if name == "z4j-celery" else "rq"
                    period = options.beat_period if engine == "celery" else options.rq_period
                    entry = run_z4j(
                        engine, celery_python if engine == "celery" else rq_python,
                        folder_of_run, redis_db=redis_db, count=n, period=period,
                        seconds=beat_window if engine == "celery" else rq_window,
                        database_url=options.database_url,
                    )  # fmt: skip
                report.add(entry)
    finally:
        flush(services.redis_url(redis_db))
        services.release_redis_database(redis_db)
    print()
    for entry in report.doc["results"]:
        c = entry["config"]
        figures = (
            f"p50 {entry['median']:.1f} ms, p99 {entry['p99']:.1f} ms, max {entry['max']:.1f} ms"
            if entry["count"] else "no runs"
        )  # fmt: skip
        print(
            f"{c['scheduler']:>12} into {c['engine']:6} {c['schedules']} x every "
            f"{c['period_s']:g} s: {figures}; {entry['count']} runs, missing {entry['missing']}, "
            f"doubled {entry['doubled']}"
        )
    report.finish(options.json)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TZ", "UTC")
    sys.exit(main())
