"""Cron schedules: our own parser, and our own next-fire search over wall clocks.

Owns `CronRule` (an expression compiled to bit masks, zone-free) and `CronSchedule` (a rule in
an IANA zone, with the DST rules of docs/schedules.md). Parsing and search are both ours: no
third-party cron library is imported. Must never read the clock, and must never do unbounded
work: an expression that no date can match is refused when it is compiled, the date search
skips whole days, months and years (never minutes), and the search over UTC offsets gives up
after `MAX_STRETCHES` stretches (see `next_fire_ts`).

Day fields follow Vixie cron (cronie): when day-of-month or day-of-week starts with `*`
(`*`, `*/2`), a day must match both; otherwise a day matching either fires. `day_and=True`
always requires both.

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
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from z4j_core.scheduling.base import Schedule
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.instants import require_aware
from z4j_core.scheduling.limits import MAX_INSTANT
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
MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
WEEKDAY_NAMES = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}
# Per field: lowest value, highest value, where `*` and `a/n` stop, names. Day-of-week accepts
# 7 for Sunday, but `*` and `a/n` stop at 6 (Saturday), so `1/2` is Monday, Wednesday, Friday.
_FIELD_SPECS: dict[str, tuple[int, int, int, dict[str, int]]] = {
    "minute": (0, 59, 59, {}),
    "hour": (0, 23, 23, {}),
    "day-of-month": (1, 31, 31, {}),
    "month": (1, 12, 12, MONTH_NAMES),
    "day-of-week": (0, 7, 6, WEEKDAY_NAMES),
    "second": (0, 59, 59, {}),
}
_ALL_MONTH_DAYS = ((1 << 31) - 1) << 1  # bits 1..31
_ALL_WEEKDAYS = (1 << 7) - 1  # bits 0..6, 0 is Sunday
_MONTH_LENGTHS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# _WEEKDAY_DAYS[first][weekday]: bit d set when day d (1..31) of a month whose day 1 falls on
# `first` falls on `weekday`.
_WEEKDAY_DAYS = tuple(
    tuple(
        sum(1 << day for day in range(1, 32) if (first + day - 1) % 7 == weekday)
        for weekday in range(7)
    )
    for first in range(7)
)

_ONE_MICROSECOND = timedelta(microseconds=1)
_UTC = timezone.utc
# A schedule ends at the last instant the core accepts (see limits.py).
_LAST_SLOT_TS = int(MAX_INSTANT.timestamp())
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_ORDINAL = date(9999, 12, 31).toordinal()


def _low_bit(mask: int) -> int:
    return (mask & -mask).bit_length() - 1


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


@dataclass(frozen=True)
class _Field:
    """One parsed field: bit v set for each value v (day-of-week folds 7 onto 0)."""

    mask: int
    star: bool  # the token starts with `*` (or `?`): Vixie cron's rule for the day fields
    last: bool = False  # day-of-month `L`
    nth: tuple[tuple[int, int, bool], ...] = ()  # day-of-week: (weekday, bits n of #n, L)


class _FieldParser:
    """Reads one field; every refusal names the expression, the field and the bad value."""

    def __init__(self, expression: str, name: str, token: str, shown: str) -> None:
        self.expression = expression
        self.name = name
        self.token = token  # lower case
        self.shown = shown  # as written, for messages
        self.low, self.high, self.star_high, self.names = _FIELD_SPECS[name]

    def error(self, reason: str, *, allowed: bool = True) -> ScheduleError:
        hint = f" (allowed: {FIELD_RANGES[self.name]}, lists, ranges and steps)" if allowed else ""
        return ScheduleError(
            f"cron expression {self.expression!r}: {self.name} field {self.shown!r}: {reason}{hint}"
        )

    def value(self, text: str) -> int:
        if _is_number(text):
            number = int(text)
            if not self.low <= number <= self.high:
                raise self.error(f"{number} is out of range")
            return number
        if text in self.names:
            return self.names[text]
        if not text:
            raise self.error("a value is missing")
        if self.names and text.isalpha():
            raise self.error(f"unknown name {text!r}")
        raise self.error(f"{text!r} is not a number")

    def parse(self) -> _Field:
        day_field = self.name in ("day-of-month", "day-of-week")
        mask = 0
        last = False
        nth: dict[int, tuple[int, bool]] = {}
        for term in self.token.split(","):
            if not term:
                raise self.error("empty list item")
            if self.name == "day-of-month" and term == "l":
                last = True
                continue
            if self.name == "day-of-week" and ("#" in term or "l" in term):
                weekday, nth_bit, is_last = self.weekday_of_month(term)
                old_bits, old_last = nth.get(weekday, (0, False))
                nth[weekday] = (old_bits | nth_bit, old_last or is_last)
                continue
            mask |= self.range_term(term, day_field)
        if self.name == "day-of-week" and mask >> 7 & 1:
            mask = (mask & _ALL_WEEKDAYS) | 1
        return _Field(
            mask=mask,
            star=day_field and self.token[0] in "*?",
            last=last,
            nth=tuple((weekday, bits, is_last) for weekday, (bits, is_last) in sorted(nth.items())),
        )

    def range_term(self, term: str, day_field: bool) -> int:
        base, slash, step_text = term.partition("/")
        step = 1
        if slash:
            if not _is_number(step_text):
                raise self.error(f"step {step_text!r} in {term!r} is not a whole number")
            step = int(step_text)
            if step == 0:
                raise self.error(f"step 0 in {term!r} never advances: give 1 or more")
        if base == "*" or (day_field and base == "?"):
            first, stop = self.low, self.star_high
        elif "-" in base:
            first_text, _, stop_text = base.partition("-")
            first, stop = self.value(first_text), self.value(stop_text)
            if first > stop:
                raise self.error(
                    f"range {base} is reversed: write {stop_text}-{first_text}, "
                    "or list the values of a range that wraps around",
                    allowed=False,
                )
        else:
            first = self.value(base)
            # `a/n` runs from a to the field's end by n; a lone value is itself.
            stop = max(first, self.star_high) if slash else first
        return sum(1 << value for value in range(first, stop + 1, step))

    def weekday_of_month(self, term: str) -> tuple[int, int, bool]:
        """`d#n` (the n-th weekday d of the month), `dL` or `Ld` (the last one)."""
        if "#" in term:
            day_text, _, which = term.partition("#")
            weekday = self.value(day_text) % 7
            if not _is_number(which) or not 1 <= int(which) <= 5:
                raise self.error(
                    f"#{which} in {term!r}: a month has a first to a fifth of each weekday "
                    "(#1 to #5)"
                )
            return weekday, 1 << int(which), False
        if term == "l":
            raise self.error("L needs a weekday here: 5L or L5 is the last Friday")
        if term.startswith("l"):
            day_text = term[1:]
        elif term.endswith("l"):
            day_text = term[:-1]
        else:
            raise self.error(f"{term!r} is not valid: write 5L or L5 for the last Friday")
        return self.value(day_text) % 7, 0, True


class CronRule:
    """A cron expression compiled to bit masks; knows wall clocks, not zones.

    Public attributes: the masks (`second_mask`, `minute_mask`, `hour_mask`, `month_mask`,
    `dom_mask` with `dom_last` for L, `dow_mask` with `nth` for # and L); `days_and` (a day
    must match both day fields) and `dom_restricted` / `dow_restricted` (whether each day
    field narrows the days at all, after the day-field rule is applied); `fixed_hours`.
    """

    __slots__ = (
        "__weakref__",
        "_first_time",
        "_month_days",
        "_year_months",
        "day_and",
        "days_and",
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
        if not isinstance(expression, str) or not expression.strip():
            raise ScheduleError(f"cron expression must be a non-empty string, got {expression!r}")
        self.expression = expression
        self.day_and = day_and
        written = " ".join(expression.strip().split())
        text = ALIASES.get(written.lower(), written.lower())
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
        shown = written.split(" ") if text == written.lower() else fields
        for index in range(len(fields)):
            self._refuse_unsupported(expression, names[index], shown[index])
        parsed = [
            _FieldParser(expression, names[index], token, shown[index]).parse()
            for index, token in enumerate(fields)
        ]
        self.fields = tuple(fields)
        minute, hour, dom, month, dow = parsed[:5]

        self.has_seconds = len(fields) == 6
        self.second_mask = parsed[5].mask if self.has_seconds else 1
        self.minute_mask = minute.mask
        self.hour_mask = hour.mask
        self.month_mask = month.mask
        self.dom_mask = dom.mask
        self.dom_last = dom.last
        self.dow_mask = dow.mask
        self.nth = dow.nth
        # Vixie cron (cronie): a day field starting with `*` makes a day match both fields.
        self.days_and = day_and or dom.star or dow.star
        dom_all = dom.mask == _ALL_MONTH_DAYS
        dow_all = dow.mask == _ALL_WEEKDAYS
        every_day = (dom_all and dow_all) if self.days_and else (dom_all or dow_all)
        self.dom_restricted = not every_day and not dom_all
        self.dow_restricted = not every_day and not dow_all
        self.first_second = _low_bit(self.second_mask)
        self.first_minute = _low_bit(self.minute_mask)
        hour_token = fields[1]
        # A wildcard or a single step term is periodic in real time; anything else (a value, a
        # range, a list) names fixed wall-clock hours. See docs/schedules.md.
        self.fixed_hours = not (hour_token == "*" or ("/" in hour_token and "," not in hour_token))
        self._first_time = self._next_time_of_day(0)
        # Keyed by the year modulo 400: the Gregorian calendar, weekdays included, repeats
        # every 400 years, so these hold at most 4,800 and 400 entries and never need clearing.
        self._month_days: dict[int, int] = {}
        self._year_months: dict[int, int] = {}
        if not self._matches_some_date():
            raise ScheduleError(
                f"cron expression {expression!r} never fires: no date matches its "
                "day-of-month, month and day-of-week fields"
            )

    @staticmethod
    def _refuse_unsupported(expression: str, name: str, token: str) -> None:
        for part in token.lower().split(","):
            if part[:1] in ("h", "r") and part[1:2] in ("", "(", "/"):
                raise ScheduleError(
                    f"cron expression {expression!r}: {name} field {token!r} uses hashed or "
                    "random values (H, R), which z4j does not support: give explicit values"
                )
            if name == "day-of-month" and "w" in part:
                raise ScheduleError(
                    f"cron expression {expression!r}: day-of-month field {token!r} uses W "
                    "(nearest weekday), which z4j does not support"
                )

    # -- dates ------------------------------------------------------------------------------

    def _days_of(self, first_weekday: int, length: int) -> int:
        """Bit d set when day d matches the day fields, in a month of `length` days whose
        first day falls on `first_weekday` (0 is Sunday). Ignores the month field."""
        all_days = ((1 << length) - 1) << 1
        dom = self.dom_mask | (self.dom_last << length)
        dow = 0
        for weekday in range(7):
            if self.dow_mask >> weekday & 1:
                dow |= _WEEKDAY_DAYS[first_weekday][weekday]
        for weekday, nth_bits, last in self.nth:
            first_day = 1 + (weekday - first_weekday) % 7
            for which in range(1, 6):
                if nth_bits >> which & 1:
                    dow |= 1 << (first_day + 7 * (which - 1))
            if last:
                dow |= 1 << (first_day + 7 * ((length - first_day) // 7))
        return ((dom & dow) if self.days_and else (dom | dow)) & all_days

    def _days(self, year: int, month: int) -> int:
        """Bit d set when day d of the month matches the day and month fields."""
        key = (year % 400) * 16 + month
        days = self._month_days.get(key)
        if days is None:
            days = 0
            if self.month_mask >> month & 1:
                length = _MONTH_LENGTHS[month] + (month == 2 and calendar.isleap(year))
                # date.toordinal() % 7 is the cron weekday: 0 is Sunday.
                days = self._days_of(date(year, month, 1).toordinal() % 7, length)
            self._month_days[key] = days
        return days

    def _months(self, year: int) -> int:
        """Bit m set when some day of month m of `year` matches: a zero year is skipped whole."""
        key = year % 400
        months = self._year_months.get(key)
        if months is None:
            months = 0
            for month in range(1, 13):
                if self._days(year, month):
                    months |= 1 << month
            self._year_months[key] = months
        return months

    def _matches_some_date(self) -> bool:
        # Every month starts on every weekday somewhere in the 400-year cycle, and February does
        # so in leap years and in others: trying each start and length is trying every year.
        for month in range(1, 13):
            if not self.month_mask >> month & 1:
                continue
            lengths = (28, 29) if month == 2 else (_MONTH_LENGTHS[month],)
            for length in lengths:
                if any(self._days_of(first, length) for first in range(7)):
                    return True
        return False

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
        None past the year 9999. Skips days, months and whole years, never minutes: at most
        a year of months and 400 years (one calendar cycle, in which some day matches).
        """
        days, second_of_day = divmod(wall, 86400)
        ordinal = days + _EPOCH_ORDINAL
        if ordinal > _MAX_ORDINAL:
            return None
        if ordinal < 1:
            ordinal, second_of_day = 1, 0
            wall = (1 - _EPOCH_ORDINAL) * 86400
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
            months = self._months(year) >> (month + 1)
            if months:
                month = month + 1 + _low_bit(months)
            else:
                while True:
                    year += 1
                    if year > 9999:
                        return None
                    months = self._months(year)
                    if months:
                        month = _low_bit(months)
                        break
            day = _low_bit(self._days(year, month))
        return (date(year, month, day).toordinal() - _EPOCH_ORDINAL) * 86400 + self._first_time


