"""Observing celery beat's schedules, read-only: never written, never re-enabled, never fired.

Owns reading three sources into `wire.ObservedSchedule`s: the app's static `beat_schedule`
(with the last runs the default scheduler's shelve file recorded, when readable),
`django-celery-beat` periodic tasks (when Django is configured with it) and `celery-redbeat`
entries in Redis (whose sorted-set score is the true next run). Next runs are computed the way
celery beat computes them: in the app's timezone, and for a crontab with both day fields
restricted only on days where both match (Celery ANDs them, classic cron ORs them). The math is
`z4j_core.scheduling`'s; only `observe` reads the clock, once.
"""

from __future__ import annotations

import json
import logging
import os
import shelve
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from z4j_core.adapter import NEXT_RUNS, native_definition, render_field
from z4j_core.wire import ObservedSchedule

log = logging.getLogger("z4j.celery")

SOURCE_STATIC = "celery_beat"
SOURCE_DJANGO = "django_celery_beat"
SOURCE_REDBEAT = "redbeat"

# Cron field order as written: minute hour day-of-month month day-of-week (0 = Sunday).
_RANGES = (range(60), range(24), range(1, 32), range(1, 13), range(7))

# Celery's solar events -> (z4j event, depression)
SOLAR_EVENTS: dict[str, tuple[str, str]] = {
    **{f"{e}_{d}": (e, d) for e in ("dawn", "dusk") for d in ("astronomical", "nautical", "civil")},
    "sunrise": ("sunrise", "civil"),
    "solar_noon": ("noon", "civil"),
    "sunset": ("sunset", "civil"),
}

UTC = timezone.utc


def cron_fields(minute: Iterable[int], hour: Iterable[int], day_of_month: Iterable[int],
                month: Iterable[int], day_of_week: Iterable[int]) -> str:  # fmt: skip
    """Five cron fields from the value sets a Celery crontab matches."""
    sets = (minute, hour, day_of_month, month, {int(d) % 7 for d in day_of_week})
    return " ".join(render_field(values, full) for values, full in zip(sets, _RANGES, strict=True))


def zone_name(app: Any) -> str:
    zone = getattr(app, "timezone", None)
    name = getattr(zone, "key", None) or getattr(zone, "zone", None) or str(zone or "UTC")
    return "UTC" if name in ("UTC", "Etc/UTC", "utc") else str(name)


@dataclass
class Rendered:
    """A beat schedule as z4j reads it. `schedule`: its `z4j_core.scheduling` value (None for an
    interval, which runs `interval` seconds after its last run). `timing`: `native_definition`'s,
    cron read with celery's AND of the day fields, an interval (anchored by adopt on the next
    run), or z4j's solar fields."""

    kind: str
    expression: str
    schedule: Any
    timing: dict[str, Any]
    interval: float = 0.0

    def runs(self, now: datetime, last: datetime | None, first: float | None) -> list[float]:
        """The next `NEXT_RUNS` runs after `now` as celery beat makes them (epoch seconds): from
        `first`, the run its scheduler has due, when known. An interval runs `interval` after
        its last run (or beat's own start, which only beat knows: then `now`), and at once when
        that moment has passed."""
        every = self.interval
        if self.schedule is None:
            if first is None:
                first = max((last or now).timestamp() + every, now.timestamp())
            return [first + i * every for i in range(NEXT_RUNS)] if every > 0 else []
        if first is None:
            return [slot.timestamp() for slot in self.schedule.slots(now, NEXT_RUNS)]
        after = max(now, datetime.fromtimestamp(first + 1, UTC))
        return [first, *(slot.timestamp() for slot in self.schedule.slots(after, NEXT_RUNS - 1))]


