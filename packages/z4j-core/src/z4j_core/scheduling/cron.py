"""Cron schedules: parsing (through croniter) and our own next-fire search over wall clocks.

Owns `CronRule` (an expression compiled to bit masks, zone-free) and `CronSchedule` (a rule in
an IANA zone, with the DST rules of docs/schedules.md). croniter only parses and validates; the
search is ours because croniter's is slow and wrong across some DST transitions. Must never
read the clock, and must never loop without bound: an expression that no date can match is
refused when it is compiled.

DST rules, applied per stretch of constant UTC offset (see `next_fire_ts`):
- fixed hours (`2`, `9-17`, `1,13`): a repeated wall time fires in its first occurrence only;
  a wall time skipped by a gap fires once, at the transition (the first instant after the gap);
- wildcard or step hours (`*`, `*/2`, `8-18/2`): every wall time that exists fires, in both
  occurrences of a repeat; a skipped one does not fire.
"""

from __future__ import annotations

import calendar
import functools
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from z4j_core.scheduling.base import Schedule
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.instants import require_aware
from z4j_core.scheduling.zones import ZoneTimeline, timeline_for

FIELD_NAMES_5 = ("minute", "hour", "day-of-month", "month", "day-of-week")
FIELD_NAMES_6 = (*FIELD_NAMES_5, "second")
FIELD_RANGES = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31 or L",
    "month": "1-12 or jan-dec",
    "day-of-week": "0-7 or sun-sat, with #n or L",
    "second": "0-59",
}
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_ONE_MICROSECOND = timedelta(microseconds=1)
_UTC = timezone.utc
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_ORDINAL = date(9999, 12, 31).toordinal()
# Quartz writes "last Friday" as 5L; croniter reads L5. Accept both.
_QUARTZ_LAST_WEEKDAY = re.compile(r"^([0-7]|sun|mon|tue|wed|thu|fri|sat)l$")
_HASHED = re.compile(r"^[hr](\(|/|$)")
_NEAREST_WEEKDAY = re.compile(r"^(\d+w|w\d+|lw)$")


def _low_bit(mask: int) -> int:
    return (mask & -mask).bit_length() - 1


def _mask(values: list[Any], low: int, high: int) -> int:
    if values == ["*"]:
        return sum(1 << v for v in range(low, high + 1))
    return sum(1 << int(v) for v in values if v not in ("*", "l"))