_MIN_SEARCH_TS = -62135596800 + 3 * 86400
_MAX_SEARCH_TS = 253402300799 - 3 * 86400
# How many stretches of constant UTC offset one search may visit before it answers None. Zones
# change offset at most about four times a year, and the search also stops at the timeline's
# chunk boundaries (about two a year), so this is well over 100 years of changes; far slots
# are reached by jumping, not walking (see next_fire_ts), so only matches that keep falling in
# DST gaps use it up. Each stretch costs at most one timeline chunk (~0.3 ms uncached).
MAX_STRETCHES = 1024
# More than any UTC offset: Python keeps every utcoffset() strictly within one day.
_JUMP_MARGIN = 26 * 3600


def next_fire_ts(rule: CronRule, timeline: ZoneTimeline, earliest: int) -> int | None:
    """The first fire instant at or after `earliest` (seconds since the epoch), or None.

    Walks stretches of constant UTC offset. In each, the next matching wall time either falls
    inside the stretch (it fires there), or inside the gap a spring-forward leaves at the
    stretch's end (fixed hours fire at the transition), or later (go on). None when no fire
    exists before the year 9999, or none is found within `MAX_STRETCHES` stretches.
    """
    fixed = rule.fixed_hours
    ts = max(earliest, _MIN_SEARCH_TS)
    if ts >= _MAX_SEARCH_TS:
        return None
    first = timeline.segment(ts)
    if fixed:
        # `ts` may be the very instant a spring-forward ends a stretch: the wall times its gap
        # skipped fire there, and the walk below only sees gaps ahead of it.
        before, before_end, _, _, _ = timeline.segment(ts - 1)
        if before_end == ts and before < first[0]:
            gap_wall = rule.next_wall(ts + before)
            if gap_wall is not None and gap_wall < ts + first[0]:
                return ts
    segment: tuple[int, int, int, int, int] | None = first
    for _ in range(MAX_STRETCHES):
        if segment is None:
            if ts >= _MAX_SEARCH_TS:
                return None
            segment = timeline.segment(ts)
        offset, end, offset_after, began, offset_before = segment
        segment = None
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
        # Jump over the stretches between here and `wall`, when no fire can lie in them. A fire
        # at instant t comes from a matching wall time w: w = t + offset(t), or for a gap fire
        # w lies in [t + offset before t, t + offset after t). Offsets are within (-24 h, 24 h),
        # so a fire t in [end, wall - 26 h) has end - 26 h < w < wall. No wall time in
        # [wall_from, wall) matches (wall is the first), so such a w would lie in
        # (end - 26 h, wall_from): when none matches there, the first fire at or after `end`
        # is the first at or after wall - 26 h.
        jump = wall - _JUMP_MARGIN
        if jump > end:
            floor = end - _JUMP_MARGIN
            if wall_from <= floor:
                ts = jump
            else:
                earlier = rule.next_wall(floor)
                if earlier is None or earlier >= wall_from:
                    ts = jump
    return None