def render(value: Any, zone: str) -> Rendered | None:
    """Read a celery beat schedule (crontab, schedule/timedelta/number, solar), else None."""
    from z4j_core import scheduling

    tz = scheduling.resolve_zone(zone)
    kind = type(value).__name__
    if kind == "crontab":
        expression = cron_fields(
            value.minute, value.hour, value.day_of_month, value.month_of_year, value.day_of_week
        )
        cron = scheduling.CronSchedule(expression=expression, day_and=True, timezone=tz)
        fields = expression.split()
        shown = expression + (" (day and weekday)" if "*" not in (fields[2], fields[4]) else "")
        shown += "" if zone == "UTC" else f" ({zone})"
        return Rendered("cron", shown, cron, {"cron": expression, "day_and": True})
    if kind == "solar":
        event, depression = SOLAR_EVENTS.get(value.event, (value.event, "civil"))
        solar = {"event": event, "latitude": float(value.lat), "longitude": float(value.lon)}
        solar["depression"] = depression
        schedule = scheduling.SolarSchedule(**solar, timezone=tz)
        shown = f"{value.event} at {value.lat},{value.lon}"
        return Rendered("solar", shown, schedule, {"solar": solar})
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = timedelta(seconds=value)
    # a timedelta, or celery.schedules.schedule
    every = value if isinstance(value, timedelta) else getattr(value, "run_every", None)
    if not isinstance(every, timedelta):
        return None
    seconds = every.total_seconds()
    shown = f"every {int(seconds) if seconds.is_integer() else f'{seconds:g}'}s"
    return Rendered("interval", shown, None, {"every": seconds, "anchor": None}, seconds)


def observe(app: Any, now: datetime | None = None) -> list[ObservedSchedule]:
    """Every schedule celery beat would run for `app` that this process can see."""
    now = now or datetime.now(UTC)
    zone = zone_name(app)
    observed = observe_static(app, now, zone, last_runs(app))
    for source in (observe_django, observe_redbeat):
        try:
            observed.extend(source(app, now, zone))
        except Exception:
            log.warning("z4j could not read %s schedules", source.__name__[8:], exc_info=True)
    return observed


def observe_static(
    app: Any, now: datetime, zone: str, last: Mapping[str, datetime]
) -> list[ObservedSchedule]:
    observed = []
    for name, entry in sorted((app.conf.beat_schedule or {}).items()):
        try:
            observed.append(
                _observed(SOURCE_STATIC, name, entry, now, zone, last_run=last.get(name))
            )
        except Exception:
            log.warning("z4j could not read beat_schedule entry %r", name, exc_info=True)
    return [item for item in observed if item is not None]


def _observed(
    source: str,
    name: str,
    entry: Mapping[str, Any],
    now: datetime,
    zone: str,
    *,
    last_run: datetime | None,
    first_run: float | None = None,
) -> ObservedSchedule | None:
    rendered = render(entry.get("schedule"), zone)
    if rendered is None:
        return None
    relative = getattr(entry.get("schedule"), "relative", False)
    details = _details(entry, last_run)
    expression = rendered.expression + (f" [{details}]" if details else "")
    return ObservedSchedule(
        source=source,
        name=name,
        task=str(entry.get("task") or ""),
        kind=rendered.kind,
        expression=expression,
        next_runs=rendered.runs(now, last_run, first_run),
        definition=native_definition(
            rendered.timing,
            timezone=zone,
            args=entry.get("args") or (),
            kwargs=entry.get("kwargs") or {},
            options=adopt_options(entry.get("options") or {}),
            unsupported=["relative=True (runs rounded to the interval)"] if relative else (),
        ),
    )


def adopt_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A beat entry's options in z4j's terms (`expires` in seconds); any other option keeps
    its name, and adopt reports it as having no equivalent."""
    found: dict[str, Any] = {}
    for key, value in options.items():
        if key == "expires" and isinstance(value, (int, float)) and not isinstance(value, bool):
            found["expires_seconds"] = float(value)
        elif key in ("queue", "priority") and value is not None:
            found[key] = value
        else:
            found[str(key)] = repr(value)[:80]
    return found


def _details(entry: Mapping[str, Any], last_run: datetime | None) -> str:
    parts = []
    args, kwargs = entry.get("args"), entry.get("kwargs")
    if args:
        parts.append(f"args={_short(list(args))}")
    if kwargs:
        parts.append(f"kwargs={_short(sorted(dict(kwargs)))}")
    options = entry.get("options") or {}
    if options.get("queue"):
        parts.append(f"queue={options['queue']}")
    if last_run is not None:
        parts.append(f"last run {last_run.astimezone(UTC).isoformat(timespec='seconds')}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def last_runs(app: Any, filename: str | None = None) -> dict[str, datetime]:
    """Last run times from the default persistent scheduler's shelve file, when readable."""
    filename = filename or str(app.conf.beat_schedule_filename or "celerybeat-schedule")
    if not any(os.path.exists(filename + s) for s in ("", ".db", ".dat", ".dir", ".pag")):
        return {}
    for flag in ("ru", "r"):  # gdbm: read without taking beat's lock
        try:
            with shelve.open(filename, flag=flag) as store:
                entries = dict(store.get("entries") or {})
            break
        except Exception:
            continue
    else:
        return {}
    found = {}
    for name, entry in entries.items():
        when = getattr(entry, "last_run_at", None)
        if isinstance(when, datetime):
            found[str(name)] = when if when.tzinfo else when.replace(tzinfo=UTC)
    return found


