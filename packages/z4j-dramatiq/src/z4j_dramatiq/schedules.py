"""Observing Dramatiq's periodic schedules, read-only: periodiq and dramatiq-crontab.

periodiq's `periodic=cron("...")` actors are read as its scheduler reads them: in that process's
local zone (pendulum's), the day fields ORed when both are restricted; next runs come from
`z4j_core.scheduling.CronSchedule`. dramatiq-crontab's APScheduler jobs (read only when the app
imported it) give their next runs from their own triggers, in their zones.

Pure but for `observe`, which reads the clock once. Never writes, sends or starts a scheduler.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from z4j_core.adapter import NEXT_RUNS, native_definition, render_field
from z4j_core.scheduling import CronSchedule, ScheduleError
from z4j_core.scheduling.cron import ALIASES
from z4j_core.wire import ObservedSchedule

PERIODIQ = "periodiq"
CRONTAB = "dramatiq_crontab"

#: The APScheduler cron fields that dramatiq-crontab leaves at these values in a plain cron.
_PLAIN_FIELDS = {"second": "0", "year": "*", "week": "*"}
#: Each cron field's values, and whether it may be written `*/n`: not a day field, which would
#: then start with `*` and count as unrestricted in cron's day rule.
_RANGES = (range(60), range(24), range(1, 32), range(1, 13), range(7))
_STEPS = (True, True, False, True, False)


def local_zone_name() -> str:
    """The zone periodiq reads its specs in: pendulum's local time zone (UTC if unknown)."""
    try:
        import pendulum

        name = str(pendulum.local_timezone().name)
        ZoneInfo(name)
        return name
    except Exception:
        return "UTC"


def periodiq_expression(spec: Any) -> str:
    """The five cron fields of a periodiq `CronSpec` (`@hourly` spelled out, as periodiq does)."""
    text = " ".join(str(spec).split())
    return ALIASES.get(text, text)


def next_cron_runs(
    expression: str, zone: str, now: datetime, count: int = NEXT_RUNS, day_and: bool = False
) -> list[float]:
    """The next `count` runs strictly after `now` (aware), as epoch seconds; [] if unreadable."""
    try:
        schedule = CronSchedule(expression=expression, timezone=ZoneInfo(zone), day_and=day_and)
    except (ScheduleError, ValueError):
        return []
    return [slot.timestamp() for slot in schedule.slots(now, count)]


def periodiq_definition(spec: Any, zone: str, queue: str) -> dict[str, Any]:
    """What `z4j schedules adopt` needs, from the values periodiq's `validate` matches: it
    compares `isoweekday()` (Monday 1 .. Sunday 7) with the parsed weekdays, so a `0` or `sun`
    never matches; and it ORs the day fields only when both have fewer values than the whole
    range (counting 0-7 for weekdays), else ANDs them."""
    try:
        minutes, hours, days, months, weekdays = (list(f) for f in spec.astuple())
    except Exception:
        return {"refused": "periodiq's spec could not be read"}
    matched = sorted({d % 7 for d in weekdays if 1 <= d <= 7})
    if not matched:
        return {"refused": "periodiq never runs it: its only weekday is Sunday written as 0 or "
                "sun, which periodiq's validate never matches (it counts Sunday as 7)"}  # fmt: skip
    cron = " ".join(map(render_field, (minutes, hours, days, months, matched), _RANGES, _STEPS))
    either = len(days) < 31 and len(weekdays) < 7
    timing = {"cron": cron, "day_and": not either}
    return native_definition(timing, timezone=zone, options={"queue": queue})


def observe_periodiq(broker: Any, now: datetime) -> Iterator[ObservedSchedule]:
    zone = local_zone_name()
    for name in sorted(broker.get_declared_actors()):
        actor = broker.get_actor(name)
        spec = actor.options.get("periodic")
        if spec is None:
            continue
        definition = periodiq_definition(spec, zone, actor.queue_name)
        runs: list[float] = []  # the runs periodiq makes: its own day rule and Sunday
        if cron := definition.get("cron"):
            runs = next_cron_runs(cron, zone, now, day_and=definition["day_and"])
        yield ObservedSchedule(
            source=PERIODIQ,
            name=name,
            task=name,
            kind="cron",
            expression=periodiq_expression(spec) + ("" if zone == "UTC" else f" ({zone})"),
            next_runs=runs,
            definition=definition,
        )


def crontab_reading(trigger: Any, zone: str, queue: str) -> tuple[str, str, dict[str, Any]]:
    """(kind, expression, definition) of an APScheduler trigger as dramatiq-crontab builds them.

    The definition is what `z4j schedules adopt` needs: a `CronTrigger` ANDs every field
    (weekdays by name; APScheduler numbers them from Monday = 0, which dramatiq-crontab
    refuses), an `IntervalTrigger` runs on a grid from its `start_date`."""
    fields = {f.name: str(f) for f in getattr(trigger, "fields", ())}
    options = {"queue": queue}
    if fields:
        order = ("minute", "hour", "day", "month", "day_of_week")
        expression = " ".join(fields.get(name, "*") for name in order)
        if any(fields.get(name, plain) != plain for name, plain in _PLAIN_FIELDS.items()):
            refused = f"its trigger uses seconds, years or weeks: {trigger}"
        elif any(c.isdigit() for c in fields.get("day_of_week", "*")):
            refused = "its weekdays are APScheduler numbers (Monday = 0): use names"
        else:
            timing = {"cron": expression, "day_and": True}
            return "cron", expression, native_definition(timing, timezone=zone, options=options)
        return "cron", expression, {"refused": refused}
    interval = getattr(trigger, "interval", None)
    if isinstance(interval, timedelta):
        start = getattr(trigger, "start_date", None)
        anchor = start.timestamp() if isinstance(start, datetime) else None
        timing = {"every": interval.total_seconds(), "anchor": anchor}
        definition = native_definition(timing, timezone=zone, options=options)
        return "interval", f"every {int(interval.total_seconds())}s", definition
    return "custom", str(trigger), {"refused": f"its trigger has no z4j form: {trigger}"}


def trigger_runs(trigger: Any, now: datetime, count: int = NEXT_RUNS) -> list[float]:
    """Ask the trigger itself (APScheduler's arithmetic) for its next runs after `now`."""
    runs: list[float] = []
    fire = trigger.get_next_fire_time(None, now)
    while fire is not None and len(runs) < count:
        runs.append(fire.timestamp())
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return runs


def observe_crontab(broker: Any, now: datetime) -> Iterator[ObservedSchedule]:
    scheduler = getattr(sys.modules.get(CRONTAB), "scheduler", None)
    for job in scheduler.get_jobs() if scheduler is not None else ():
        actor = getattr(getattr(job, "func", None), "__self__", None)
        if actor is None or getattr(actor, "broker", None) is not broker:
            continue
        zone = str(getattr(job.trigger, "timezone", "UTC"))
        kind, expression, definition = crontab_reading(job.trigger, zone, actor.queue_name)
        yield ObservedSchedule(
            source=CRONTAB,
            name=str(job.name),
            task=actor.actor_name,
            kind=kind,
            expression=expression + ("" if zone == "UTC" else f" ({zone})"),
            next_runs=trigger_runs(job.trigger, now),
            definition=definition,
        )


def observe(broker: Any, now: datetime | None = None) -> list[ObservedSchedule]:
    """Every periodic actor of `broker` that periodiq or dramatiq-crontab would send."""
    now = now or datetime.now(timezone.utc)
    return [*observe_periodiq(broker, now), *observe_crontab(broker, now)]