#: Every rule some schedule still holds, by expression: a leader with a million schedules over
#: more distinct expressions than the recent cache keeps still compiles (and stores) each once.
_LIVE_RULES: weakref.WeakValueDictionary[tuple[str, bool], CronRule] = weakref.WeakValueDictionary()


@functools.lru_cache(maxsize=4096)
def _compile_recent(expression: str, day_and: bool) -> CronRule:
    return CronRule(expression, day_and=day_and)


def compile_cron(expression: str, day_and: bool = False) -> CronRule:
    """A compiled rule, shared by every schedule with the same expression."""
    key = (expression, day_and)
    rule = _LIVE_RULES.get(key)
    if rule is None:
        rule = _compile_recent(expression, day_and)
        _LIVE_RULES[key] = rule
    return rule


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
        if fire is None or fire >= _LAST_SLOT_TS:
            return None
        slot = datetime.fromtimestamp(fire, _UTC)
        end = self.end
        if end is not None and slot > end:
            return None
        return slot

    def _next_slot_after(self, after: datetime) -> datetime | None:
        fire = next_fire_ts(self._rule, self._timeline, math.floor(after.timestamp()) + 1)
        return None if fire is None or fire >= _LAST_SLOT_TS else datetime.fromtimestamp(fire, _UTC)

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
