"""The creation-time check that a schedule fires at all within a horizon.

Owns `check_fires_within`, which the brain and the CLI call when a schedule is created or
changed: a schedule whose next slot lies further than `years` years away (or nowhere, e.g. a
cron expression whose only matches fall in DST gaps) is refused with a one-line reason. It
only calls `schedule.next_after`, so it works for every kind and costs what one search costs.
Must never read the clock: the caller passes `after` (usually now).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone

from z4j_core.scheduling.base import Schedule
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.instants import format_instant, require_aware
from z4j_core.scheduling.limits import FIRES_WITHIN_YEARS

DEFAULT_HORIZON_YEARS = FIRES_WITHIN_YEARS
_UTC = timezone.utc


def _years_later(instant: datetime, years: int) -> datetime | None:
    """The same calendar date and time `years` years later in UTC (Feb 29 -> Feb 28)."""
    utc = instant.astimezone(_UTC)
    year = utc.year + years
    if year > 9999:
        return None
    day = min(utc.day, calendar.monthrange(year, utc.month)[1])
    return utc.replace(year=year, day=day)


def check_fires_within(
    schedule: Schedule, after: datetime, years: int = DEFAULT_HORIZON_YEARS
) -> None:
    """Raise `ScheduleError` unless `schedule` has a slot within `years` years after `after`.

    The window starts at `after`, or at the schedule's `start` when that is later: a schedule
    that begins in the future is judged from its beginning. Past the year 9999 the window
    ends there.
    """
    require_aware(after, "after")
    if not isinstance(years, int) or isinstance(years, bool) or years < 1:
        raise ScheduleError(f"years must be a whole number >= 1, got {years!r}")
    begin = after
    if schedule.start is not None and schedule.start > after:
        begin = schedule.start - timedelta(microseconds=1)
    limit = _years_later(begin, years)
    slot = schedule.next_after(after)
    if slot is not None and (limit is None or slot <= limit):
        return
    window = f"within {years} years after {format_instant(begin)}"
    end = schedule.end
    if end is not None and end <= begin:
        raise ScheduleError(
            f"{schedule.kind} schedule ({schedule.describe()}) ended at {format_instant(end)}, "
            f"before {format_instant(begin)}"
        )
    if end is not None and (limit is None or end < limit):
        raise ScheduleError(
            f"{schedule.kind} schedule ({schedule.describe()}) has no slot between "
            f"{format_instant(begin)} and its end {format_instant(end)}"
        )
    expression = getattr(schedule, "expression", None)
    if schedule.kind == "cron" and isinstance(expression, str):
        flag = " with day_and" if getattr(schedule, "day_and", False) else ""
        raise ScheduleError(
            f"cron expression {expression!r}{flag} matches no instant that exists in "
            f"{schedule.timezone.key} {window}"
        )
    raise ScheduleError(f"{schedule.kind} schedule ({schedule.describe()}) has no slot {window}")
