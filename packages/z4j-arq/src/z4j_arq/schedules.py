"""Observing an arq worker's `cron_jobs`, read-only.

Owns rendering each `arq.cron.CronJob` as cron fields and computing its next runs as arq does
(`arq.cron.next_cron` from now in the worker's zone: arq's default microsecond offset, 123456,
and its AND of day and weekday included). arq's weekday counts from Monday = 0, cron's from
Sunday = 0; seconds other than 0 add a sixth field (croniter's order: seconds last). Pure
functions plus `observe`, which reads the clock once. Never writes.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from z4j_core.adapter import NEXT_RUNS, fixed_offset_zone, native_definition, render_field
from z4j_core.wire import ObservedSchedule

SOURCE = "arq_cron"
WEEKDAYS = ("mon", "tues", "wed", "thurs", "fri", "sat", "sun")  # arq.typing.WEEKDAYS
#: arq's cron fields in cron's order, with the values each can take (seconds: a sixth field).
FIELDS = {
    "minute": range(60),
    "hour": range(24),
    "day": range(1, 32),
    "month": range(1, 13),
    "weekday": range(7),
}


def values_of(option: Any) -> list[int] | None:
    """An arq cron option (None, an int, a set, a weekday name) as sorted values, None for all."""
    if option is None:
        return None
    if isinstance(option, str):
        return [WEEKDAYS.index(option.lower())]
    return [option] if isinstance(option, int) else sorted({int(v) for v in option})


def cron_expression(cron_job: Any) -> str:
    """Cron's five fields (Sunday = 0), and seconds last when the job runs at other seconds
    than 0."""
    fields = []
    for name, full in FIELDS.items():
        values = values_of(getattr(cron_job, name))
        if name == "weekday" and values is not None:
            values = [(v + 1) % 7 for v in values]  # arq: Monday = 0
        fields.append(render_field(values, full))
    seconds = values_of(cron_job.second)
    if seconds != [0]:
        fields.append(render_field(seconds, range(60)))
    return " ".join(fields)


def next_runs(
    cron_job: Any, after: datetime.datetime, count: int = NEXT_RUNS
) -> list[datetime.datetime]:
    """The next `count` runs after `after` (aware, in the worker's zone), as arq finds them:
    the worker starts from `calculate_next(now)`, then from each run."""
    from arq.cron import next_cron

    options = {name: getattr(cron_job, name) for name in (*FIELDS, "second", "microsecond")}
    runs = [after]
    for _ in range(count):
        runs.append(next_cron(runs[-1], **options))
    return runs[1:]


def zone_names(zone: datetime.tzinfo) -> tuple[str, str | None]:
    """How the worker's zone is shown ('' for UTC, else its IANA key or a fixed offset like
    UTC+02:00), and the IANA name z4j reads it by (`Etc/GMT-2` for a whole-hour fixed offset;
    None when it has none)."""
    key = getattr(zone, "key", None)
    if key is not None:
        return ("", "UTC") if key in ("UTC", "Etc/UTC") else (str(key), str(key))
    offset = zone.utcoffset(None)
    if offset is None:
        return "", None
    shown = "" if offset == datetime.timedelta(0) else str(zone.tzname(None) or offset)
    return shown, fixed_offset_zone(offset)


def definition(cron_job: Any, timezone: str | None) -> dict[str, Any]:
    """What `z4j schedules adopt` needs: arq ANDs every field, the day fields included."""
    unsupported = []
    # arq.cron.cron's defaults: anything else changes how the job runs.
    defaults = {"run_at_startup": False, "unique": True, "timeout_s": None, "keep_result_s": 0,
                "keep_result_forever": False, "max_tries": 1, "job_id": None}  # fmt: skip
    for option, default in defaults.items():
        value = getattr(cron_job, option, None)
        if value is not None and value != default:
            unsupported.append(f"{option}={value!r}"[:80])
    return native_definition(
        {"cron": cron_expression(cron_job), "day_and": True},
        timezone=timezone,
        unsupported=unsupported,
    )


def observe(
    cron_jobs: Iterable[Any], zone: datetime.tzinfo, now: datetime.datetime | None = None
) -> list[ObservedSchedule]:
    now = now or datetime.datetime.now(tz=zone)
    label, timezone = zone_names(zone)
    observed = []
    for cron_job in sorted(cron_jobs, key=lambda job: job.name):
        expression = cron_expression(cron_job) + (f" ({label})" if label else "")
        observed.append(
            ObservedSchedule(
                source=SOURCE,
                name=cron_job.name,
                task=cron_job.name,
                kind="cron",
                expression=expression,
                next_runs=[run.timestamp() for run in next_runs(cron_job, now)],
                definition=definition(cron_job, timezone),
            )
        )
    return observed