class CronRule:
    """A cron expression compiled to bit masks; knows wall clocks, not zones."""

    __slots__ = (
        "_month_days",
        "day_and",
        "dom_last",
        "dom_mask",
        "dom_restricted",
        "dow_mask",
        "dow_restricted",
        "expression",
        "fields",
        "first_minute",
        "first_second",
        "fixed_hours",
        "has_seconds",
        "hour_mask",
        "minute_mask",
        "month_mask",
        "nth",
        "second_mask",
    )

    def __init__(self, expression: str, *, day_and: bool = False) -> None:
        from croniter import croniter

        if not isinstance(expression, str) or not expression.strip():
            raise ScheduleError(f"cron expression must be a non-empty string, got {expression!r}")
        self.expression = expression
        self.day_and = day_and
        text = " ".join(expression.strip().lower().split())
        text = ALIASES.get(text, text)
        if text.startswith("@"):
            raise ScheduleError(
                f"unknown cron alias {expression.strip()!r} "
                "(use @hourly, @daily, @weekly, @monthly or @yearly)"
            )
        fields = text.split(" ")
        if len(fields) not in (5, 6):
            raise ScheduleError(
                f"cron expression {expression!r} has {len(fields)} fields: give 5 "
                "(minute hour day-of-month month day-of-week) or 6 (the sixth is seconds)"
            )
        names = FIELD_NAMES_6 if len(fields) == 6 else FIELD_NAMES_5
        for index, token in enumerate(fields):
            self._refuse_unsupported(expression, names[index], token)
        fields[4] = ",".join(
            f"l{m.group(1)}" if (m := _QUARTZ_LAST_WEEKDAY.match(part)) else part
            for part in fields[4].split(",")
        )
        self.fields = tuple(fields)
        try:
            expanded, nth = croniter.expand(" ".join(fields))
        except Exception as exc:  # croniter raises several types; all mean a bad expression
            raise self._explain(expression, fields, names, exc) from None

        self.has_seconds = len(fields) == 6
        seconds = expanded[5] if self.has_seconds else [0]
        self.second_mask = _mask(seconds, 0, 59)
        self.minute_mask = _mask(expanded[0], 0, 59)
        self.hour_mask = _mask(expanded[1], 0, 23)
        self.month_mask = _mask(expanded[3], 1, 12)
        self.dom_restricted = expanded[2] != ["*"]
        self.dom_mask = _mask(expanded[2], 1, 31) if self.dom_restricted else 0
        self.dom_last = "l" in expanded[2]
        self.dow_restricted = expanded[4] != ["*"] or bool(nth)
        nth_weekdays = {int(k) for k in nth}
        plain_dow = [v for v in expanded[4] if v != "*" and int(v) not in nth_weekdays]
        self.dow_mask = _mask(plain_dow, 0, 6) if expanded[4] != ["*"] else 0
        self.nth = tuple(
            (
                int(weekday),
                sum(1 << int(n) for n in which if n != "l"),
                "l" in which,
            )
            for weekday, which in sorted(nth.items())
        )
        self.first_second = _low_bit(self.second_mask)
        self.first_minute = _low_bit(self.minute_mask)
        hour_token = fields[1]
        # A wildcard or a single step term is periodic in real time; anything else (a value, a
        # range, a list) names fixed wall-clock hours. See docs/schedules.md.
        self.fixed_hours = not (hour_token == "*" or ("/" in hour_token and "," not in hour_token))
        self._month_days: dict[int, int] = {}
        if not self._matches_some_date():
            raise ScheduleError(
                f"cron expression {expression!r} never fires: no date matches its "
                "day-of-month, month and day-of-week fields"
            )

    @staticmethod
    def _refuse_unsupported(expression: str, name: str, token: str) -> None:
        for part in token.split(","):
            if _HASHED.match(part):
                raise ScheduleError(
                    f"cron expression {expression!r}: {name} field {token!r} uses hashed or "
                    "random values (H, R), which z4j does not support: give explicit values"
                )
            if name == "day-of-month" and _NEAREST_WEEKDAY.match(part):
                raise ScheduleError(
                    f"cron expression {expression!r}: day-of-month field {token!r} uses W "
                    "(nearest weekday), which z4j does not support"
                )

    @staticmethod
    def _explain(
        expression: str, fields: list[str], names: tuple[str, ...], exc: Exception
    ) -> ScheduleError:
        """Find the field croniter refused, so the message names the bad value."""
        from croniter import croniter

        for index, token in enumerate(fields):
            probe = ["*"] * len(fields)
            probe[index] = token
            try:
                croniter.expand(" ".join(probe))
            except Exception:
                name = names[index]
                return ScheduleError(
                    f"cron expression {expression!r}: {name} field {token!r} is not valid "
                    f"(allowed: {FIELD_RANGES[name]}, lists, ranges and steps)"
                )
        reason = str(exc).split("\n")[0]
        return ScheduleError(f"cron expression {expression!r} is not valid: {reason}")

    # -- dates ------------------------------------------------------------------------------

    def _compute_month_days(self, year: int, month: int) -> int:
        """Bit d set when day d of the month matches the day fields."""
        if not self.month_mask >> month & 1:
            return 0
        length = calendar.monthrange(year, month)[1]
        all_days = ((1 << length) - 1) << 1
        if not self.dom_restricted and not self.dow_restricted:
            return all_days
        dom = self.dom_mask & all_days
        if self.dom_last:
            dom |= 1 << length
        dow = 0
        if self.dow_restricted:
            # date.toordinal() % 7 is the cron weekday: 0 is Sunday.
            first_weekday = date(year, month, 1).toordinal() % 7
            for day in range(1, length + 1):
                weekday = (first_weekday + day - 1) % 7
                if self.dow_mask >> weekday & 1:
                    dow |= 1 << day
                    continue
                for nth_weekday, nth_mask, nth_last in self.nth:
                    if nth_weekday == weekday and (
                        nth_mask >> ((day - 1) // 7 + 1) & 1 or (nth_last and day + 7 > length)
                    ):
                        dow |= 1 << day
                        break
        if self.dom_restricted and self.dow_restricted:
            return (dom & dow) if self.day_and else (dom | dow)
        return dom if self.dom_restricted else dow

    def _days(self, year: int, month: int) -> int:
        key = year * 12 + month
        days = self._month_days.get(key)
        if days is None:
            if len(self._month_days) > 4096:
                self._month_days.clear()
            days = self._compute_month_days(year, month)
            self._month_days[key] = days
        return days

    def _matches_some_date(self) -> bool:
        # The Gregorian calendar repeats every 400 years, weekdays included.
        return any(
            self._compute_month_days(year, month)
            for year in range(2000, 2400)
            for month in range(1, 13)
            if self.month_mask >> month & 1
        )

    def matches_date(self, day: date) -> bool:
        return bool(self._days(day.year, day.month) >> day.day & 1)

    # -- times of day ------------------------------------------------------------------------

    def _next_time_of_day(self, second_of_day: int) -> int:
        """The first matching second of the day at or after `second_of_day`, or -1."""
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        if self.hour_mask >> hour & 1:
            if self.minute_mask >> minute & 1:
                later = self.second_mask >> second
                if later:
                    return second_of_day + _low_bit(later)
            later = self.minute_mask >> (minute + 1)
            if later:
                return hour * 3600 + (minute + 1 + _low_bit(later)) * 60 + self.first_second
        later = self.hour_mask >> (hour + 1)
        if later:
            return (hour + 1 + _low_bit(later)) * 3600 + self.first_minute * 60 + self.first_second
        return -1

    def matches_wall(self, wall: datetime) -> bool:
        """Whether a naive wall-clock time matches every field."""
        return (
            wall.microsecond == 0
            and bool(self.second_mask >> wall.second & 1)
            and bool(self.minute_mask >> wall.minute & 1)
            and bool(self.hour_mask >> wall.hour & 1)
            and self.matches_date(wall.date())
        )

    def next_wall(self, wall: int) -> int | None:
        """The first matching wall time at or after `wall`.

        Wall times are seconds since 1970-01-01T00:00 on the local clock (no zone applied).
        None past the year 9999.
        """
        days, second_of_day = divmod(wall, 86400)
        ordinal = days + _EPOCH_ORDINAL
        if ordinal > _MAX_ORDINAL:
            return None
        today = date.fromordinal(ordinal)
        year, month, day = today.year, today.month, today.day
        month_days = self._days(year, month)
        if month_days >> day & 1:
            time_of_day = self._next_time_of_day(second_of_day)
            if time_of_day >= 0:
                return wall - second_of_day + time_of_day
        later = month_days >> (day + 1)
        if later:
            day = day + 1 + _low_bit(later)
        else:
            while True:
                month += 1
                if month == 13:
                    month = 1
                    year += 1
                    if year > 9999:
                        return None
                month_days = self._days(year, month)
                if month_days:
                    day = _low_bit(month_days)
                    break
        first_time = self._next_time_of_day(0)
        return (date(year, month, day).toordinal() - _EPOCH_ORDINAL) * 86400 + first_time


_MIN_SEARCH_TS = -62135596800 + 3 * 86400
_MAX_SEARCH_TS = 253402300799 - 3 * 86400


def next_fire_ts(rule: CronRule, timeline: ZoneTimeline, earliest: int) -> int | None:
    """The first fire instant at or after `earliest` (seconds since the epoch), or None.

    Walks stretches of constant UTC offset. In each, the next matching wall time either falls
    inside the stretch (it fires there), or inside the gap a spring-forward leaves at the
    stretch's end (fixed hours fire at the transition), or later (go on to the next stretch).
    """
    fixed = rule.fixed_hours
    ts = max(earliest, _MIN_SEARCH_TS)
    while ts < _MAX_SEARCH_TS:
        offset, end, offset_after, began, offset_before = timeline.segment(ts)
        wall_from = ts + offset
        if fixed and offset_before > offset:
            # Just after a fall-back: wall times up to the old offset's end already fired in
            # their first occurrence.
            wall_from = max(wall_from, began + offset_before)
        wall = rule.next_wall(wall_from)
        if wall is None:
            return None
        if wall < end + offset:
            return wall - offset
        if fixed and offset_after > offset and wall < end + offset_after:
            return end
        ts = end
    return None


@functools.lru_cache(maxsize=4096)
def compile_cron(expression: str, day_and: bool = False) -> CronRule:
    """A compiled rule, shared by every schedule with the same expression."""
    return CronRule(expression, day_and=day_and)


@dataclass(frozen=True, kw_only=True, slots=True)
class CronSchedule(Schedule):
    """A cron expression read in `timezone`; `day_and` makes day-of-month AND day-of-week."""

    kind = "cron"

    expression: str
    day_and: bool = False
    _rule: CronRule = field(init=False, repr=False, compare=False)
    _timeline: ZoneTimeline = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        Schedule._check_common(self)
        if not isinstance(self.day_and, bool):
            raise ScheduleError(f"day_and must be true or false, got {self.day_and!r}")
        object.__setattr__(self, "_rule", compile_cron(self.expression, self.day_and))
        object.__setattr__(self, "_timeline", timeline_for(self.timezone))

    @property
    def rule(self) -> CronRule:
        return self._rule

    def next_after(self, after: datetime) -> datetime | None:
        # The hot path of the scheduler: the base class's checks, inlined.
        tz = after.tzinfo
        if tz is None or not isinstance(tz, (ZoneInfo, timezone)):
            require_aware(after, "after")
        start = self.start
        if start is not None and after < start:
            after = start.astimezone(_UTC) - _ONE_MICROSECOND
        fire = next_fire_ts(self._rule, self._timeline, math.floor(after.timestamp()) + 1)
        if fire is None:
            return None
        slot = datetime.fromtimestamp(fire, _UTC)
        end = self.end
        if end is not None and slot > end:
            return None
        return slot

    def _next_slot_after(self, after: datetime) -> datetime | None:
        fire = next_fire_ts(self._rule, self._timeline, math.floor(after.timestamp()) + 1)
        return None if fire is None else datetime.fromtimestamp(fire, _UTC)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "expression": self.expression,
            "day_and": self.day_and,
            **self._common_dict(),
        }

    def describe(self) -> str:
        from z4j_core.scheduling.describe import describe_cron

        return f"{describe_cron(self._rule)}, {self.timezone.key}"