def observe_django(app: Any, now: datetime, zone: str) -> list[ObservedSchedule]:
    """django-celery-beat's enabled periodic tasks, when Django is configured with it."""
    if "django" not in sys.modules and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return []  # never import Django into an app that does not use it
    try:
        from django.apps import apps as django_apps
        from django.conf import settings
    except ImportError:
        return []
    ready = settings.configured and django_apps.ready
    if not ready or not django_apps.is_installed("django_celery_beat"):
        return []
    from django.db import close_old_connections
    from django_celery_beat.models import PeriodicTask

    observed = []
    try:
        for task in PeriodicTask.objects.filter(enabled=True).order_by("name"):
            schedule = _django_schedule(task)
            if schedule is None:
                continue
            entry = {
                "task": task.task,
                "schedule": schedule,
                "args": json.loads(task.args or "[]"),
                "kwargs": json.loads(task.kwargs or "{}"),
                "options": {"queue": task.queue} if task.queue else {},
            }
            crontab_zone = getattr(getattr(task, "crontab", None), "timezone", None)
            tz = str(crontab_zone) if crontab_zone else zone
            observed.append(
                _observed(SOURCE_DJANGO, task.name, entry, now, tz, last_run=task.last_run_at)
            )
    finally:
        close_old_connections()
    return [item for item in observed if item is not None]


def _django_schedule(task: Any) -> Any:
    from celery import schedules as celery_schedules

    if task.crontab is not None:
        fields = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
        return celery_schedules.crontab(**{name: getattr(task.crontab, name) for name in fields})
    if task.interval is not None:
        return timedelta(**{str(task.interval.period): int(task.interval.every)})
    if task.solar is not None:
        s = task.solar
        return celery_schedules.solar(s.event, float(s.latitude), float(s.longitude))
    return None


def observe_redbeat(app: Any, now: datetime, zone: str) -> list[ObservedSchedule]:
    """celery-redbeat entries from Redis (`redbeat_redis_url`, else the broker when beat runs
    redbeat), read with redbeat's own decoder; the sorted set's score is the next run redbeat
    will make."""
    conf = app.conf
    url = conf.get("redbeat_redis_url") or (
        conf.broker_url if "redbeat" in str(conf.get("beat_scheduler") or "") else None
    )
    if not url or not str(url).startswith(("redis://", "rediss://", "unix://")):
        return []
    try:
        import redis
        from redbeat.decoder import RedBeatJSONDecoder
    except ImportError:
        return []
    prefix = str(conf.get("redbeat_key_prefix") or "redbeat:")
    client = redis.Redis.from_url(str(url), socket_timeout=5, socket_connect_timeout=5)
    observed = []
    try:
        scored: list[Any] = list(client.zrange(prefix + ":schedule", 0, -1, withscores=True))
        for key, score in scored:
            definition, meta = client.hmget(key, "definition", "meta")
            if not definition:
                continue
            entry = json.loads(definition, cls=RedBeatJSONDecoder)
            if entry.get("enabled") is False:
                continue
            last = json.loads(meta, cls=RedBeatJSONDecoder).get("last_run_at") if meta else None
            last = last if isinstance(last, datetime) else None
            name, first = str(entry.get("name")), float(score)
            observed.append(
                _observed(SOURCE_REDBEAT, name, entry, now, zone, last_run=last, first_run=first)
            )
    finally:
        client.close()
    return [item for item in observed if item is not None]
