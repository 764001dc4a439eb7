"""A scheduler leader holding many schedules: load time, memory, and the idle cost of holding
them, measured on a real brain process (`z4j brain serve`) over its own store.

    python bench/bench_leader.py                  # 1,000,000 schedules on SQLite
    python bench/bench_leader.py --quick          # 100,000
    python bench/bench_leader.py --postgres       # on Postgres (127.0.0.1:5432, trust)

The store is filled through the brain's store interface (one transaction), with schedules
that do not fire while the bench runs: yearly crons (96 expressions) and weekly intervals, in
five zones. Then:

- load: from the brain's start to its leader holding every schedule (`/api/v1/scheduler`);
- memory: the brain's resident memory once loaded, beside an empty brain's (the same run);
- idle: the brain's CPU over 20 s from 10 s after the load, with no schedule due (what holding
  them costs).

Prints figures; asserts nothing. Needs z4j-core and z4j-brain installed (psycopg for Postgres).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchjson import Recorder, add_option

from z4j_brain.store import Store
from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.postgres import temporary_database
from z4j_core.testing.sink import brain_env
from z4j_core.testing.stats import cpu_seconds, rss_mib
from z4j_core.testing.waiting import wait_for

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"]
IDLE_SECONDS = 20.0
SETTLE_SECONDS = 10.0


def spec(i: int, now: float) -> dict[str, object]:
    zone = ZONES[i % len(ZONES)]
    if i % 4 == 3:
        anchor = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 86400 * (1 + i % 6)))
        return {"kind": "interval", "every": "7d", "anchor": anchor, "timezone": zone}
    # 96 distinct expressions (a quarter hour of the day), each firing once a year: many
    # schedules share a few expressions, as the ones people write do.
    minute, hour = (i % 4) * 15, (i // 4) % 24
    return {"kind": "cron", "expression": f"{minute} {hour} 1 1 *", "timezone": zone}


def fill(target: str, count: int) -> float:
    started = time.perf_counter()
    now = time.time()
    store = Store.open(target)
    try:
        with store.transaction():
            for i in range(count):
                store.insert_schedule(
                    schedule_id=f"s{i:09d}", name=f"bench-{i:09d}", task="bench.tasks.report",
                    engine="huey", app="bench", labels={"team": f"t{i % 20}"},
                    args=[i], kwargs={"region": "eu"}, options={}, spec=spec(i, now),
                    enabled=True, description="", actor="bench", now=now,
                )  # fmt: skip
    finally:
        store.close()
    return time.perf_counter() - started


def held(brain: BrainProcess) -> int:
    try:
        return int(brain.api("GET", "/api/v1/scheduler", timeout=10)["schedules_held"] or 0)
    except Exception:
        return -1


def measure(work: Path, database: str, count: int) -> dict[str, float]:
    brain = BrainProcess(work, database=database, env=brain_env())
    started = time.monotonic()
    brain.start(timeout=600)
    try:
        wait_for(lambda: held(brain) >= count, 1800, f"the leader holding {count:,} schedules")
        loaded = time.monotonic() - started
        assert brain.process is not None
        pid = brain.process.pid
        rss = rss_mib(pid)
        time.sleep(SETTLE_SECONDS)  # the load's own aftermath (its last chunk freed)
        cpu_before = cpu_seconds(pid)
        time.sleep(IDLE_SECONDS)
        idle = (cpu_seconds(pid) - cpu_before) / IDLE_SECONDS
        return {"load_s": loaded, "rss_mib": rss, "idle_cpu": idle, "rss_after_idle": rss_mib(pid)}
    finally:
        brain.stop()


def run(target: str, count: int, work: Path, recorder: Recorder, store_kind: str) -> None:
    empty = measure(work / "empty", target if store_kind == "postgres" else str(work / "e.db"), 0)
    print(f"empty brain: {empty['rss_mib']:.1f} MiB resident, idle CPU {empty['idle_cpu']:.1%}")
    if store_kind == "postgres":
        Store.open(target).close()  # the empty brain migrated it; fill what it left
    database = target if store_kind == "postgres" else str(work / "brain.db")
    seconds = fill(database, count)
    print(f"filled {count:,} schedules in {seconds:.1f} s")
    full = measure(work / "full", database, count)
    grown = full["rss_mib"] - empty["rss_mib"]
    print(
        f"{count:,} schedules on {store_kind}: loaded in {full['load_s']:.1f} s (from the brain's"
        f" start), {full['rss_mib']:.0f} MiB resident ({grown:.0f} MiB over an empty brain, "
        f"{grown * 2**20 / count:.0f} B a schedule); idle CPU {full['idle_cpu']:.1%} "
        f"({full['rss_after_idle']:.0f} MiB after {SETTLE_SECONDS + IDLE_SECONDS:.0f} s idle)"
    )
    tags = {"schedules": count, "store": store_kind}
    recorder.add("leader_load", "s", [full["load_s"]], **tags)
    recorder.add("leader_memory", "MiB", [grown], **tags)
    recorder.add("leader_idle_cpu", "fraction", [full["idle_cpu"]], **tags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 schedules")
    parser.add_argument("--schedules", type=int, help="how many (default 1,000,000)")
    parser.add_argument("--postgres", action="store_true", help="a Postgres store")
    add_option(parser)
    args = parser.parse_args()
    count = args.schedules or (100_000 if args.quick else 1_000_000)
    recorder = Recorder("leader", args.json)
    with tempfile.TemporaryDirectory(prefix="z4j-bench-leader-") as tmp:
        work = Path(tmp)
        if args.postgres:
            with temporary_database("bench_leader_") as url:
                run(url, count, work, recorder, "postgres")
        else:
            run("", count, work, recorder, "sqlite")
    recorder.write()


if __name__ == "__main__":
    main()
