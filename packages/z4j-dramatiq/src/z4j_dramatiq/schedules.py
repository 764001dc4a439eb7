"""Observing Dramatiq's periodic schedules, read-only: periodiq and dramatiq-crontab.

- periodiq: an actor declared with `periodic=cron("...")`. periodiq's scheduler (a separate
  `periodiq app` process) reads the spec in its process's local time zone (pendulum's), and
  matches day-of-month OR day-of-week when both are restricted, as classic cron does. Next runs
  come from `z4j_core.scheduling.CronSchedule` in that zone.
- dramatiq-crontab: jobs registered with `@cron("...")` / `@interval(seconds=...)` on its
  APScheduler `scheduler` (run by Django's `crontab` command). Next runs come from each job's
  own APScheduler trigger, in the trigger's time zone. It is read only when the app imported it.

Pure functions of their inputs plus `observe`, which reads the clock once. Never writes, never
sends a message, never starts a scheduler.
"""

from __future__ import annotations

import datetime
import sys
from typing import Any
from zoneinfo import ZoneInfo

from z4j_core.scheduling import CronSchedule, ScheduleError
from z4j_core.wire import ObservedSchedule

PERIODIQ = "periodiq"
CRONTAB = "dramatiq_crontab"
NEXT_RUNS = 5

_NAMED = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_UTC = datetime.timezone.utc


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
    """The five cron fields of a periodiq `CronSpec` (`@hourly` spelled out)."""
    text = " ".join(str(spec).split())
    return _NAMED.get(text, text)


def next_cron_runs(
    expression: str, zone: str, now: datetime.datetime, count: int = NEXT_RUNS
) -> list[float]:
    """The next `count` runs strictly after `now` (aware), as epoch seconds; [] if unreadable."""
    try:
        schedule = CronSchedule(expression=expression, timezone=ZoneInfo(zone), day_and=False)
    except (ScheduleError, ValueError):
        return []
    runs: list[float] = []
    moment: datetime.datetime | None = now
    while moment is not None and len(runs) < count:
        moment = schedule.next_after(moment)
        if moment is not None:
            runs.append(moment.timestamp())
    return runs


def observe_periodiq(broker: Any, now: datetime.datetime) -> list[ObservedSchedule]:
    zone = local_zone_name()
    observed = []
    for name in sorted(broker.get_declared_actors()):
        spec = broker.get_actor(name).options.get("periodic")
        if spec is None:
            continue
        expression = periodiq_expression(spec)
        observed.append(
            ObservedSchedule(
                source=PERIODIQ,
                name=name,
                task=name,
                kind="cron",
                expression=expression + ("" if zone == "UTC" else f" ({zone})"),
                next_runs=next_cron_runs(expression, zone, now),
                read_only=True,
            )
        )
    return observed


def crontab_expression(trigger: Any) -> tuple[str, str]:
    """(kind, expression) of an APScheduler trigger as dramatiq-crontab builds them."""
    fields = {f.name: str(f) for f in getattr(trigger, "fields", ())}
    if fields:
        order = ("minute", "hour", "day", "month", "day_of_week")
        return "cron", " ".join(fields.get(name, "*") for name in order)
    interval = getattr(trigger, "interval", None)
    if isinstance(interval, datetime.timedelta):
        return "interval", f"every {int(interval.total_seconds())}s"
    return "custom", str(trigger)


def trigger_runs(trigger: Any, now: datetime.datetime, count: int = NEXT_RUNS) -> list[float]:
    """Ask the trigger itself (APScheduler's arithmetic) for its next runs after `now`."""
    runs: list[float] = []
    previous = None
    moment = now
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None:
            break
        runs.append(fire.timestamp())
        previous = fire
        moment = fire + datetime.timedelta(microseconds=1)
    return runs


def observe_crontab(broker: Any, now: datetime.datetime) -> list[ObservedSchedule]:
    module = sys.modules.get("dramatiq_crontab")
    scheduler = getattr(module, "scheduler", None)
    if scheduler is None:
        return []
    observed = []
    for job in scheduler.get_jobs():
        actor = getattr(getattr(job, "func", None), "__self__", None)
        if actor is None or getattr(actor, "broker", None) is not broker:
            continue
        kind, expression = crontab_expression(job.trigger)
        zone = str(getattr(job.trigger, "timezone", "UTC"))
        observed.append(
            ObservedSchedule(
                source=CRONTAB,
                name=str(job.name),
                task=actor.actor_name,
                kind=kind,
                expression=expression + ("" if zone == "UTC" else f" ({zone})"),
                next_runs=trigger_runs(job.trigger, now),
                read_only=True,
            )
        )
    return observed


def observe(broker: Any, now: datetime.datetime | None = None) -> list[ObservedSchedule]:
    """Every periodic actor of `broker` that periodiq or dramatiq-crontab would send."""
    now = now or datetime.datetime.now(_UTC)
    return observe_periodiq(broker, now) + observe_crontab(broker, now)
