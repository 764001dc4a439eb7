"""What every schedule kind shares: zone, bounds, jitter, catch-up settings, `next_after`.

Owns the `Schedule` base value and the checks on its common fields. A schedule is an
immutable value; `next_after(after)` is a pure function of it and the instant given. Must never
read the clock, and never accept a naive datetime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from z4j_core.scheduling.describe import describe_duration
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.instants import (
    check_instant,
    duration_seconds,
    format_instant,
    require_aware,
)
from z4j_core.scheduling.jitter import jitter_offset
from z4j_core.scheduling.limits import MAX_CATCH_UP, MAX_INSTANT, MAX_JITTER, MAX_MISFIRE_GRACE
from z4j_core.scheduling.zones import UTC_ZONE

CatchUpPolicy = Literal["skip", "one", "all"]
CATCH_UP_POLICIES: tuple[CatchUpPolicy, ...] = ("skip", "one", "all")
DEFAULT_MISFIRE_GRACE = timedelta(seconds=60)
DEFAULT_MAX_CATCH_UP = 100
# How far `slots()` and catch-up look for a bound: a schedule is a value, it may never fire.
_ONE_MICROSECOND = timedelta(microseconds=1)
_UTC = timezone.utc


@dataclass(frozen=True, kw_only=True, slots=True)
class Schedule:
    """Fields every kind has. Subclasses add their own and implement `_next_slot_after`.

    - `timezone`: the IANA zone wall-clock rules are read in (and times are shown in).
    - `start` / `end`: optional inclusive bounds on slots.
    - `jitter`: the largest delay added to a slot's due time; the delay is derived from the
      schedule id and the slot (see `due_at`), so every leader computes the same instant.
    - `catch_up`: what happens to slots missed while no scheduler ran: `skip`, `one` (the
      latest missed slot fires) or `all` (every missed slot, oldest first, at most
      `max_catch_up` per answer).
    - `misfire_grace`: how late after its slot (plus the jitter) a fire still counts as on time.

    Every value is bounded (see `limits`); a slot at or after `limits.MAX_INSTANT` is never
    produced: the schedule has ended there.
    """

    kind: ClassVar[str] = "schedule"

    timezone: ZoneInfo = UTC_ZONE
    start: datetime | None = None
    end: datetime | None = None
    jitter: timedelta = timedelta(0)
    catch_up: CatchUpPolicy = "skip"
    misfire_grace: timedelta = DEFAULT_MISFIRE_GRACE
    max_catch_up: int = DEFAULT_MAX_CATCH_UP

    def _check_common(self) -> None:
        if not isinstance(self.timezone, ZoneInfo):
            raise ScheduleError(
                f"timezone must be a ZoneInfo (use resolve_zone), got {self.timezone!r}"
            )
        if self.start is not None:
            check_instant(self.start, "start")
        if self.end is not None:
            check_instant(self.end, "end")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ScheduleError(
                f"end {format_instant(self.end)} is before start {format_instant(self.start)}"
            )
        for name, most in (("jitter", MAX_JITTER), ("misfire_grace", MAX_MISFIRE_GRACE)):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ScheduleError(f"{name} must be a duration of zero or more, got {value!r}")
            if value > most:
                raise ScheduleError(
                    f"{name} {describe_duration(value)} is too long: "
                    f"at most {describe_duration(most)}"
                )
        if self.catch_up not in CATCH_UP_POLICIES:
            raise ScheduleError(f"unknown catch-up policy {self.catch_up!r} (use skip, one or all)")
        if (
            not isinstance(self.max_catch_up, int)
            or isinstance(self.max_catch_up, bool)
            or not 1 <= self.max_catch_up <= MAX_CATCH_UP
        ):
            raise ScheduleError(
                f"max_catch_up must be a whole number from 1 to {MAX_CATCH_UP}, "
                f"got {self.max_catch_up!r}"
            )

    # -- the trigger protocol -------------------------------------------------------------

    def next_after(self, after: datetime) -> datetime | None:
        """The first slot strictly after `after`, or None when the schedule never fires again.

        The answer is an aware datetime in UTC: arithmetic and comparisons on it are absolute
        (Python adds and compares datetimes that share a ZoneInfo on the wall clock). Use
        `slot.astimezone(schedule.timezone)` for the local reading, with its `fold`.
        """
        require_aware(after, "after")
        try:
            after = after.astimezone(_UTC)
        except OverflowError:  # the calendar's last day, read with a negative offset
            return None
        if after >= MAX_INSTANT:
            return None
        start = self.start
        if start is not None and after < start:
            after = start.astimezone(_UTC) - _ONE_MICROSECOND
        slot = self._next_slot_after(after)
        if slot is None:
            return None
        end = self.end
        if (end is not None and slot > end) or slot >= MAX_INSTANT:
            return None
        return slot

    def _next_slot_after(self, after: datetime) -> datetime | None:
        """The first slot after `after` (given in UTC), in UTC, ignoring start and end."""
        raise NotImplementedError

    def slots(self, after: datetime, count: int) -> list[datetime]:
        """Up to `count` consecutive slots after `after` (fewer when the schedule ends)."""
        found: list[datetime] = []
        cursor: datetime | None = after
        while cursor is not None and len(found) < count:
            cursor = self.next_after(cursor)
            if cursor is not None:
                found.append(cursor)
        return found

    def due_at(self, schedule_id: str, slot: datetime) -> datetime:
        """When a slot is due: the slot plus this schedule's deterministic jitter for it."""
        slot = slot.astimezone(_UTC)
        if not self.jitter:
            return slot
        return slot + jitter_offset(schedule_id, slot, self.jitter)

    @property
    def lateness_allowed(self) -> timedelta:
        """How long after its slot a fire still counts as on time (jitter plus grace)."""
        return self.jitter + self.misfire_grace

    # -- plain data -------------------------------------------------------------------------

    def _common_dict(self) -> dict[str, Any]:
        return {
            "timezone": str(self.timezone.key),
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "jitter": duration_seconds(self.jitter),
            "catch_up": self.catch_up,
            "misfire_grace": duration_seconds(self.misfire_grace),
            "max_catch_up": self.max_catch_up,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; `schedule_from_dict` reads it back to an equal schedule."""
        raise NotImplementedError

    def describe(self) -> str:
        """The schedule in words, e.g. "at 01:30 every day, America/New_York"."""
        raise NotImplementedError


def floor_seconds(instant: datetime) -> int:
    """Whole seconds since the epoch at or before `instant`."""
    return math.floor(instant.timestamp())
