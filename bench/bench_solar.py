"""Solar schedule benchmarks: next_after over a year of dates, slots(..., 1000), and accuracy.

Prints figures; never asserts on time. Accuracy is the largest difference, over a year of
eight events at the test suite's fourteen places, between `SolarSchedule.event_on` and the
independent elevation search the tests use (z4j_core/testing/solar_oracle.py,
a 5-minute walk of astral's elevation and azimuth refined to the second).

    .venv/bin/python bench/bench_solar.py [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from benchjson import Recorder, add_option

from z4j_core.scheduling import SolarSchedule
from z4j_core.scheduling.solar import _event_seconds
from z4j_core.testing.solar_oracle import CITIES, event_key, reference_year

UTC = timezone.utc
YEAR = 2025
PLACES = {city[0]: city for city in CITIES}
TIMED = ("Quito", "Dhaka", "Berlin", "Tromso", "Longyearbyen")
EVENTS = (
    ("sunrise", "civil"),
    ("sunset", "civil"),
    ("dawn", "civil"),
    ("dawn", "nautical"),
    ("dusk", "civil"),
    ("dusk", "astronomical"),
    ("noon", "civil"),
    ("midnight", "civil"),
)


def schedule_for(name: str, event: str, depression: str = "civil") -> SolarSchedule:
    _, latitude, longitude, zone = PLACES[name]
    return SolarSchedule(
        event=event,
        depression=depression,
        latitude=latitude,
        longitude=longitude,
        timezone=ZoneInfo(zone),
    )


def bench_next_after(recorder: Recorder) -> None:
    print("next_after over 365 dates of 2025 (after = 06:00 UTC each day), microseconds")
    print(f"  {'place':<13} {'event':<16} {'cold median':>11} {'cold max':>9} {'warm median':>11}")
    for name in TIMED:
        for event, depression in (("sunrise", "civil"), ("dusk", "nautical"), ("noon", "civil")):
            schedule = schedule_for(name, event, depression)
            cold, warm = [], []
            for day in range(365):
                after = datetime(YEAR, 1, 1, 6, tzinfo=UTC) + timedelta(days=day)
                _event_seconds.cache_clear()
                started = time.perf_counter()
                schedule.next_after(after)
                cold.append((time.perf_counter() - started) * 1e6)
                started = time.perf_counter()
                schedule.next_after(after)
                warm.append((time.perf_counter() - started) * 1e6)
            label = event_key(event, depression)
            print(
                f"  {name:<13} {label:<16} {statistics.median(cold):>11.0f} {max(cold):>9.0f}"
                f" {statistics.median(warm):>11.1f}"
            )
            recorder.add("next_after_cold", "us", cold, place=name, event=label)
            recorder.add("next_after_warm", "us", warm, place=name, event=label)


def bench_slots(recorder: Recorder) -> None:
    print("slots(2025-01-01, 1000), cold cache, seconds")
    for name in TIMED:
        for event, depression in (("sunrise", "civil"), ("dusk", "astronomical")):
            schedule = schedule_for(name, event, depression)
            _event_seconds.cache_clear()
            started = time.perf_counter()
            found = schedule.slots(datetime(YEAR, 1, 1, tzinfo=UTC), 1000)
            elapsed = time.perf_counter() - started
            last = found[-1].date().isoformat() if found else "-"
            label = event_key(event, depression)
            print(f"  {name:<13} {label:<20} {elapsed:6.3f} s  ({len(found)} slots, to {last})")
            recorder.add("slots_1000", "s", [elapsed], place=name, event=label)


def bench_accuracy(recorder: Recorder) -> None:
    print(f"difference from the independent search, {YEAR}, seconds (grazing dates left out)")
    worst_all = 0
    for name, latitude, longitude, zone in CITIES:
        reference = reference_year(latitude, longitude, ZoneInfo(zone), YEAR)
        worst, worst_transit, mismatches, grazing, fired = 0, 0, 0, 0, 0
        for event, depression in EVENTS:
            transit = event in ("noon", "midnight")
            schedule = schedule_for(name, event, depression)
            for day, (expected, near) in reference[event_key(event, depression)].items():
                if near:
                    grazing += 1
                    continue
                found = schedule.event_on(day)
                if (found is None) != (expected is None):
                    mismatches += 1
                elif found is not None and expected is not None:
                    fired += 1
                    difference = abs(int(found.timestamp()) - expected)
                    if transit:
                        worst_transit = max(worst_transit, difference)
                    else:
                        worst = max(worst, difference)
        worst_all = max(worst_all, worst, worst_transit)
        print(
            f"  {name:<13} lat {latitude:7.2f}  max {worst:2d} s (rise/set/twilight),"
            f" {worst_transit:2d} s (noon/midnight) over {fired} events;"
            f" {mismatches} dates disagree, {grazing} grazing"
        )
        recorder.add("max_difference", "s", [worst, worst_transit], place=name)
    print(f"  all places: max {worst_all} s")
    print(
        "  (noon/midnight near the zenith or nadir: astral's azimuth is pinned within 0.06 deg"
        " of them, which blurs the reference by some seconds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_option(parser)
    args = parser.parse_args()
    recorder = Recorder("solar", args.json)
    bench_next_after(recorder)
    bench_slots(recorder)
    bench_accuracy(recorder)
    recorder.write()


if __name__ == "__main__":
    main()
