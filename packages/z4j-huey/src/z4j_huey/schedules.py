"""Observing Huey's `@periodic_task` schedules, read-only.

Owns reading each periodic task's `validate_datetime` back into something a person can read: a
Huey `crontab(...)` becomes a five-field cron expression (recovered from the values the crontab
closure matches), and its next run times are computed the way Huey matches them: every field
must match (Huey ANDs day-of-month with day-of-week, where classic cron ORs them), on Huey's
naive clock (UTC when the instance has `utc=True`, its default, local time otherwise). Any other
validation function is reported as `custom` and its next runs are found by asking it minute by
minute. Pure functions of their inputs plus `observe`, which reads the clock once. Never writes.
"""

from __future__ import annotations

import calendar
import datetime
import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

from z4j_core.adapter import NEXT_RUNS, dotted_name, host_zone_name, native_definition, render_field
from z4j_core.scheduling import ScheduleError, compile_cron
from z4j_core.wire import ObservedSchedule
from z4j_huey.enqueue import huey_now

SOURCE = "huey_periodic"
CUSTOM_PROBE_MINUTES = 2 * 24 * 60
_EPOCH = datetime.datetime(1970, 1, 1)

# Huey's crontab closure keeps its matches as [month, day, day_of_week, hour, minute].
_FIELD_RANGES: tuple[range, ...] = (range(1, 13), range(1, 32), range(7), range(24), range(60))


def _closure_value(function: Any, name: str) -> Any:
    """The value `function` closes over as `name`, or None."""
    code = getattr(function, "__code__", None)
    closure = getattr(function, "__closure__", None)
    if code is None or not closure or name not in code.co_freevars:
        return None
    return closure[code.co_freevars.index(name)].cell_contents


def crontab_settings(validate: Callable[..., Any] | None) -> list[list[int]] | None:
    """The values a Huey `crontab(...)` function matches, or None for any other function."""
    settings = _closure_value(validate, "cron_settings")
    if not isinstance(settings, list) or len(settings) != 5:
        return None
    month, day, weekday, hour, minute = (sorted({int(v) for v in f}) for f in settings)
    return [month, day, sorted({v % 7 for v in weekday}), hour, minute]


def cron_expression(settings: Sequence[Sequence[int]]) -> str:
    """Five fields in cron's order (minute hour day month weekday, 0 = Sunday)."""
    # Huey's order is month, day, weekday, hour, minute; a weekday is never written as a step.
    fields = (render_field(settings[i], _FIELD_RANGES[i], steps=i != 2) for i in (4, 3, 1, 0, 2))
    return " ".join(fields)


def next_crontab_runs(
    settings: Sequence[Sequence[int]], after: datetime.datetime, count: int = NEXT_RUNS
) -> list[datetime.datetime]:
    """The next `count` minutes strictly after `after` (naive) that Huey's crontab matches."""
    try:
        rule = compile_cron(cron_expression(settings), day_and=True)
    except ScheduleError:  # no date matches (a crontab for February 31st)
        return []
    found: list[datetime.datetime] = []
    wall = rule.next_wall(calendar.timegm(after.timetuple()) + 1)
    while wall is not None and len(found) < count:
        found.append(_EPOCH + datetime.timedelta(seconds=wall))
        wall = rule.next_wall(wall + 1)
    return found


def next_custom_runs(
    validate: Callable[[datetime.datetime], Any], after: datetime.datetime
) -> list[datetime.datetime]:
    """Ask an arbitrary validation function about each minute after `after`, for a bounded time."""
    start = after.replace(second=0, microsecond=0)
    probes = (start + datetime.timedelta(minutes=m) for m in range(1, CUSTOM_PROBE_MINUTES + 1))
    return list(itertools.islice(filter(validate, probes), NEXT_RUNS))


def observe(huey: Any, now: datetime.datetime | None = None) -> list[ObservedSchedule]:
    """Every periodic task of `huey`, with its expression and next run times."""
    utc = bool(getattr(huey, "utc", True))
    now = huey_now(huey) if now is None else now
    zone = "UTC" if utc else host_zone_name()
    to_epoch = calendar.timegm if utc else time.mktime  # Huey's naive clock: UTC or local time
    observed = []
    for name, task_class in sorted(huey._registry._registry.items()):
        if not hasattr(task_class, "validate_datetime"):
            continue
        # The user's function behind `periodic_task(validate_datetime)`.
        validate = _closure_value(task_class.validate_datetime, "validate_datetime")
        settings = crontab_settings(validate)
        if settings is not None:
            kind, expression = "cron", cron_expression(settings)
            runs = next_crontab_runs(settings, now)
            # Huey has one queue per instance: a periodic task's priority is its only option.
            priority = getattr(task_class, "default_priority", None)
            options = {"priority": priority} if isinstance(priority, int) else {}
            timing = {"cron": expression, "day_and": True}  # Huey ANDs the day fields
            definition = native_definition(timing, timezone=zone, options=options)
        elif callable(validate):
            kind, expression = "custom", dotted_name(validate)
            runs = next_custom_runs(task_class().validate_datetime, now)
            definition = {"refused": f"its validate_datetime is a function ({expression}), "
                          "not a crontab: write it as a z4j schedule"}  # fmt: skip
        else:
            kind, expression, runs = "custom", "validate_datetime", []
            definition = {"refused": "its validate_datetime cannot be read"}
        observed.append(
            ObservedSchedule(
                source=SOURCE,
                name=name,
                task=name,
                kind=kind,
                expression=expression + ("" if utc else " (local time)"),
                next_runs=[float(to_epoch(r.timetuple())) for r in runs],
                definition=definition,
            )
        )
    return observed
