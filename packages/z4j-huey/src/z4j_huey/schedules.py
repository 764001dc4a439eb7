"""Observing Huey's `@periodic_task` schedules, read-only.

Owns reading each periodic task's `validate_datetime` back into something a person can read: a
Huey `crontab(...)` becomes a five-field cron expression (recovered from the values the crontab
closure matches), and its next run times are computed the way Huey matches them: every field
must match (Huey ANDs day-of-month with day-of-week, where classic cron ORs them), in UTC when
the instance has `utc=True` (its default) and in local time otherwise. Any other validation
function is reported as `custom` and its next runs are found by asking it minute by minute.
Pure functions of their inputs plus `observe`, which reads the clock once. Never writes.
"""

from __future__ import annotations

import calendar
import datetime
import time
from collections.abc import Callable, Sequence
from typing import Any

from z4j_core.adapter import NEXT_RUNS, host_zone_name, native_definition, render_field
from z4j_core.wire import ObservedSchedule

SOURCE = "huey_periodic"
CUSTOM_PROBE_MINUTES = 2 * 24 * 60
SEARCH_DAYS = 5 * 366

# Huey's crontab closure keeps its matches as [month, day, day_of_week, hour, minute].
_FIELD_RANGES: tuple[range, ...] = (range(1, 13), range(1, 32), range(7), range(24), range(60))


def crontab_settings(validate: Callable[..., Any]) -> list[list[int]] | None:
    """The values a Huey `crontab(...)` function matches, or None for any other function."""
    code = getattr(validate, "__code__", None)
    closure = getattr(validate, "__closure__", None)
    if code is None or not closure or "cron_settings" not in code.co_freevars:
        return None
    settings = closure[code.co_freevars.index("cron_settings")].cell_contents
    if not isinstance(settings, list) or len(settings) != 5:
        return None
    month, day, weekday, hour, minute = (sorted({int(v) for v in f}) for f in settings)
    weekday = sorted({v % 7 for v in weekday})
    return [month, day, weekday, hour, minute]


def cron_expression(settings: Sequence[Sequence[int]]) -> str:
    """Five fields in cron's order (minute hour day month weekday, 0 = Sunday)."""
    month, day, weekday, hour, minute = settings
    r_month, r_day, r_weekday, r_hour, r_minute = _FIELD_RANGES
    return " ".join(
        (
            render_field(minute, r_minute),
            render_field(hour, r_hour),
            render_field(day, r_day),
            render_field(month, r_month),
            render_field(weekday, r_weekday, steps=False),
        )
    )


def next_crontab_runs(
    settings: Sequence[Sequence[int]], after: datetime.datetime, count: int = NEXT_RUNS
) -> list[datetime.datetime]:
    """The next `count` minutes strictly after `after` (naive) that Huey's crontab matches."""
    months, days, weekdays, hours, minutes = (set(f) for f in settings)
    hour_list, minute_list = sorted(hours), sorted(minutes)
    start = after.replace(second=0, microsecond=0)
    found: list[datetime.datetime] = []
    day = start.date()
    for _ in range(SEARCH_DAYS):
        # Huey's day of week: 0 = Sunday; Python's weekday(): 0 = Monday.
        if day.month in months and day.day in days and (day.weekday() + 1) % 7 in weekdays:
            for hour in hour_list:
                for minute in minute_list:
                    moment = datetime.datetime(day.year, day.month, day.day, hour, minute)
                    if moment > after:
                        found.append(moment)
                        if len(found) == count:
                            return found
        day += datetime.timedelta(days=1)
    return found


def next_custom_runs(
    validate: Callable[[datetime.datetime], Any],
    after: datetime.datetime,
    count: int = NEXT_RUNS,
    minutes: int = CUSTOM_PROBE_MINUTES,
) -> list[datetime.datetime]:
    """Ask an arbitrary validation function about each minute after `after`, for a bounded time."""
    moment = after.replace(second=0, microsecond=0)
    found: list[datetime.datetime] = []
    for _ in range(minutes):
        moment += datetime.timedelta(minutes=1)
        if validate(moment):
            found.append(moment)
            if len(found) == count:
                break
    return found


def to_epoch(moment: datetime.datetime, utc: bool) -> float:
    if utc:
        return float(calendar.timegm(moment.timetuple()))
    return time.mktime(moment.timetuple())


def _validator(task_class: Any) -> Callable[..., Any] | None:
    """The user's function behind `periodic_task(validate_datetime)`."""
    method = getattr(task_class, "validate_datetime", None)
    code = getattr(method, "__code__", None)
    closure = getattr(method, "__closure__", None)
    if code is not None and closure and "validate_datetime" in code.co_freevars:
        inner = closure[code.co_freevars.index("validate_datetime")].cell_contents
        if callable(inner):
            return inner  # type: ignore[no-any-return]
    return None


def observe(huey: Any, now: datetime.datetime | None = None) -> list[ObservedSchedule]:
    """Every periodic task of `huey`, with its expression and next run times."""
    utc = bool(getattr(huey, "utc", True))
    if now is None:
        now = (
            datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
            if utc
            else datetime.datetime.now()
        )
    zone = "UTC" if utc else host_zone_name()
    observed = []
    for name, task_class in sorted(huey._registry._registry.items()):
        if not hasattr(task_class, "validate_datetime"):
            continue
        validate = _validator(task_class)
        settings = crontab_settings(validate) if validate is not None else None
        if settings is not None:
            kind, expression = "cron", cron_expression(settings)
            runs = next_crontab_runs(settings, now)
            # Huey requires every field to match: day-of-month AND day-of-week.
            definition = native_definition(
                {"cron": expression, "day_and": True}, timezone=zone, options=_options(task_class)
            )
        elif validate is not None:
            kind = "custom"
            expression = f"{validate.__module__}.{getattr(validate, '__qualname__', '?')}"
            instance = task_class()
            runs = next_custom_runs(instance.validate_datetime, now)
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
                next_runs=[to_epoch(r, utc) for r in runs],
                definition=definition,
            )
        )
    return observed


def _options(task_class: Any) -> dict[str, Any]:
    """Huey has one queue per instance; a periodic task's priority is its only option."""
    priority = getattr(task_class, "default_priority", None)
    return {"priority": priority} if isinstance(priority, int) else {}
