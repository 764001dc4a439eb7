"""Scheduler-core benchmarks: next_after per kind (cron against croniter), cron worst cases,
and the due queue.

Prints figures; never asserts on time. `--quick` uses reduced counts; the default runs the
full ones (100,000 and 1,000,000 mixed schedules in the due queue).

    .venv/bin/python bench/bench_scheduling.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from benchjson import Recorder, add_option
from croniter import croniter

from z4j_core.scheduling import (
    CronSchedule,
    DueQueue,
    IntervalSchedule,
    OneShotSchedule,
    Schedule,
    ScheduleError,
    SolarSchedule,
)
from z4j_core.scheduling import zones as zone_timelines
from z4j_core.testing.stats import rss_mib

UTC = timezone.utc
START = datetime(2025, 1, 1, tzinfo=UTC)
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"]
RESTART = 20
EXPRESSIONS = [
    "*/5 * * * *",
    "0 * * * *",
    "30 1 * * *",
    "0 9 * * mon-fri",
    "*/15 9-17 * * 1-5",
    "0 0 1 * *",
    "0 12 L * *",
    "0 9 * * 1#2",
    "0 0 * * 0",
    "*/10 * * * * 30",
]


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>12,.0f}/s  ({seconds / count * 1e6:7.2f} us each)"


def bench_cron(calls: int, recorder: Recorder) -> None:
    print(
        f"cron next_after vs croniter get_next ({calls:,} calls per side, same expressions/zones)"
    )
    cases = [(e, z) for e in EXPRESSIONS for z in ZONES]
    per_case = max(1, calls // len(cases))
    ours_time = theirs_time = 0.0
    for expression, zone_name in cases:
        zone = ZoneInfo(zone_name)
        schedule = CronSchedule(expression=expression, timezone=zone)
        begin = START.astimezone(zone)
        # Chains of RESTART calls from the same start, so both sides stay in the next few
        # years (where a brain works) and ours runs on a warm zone cache, as a brain's does.
        schedule.slots(begin, RESTART)
        t0 = time.perf_counter()
        for _ in range(per_case // RESTART):
            slot: datetime | None = begin
            for _ in range(RESTART):
                assert slot is not None
                slot = schedule.next_after(slot)
        ours_time += time.perf_counter() - t0
        iterator = croniter(expression, begin)
        t0 = time.perf_counter()
        for _ in range(per_case // RESTART):
            iterator.set_current(begin, force=True)
            for _ in range(RESTART):
                iterator.get_next(datetime)
        theirs_time += time.perf_counter() - t0
    total = per_case // RESTART * RESTART * len(cases)
    print(f"  ours      {rate(total, ours_time)}")
    print(f"  croniter  {rate(total, theirs_time)}")
    print(f"  ratio     {theirs_time / ours_time:.1f}x faster")
    recorder.add("cron_next_after", "calls/s", [total / ours_time], implementation="z4j")
    recorder.add("cron_next_after", "calls/s", [total / theirs_time], implementation="croniter")


# (expression, day_and, zone): rare dates, matches that only fall in DST gaps, seconds.
WORST_CASES = [
    ("0 0 29 2 1", True, "UTC"),
    ("0 0 29 2 1", True, "Australia/Lord_Howe"),
    ("30 2/24 8-14 3 0", True, "America/New_York"),  # only in the spring gap: never fires
    ("30 2 8-14 3 0", True, "America/New_York"),  # the same with a fixed hour: fires at 03:00
    ("0 */24 * * *", False, "America/Santiago"),  # midnight, skipped once a year
    ("59 23 L 2 *", False, "America/New_York"),
    ("0 0 * * * */1", False, "Europe/Berlin"),
    ("* * * * * *", False, "Australia/Lord_Howe"),
    ("0 0 13 * 5", True, "Asia/Tehran"),
    ("0 9 * * sat#5", False, "Pacific/Chatham"),
    ("0 0 L * 5L", True, "Africa/Casablanca"),
    ("0 2 * 3 0L", True, "Europe/London"),
]
# Refused when compiled: no date matches, so no search runs at all.
NEVER_MATCHING = ["0 0 31 2,4,6,9,11 *", "0 0 30 2 *", "0 0 31 * 2#1"]


def bench_cron_worst_cases(recorder: Recorder) -> None:
    print(
        "cron worst cases: next_after on an empty zone cache, then slots(after, 1000) on the"
        " cache it left"
    )
    for expression in NEVER_MATCHING:
        try:
            CronSchedule(expression=expression, day_and=True)
            print(f"  {expression!r:<24} ACCEPTED (should be refused)")
        except ScheduleError as refused:
            print(f"  {expression!r:<24} refused: {str(refused).split(': ', 1)[-1]}")
    cold: list[float] = []
    thousand: list[float] = []
    for expression, day_and, zone_name in WORST_CASES:
        zone_timelines._TIMELINES.clear()  # a cold zone cache, as on a fresh brain
        schedule = CronSchedule(
            expression=expression, day_and=day_and, timezone=ZoneInfo(zone_name)
        )
        t0 = time.perf_counter()
        first = schedule.next_after(START)
        cold_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        slots = schedule.slots(START, 1000)
        thousand_ms = (time.perf_counter() - t0) * 1000
        cold.append(cold_ms)
        thousand.append(thousand_ms)
        shown = "never" if first is None else first.strftime("%Y-%m-%dT%H:%MZ")
        label = f"{expression}{' (and)' if day_and else ''} {zone_name}"
        print(
            f"  {label:<44} next {shown:<17} {cold_ms:8.2f} ms cold;"
            f" {len(slots):>4} slots {thousand_ms:8.2f} ms"
        )
    for name, values in (("next_after cold", cold), ("slots(1000)", thousand)):
        print(
            f"  {name:<16} max {max(values):8.2f} ms   median {statistics.median(values):8.2f} ms"
        )
    recorder.add("cron_worst_next_after_cold", "ms", cold)
    recorder.add("cron_worst_slots_1000", "ms", thousand)


def bench_kinds(calls: int) -> None:
    print(f"next_after per kind ({calls:,} calls each, chained)")
    berlin = ZoneInfo("Europe/Berlin")
    kinds: list[tuple[str, Schedule, int]] = [
        ("interval", IntervalSchedule(every=timedelta(minutes=90), timezone=berlin), calls),
        ("oneshot", OneShotSchedule(at=START + timedelta(days=365)), calls),
        (
            "solar",
            SolarSchedule(event="sunset", latitude=52.52, longitude=13.405, timezone=berlin),
            max(1, calls // 50),
        ),
    ]
    for name, schedule, count in kinds:
        t0 = time.perf_counter()
        after = START
        for _ in range(count):
            slot = schedule.next_after(after)
            after = slot if slot is not None and name != "oneshot" else after
        print(f"  {name:<9} {rate(count, time.perf_counter() - t0)}")


def mixed_schedules(count: int, seed: int = 1) -> list[tuple[str, Schedule, datetime]]:
    """70% cron, 20% interval, 8% one-shot, 2% solar; distinct schedule objects each."""
    rng = random.Random(seed)
    zones = [ZoneInfo(z) for z in ZONES]
    made: list[tuple[str, Schedule, datetime]] = []
    for i in range(count):
        pick = rng.random()
        zone = rng.choice(zones)
        schedule: Schedule
        if pick < 0.70:
            schedule = CronSchedule(expression=rng.choice(EXPRESSIONS), timezone=zone)
        elif pick < 0.90:
            schedule = IntervalSchedule(
                every=timedelta(seconds=rng.randrange(30, 86400)),
                anchor=START + timedelta(seconds=rng.randrange(86400)),
                timezone=zone,
            )
        elif pick < 0.98:
            schedule = OneShotSchedule(
                at=START + timedelta(seconds=rng.randrange(30 * 86400)), timezone=zone
            )
        else:
            schedule = SolarSchedule(
                event=rng.choice(["sunrise", "sunset", "noon"]),
                latitude=rng.uniform(-60, 60),
                longitude=rng.uniform(-180, 180),
                timezone=zone,
            )
        made.append((f"sched-{i:08d}", schedule, START))
    return made


def bench_queue(count: int, recorder: Recorder) -> None:
    print(f"due queue with {count:,} mixed schedules")
    gc.collect()
    rss_before = rss_mib()
    schedules = mixed_schedules(count)
    gc.collect()
    rss_made = rss_mib()
    queue = DueQueue()
    t0 = time.perf_counter()
    queue.load(schedules)
    load_seconds = time.perf_counter() - t0
    gc.collect()
    rss_loaded = rss_mib()
    print(f"  load (first slot of each)   {load_seconds:8.3f} s")
    recorder.add("load_time", "s", [load_seconds], schedules=count)
    # Resident memory grown by the schedule values and the queue together, and by the queue.
    recorder.add("memory", "MiB", [rss_loaded - rss_before], schedules=count, part="all")
    recorder.add("memory", "MiB", [rss_loaded - rss_made], schedules=count, part="queue")
    # Memory is traced on a sample (tracemalloc slows allocation too much to time with it).
    sample = min(count, 50_000)
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    specs = mixed_schedules(sample, seed=2)
    made, _ = tracemalloc.get_traced_memory()
    other = DueQueue()
    other.load(specs)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"  memory per schedule         {(held - made) / sample:8.0f} B in the queue "
        f"+ {(made - before) / sample:.0f} B for the schedule value and its id"
    )
    del specs, other

    t0 = time.perf_counter()
    wakeups = 100_000
    now = START
    for _ in range(wakeups):
        queue.next_wakeup()
        queue.pop_due(now)  # nothing is due at START: the idle tick
    idle = (time.perf_counter() - t0) / wakeups
    print(f"  idle wake-up (next_wakeup + empty pop_due)  {idle * 1e6:6.2f} us")

    t0 = time.perf_counter()
    popped = 0
    now = START + timedelta(minutes=1)
    for _ in range(60):
        popped += len(queue.pop_due(now))
        now += timedelta(minutes=1)
    print(
        f"  steady ticks: 60 one-minute ticks popped {popped:,} in {time.perf_counter() - t0:.3f} s"
    )


def bench_herd(count: int, recorder: Recorder) -> None:
    at = START + timedelta(hours=1)
    queue = DueQueue()
    queue.load((f"herd-{i:08d}", OneShotSchedule(at=at), START) for i in range(count))
    queue.load((f"cron-{i:08d}", CronSchedule(expression="0 * * * *"), START) for i in range(count))
    t0 = time.perf_counter()
    popped = queue.pop_due(at)
    seconds = time.perf_counter() - t0
    slots = sum(len(d.slots) for d in popped)
    recorder.add("herd_pop", "s", [seconds], schedules=2 * count)
    recorder.add("herd_dropped", "count", [2 * count - slots], schedules=2 * count)
    print(
        f"herd: {2 * count:,} schedules due at one instant popped in {seconds:.3f} s "
        f"({len(popped):,} popped, {slots:,} slots, none dropped: {slots == 2 * count})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced counts")
    add_option(parser)
    args = parser.parse_args()
    recorder = Recorder("scheduling", args.json)
    calls = 20_000 if args.quick else 200_000
    bench_cron(calls, recorder)
    bench_cron_worst_cases(recorder)
    bench_kinds(calls // 4)
    for count in (10_000, 50_000) if args.quick else (100_000, 1_000_000):
        bench_queue(count, recorder)
    bench_herd(10_000 if args.quick else 50_000, recorder)
    recorder.write()


if __name__ == "__main__":
    main()
