"""Fuzz of whole schedules as users write them (every kind, zone, instant and duration field):
the core answers a `ScheduleError` naming the value, or a schedule whose next slots are strictly
increasing and within bounds. Never another exception, never a hang.

Examples scale with `Z4J_FUZZ_SCALE` (bench/bench_fuzz_schedules.py runs it at full count). No
timed assertion: the slowest call is printed, and a call past `HANG_SECONDS` fails as a hang.
"""

from __future__ import annotations

import time
from datetime import datetime
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings

from z4j_core.scheduling import ScheduleError, check_fires_within, schedule_from_dict
from z4j_core.scheduling.limits import MAX_INSTANT
from z4j_core.testing.schedule_strategies import examples, instants, schedule_specs

#: Far above the 1 s target (bench/bench_fuzz_schedules.py prints the real figures): only a
#: call that hangs fails here.
HANG_SECONDS = 20.0
slowest: list[tuple[float, str]] = []


def _timed(what: str, call: Any) -> Any:
    began = time.perf_counter()
    try:
        return call()
    finally:
        took = time.perf_counter() - began
        slowest.append((took, what))
        assert took < HANG_SECONDS, f"{what} took {took:.1f} s"


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(spec=schedule_specs(), after=instants())
def test_any_schedule_is_refused_by_name_or_answers_in_bounds(
    spec: dict[str, Any], after: datetime
) -> None:
    try:
        schedule = _timed(f"parse {spec}", lambda: schedule_from_dict(spec))
    except ScheduleError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    try:
        _timed(f"horizon {spec} after {after}", lambda: check_fires_within(schedule, after))
    except ScheduleError as exc:  # no slot soon (or ever): said in one line
        assert str(exc) and "\n" not in str(exc)
    slots = _timed(f"slots {spec} after {after}", lambda: schedule.slots(after, 20))
    assert all(a < b for a, b in pairwise(slots)), slots
    assert all(after < slot < MAX_INSTANT for slot in slots), (after, slots)
    for slot in slots:
        schedule.due_at("fuzz", slot)
    schedule.describe()
    assert schedule_from_dict(schedule.to_dict()) == schedule


def teardown_module() -> None:
    if slowest:
        took, what = max(slowest)
        print(f"\nslowest of {len(slowest)} calls: {took * 1000:.1f} ms ({what[:160]})")
