"""Independent oracles for the scheduler tests.

A brute-force walk over local wall-clock minutes that applies the DST rules of
docs/schedules.md literally (one zoneinfo conversion per wall minute), and a transition finder
that probes zoneinfo hour by hour. Neither uses the code under test, nor any cron library (one
of them reads `9-9` as `*`): the fields are expanded here again, as plainly as possible, and
the matching (with Vixie cron's day-field rule) and the DST rules are written out again.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

UTC = timezone.utc

DST_ZONES = (
    "America/Santiago",
    "Asia/Beirut",
    "America/Havana",
    "Australia/Lord_Howe",
    "Antarctica/Troll",
    "Australia/Sydney",
    "America/New_York",
    "Europe/London",
)

MONTH_NAMES = "jan feb mar apr may jun jul aug sep oct nov dec".split()
WEEKDAY_NAMES = "sun mon tue wed thu fri sat".split()
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _number(text: str, names: list[str] | None, first_name_value: int) -> int:
    if names and text in names:
        return names.index(text) + first_name_value
    return int(text)


def expand_field(
    token: str, low: int, high: int, names: list[str] | None = None, first_name_value: int = 0
) -> set[int]:
    """Plain values of one field: `*`, `a`, `a-b`, each with an optional `/n`, in a list.

    `a/n` runs from a up to `high`. Terms with L or # are the caller's business.
    """
    values: set[int] = set()
    for written in token.split(","):
        step, stepped = 1, "/" in written
        term = written
        if stepped:
            term, step_text = written.split("/")
            step = int(step_text)
        if term in ("*", "?"):
            a, b = low, high
        elif "-" in term:
            a_text, b_text = term.split("-")
            a = _number(a_text, names, first_name_value)
            b = _number(b_text, names, first_name_value)
        else:
            a = _number(term, names, first_name_value)
            b = max(a, high) if stepped else a
        value = a
        while value <= b:
            values.add(value)
            value += step
    return values


class WallMatcher:
    """Does a naive wall-clock time match a cron expression (5 fields, or 6 with seconds)?"""

    def __init__(self, expression: str, *, day_and: bool = False) -> None:
        text = " ".join(expression.lower().split())
        fields = ALIASES.get(text, text).split(" ")
        minute, hour, dom, month, dow = fields[:5]
        self.seconds = expand_field(fields[5], 0, 59) if len(fields) == 6 else {0}
        self.minutes = expand_field(minute, 0, 59)
        self.hours = expand_field(hour, 0, 23)
        self.months = expand_field(month, 1, 12, MONTH_NAMES, 1)
        dom_terms = dom.split(",")
        self.dom_last = "l" in dom_terms
        plain_doms = [t for t in dom_terms if t != "l"]
        self.doms = expand_field(",".join(plain_doms), 1, 31) if plain_doms else set()
        # day-of-week: plain terms, then "the n-th weekday" and "the last weekday" terms
        self.nth: set[tuple[int, int]] = set()
        self.last_weekdays: set[int] = set()
        plain_dows = []
        for term in dow.split(","):
            if "#" in term:
                day_text, which = term.split("#")
                self.nth.add((_number(day_text, WEEKDAY_NAMES, 0) % 7, int(which)))
            elif term.startswith("l"):
                self.last_weekdays.add(_number(term[1:], WEEKDAY_NAMES, 0) % 7)
            elif term.endswith("l"):
                self.last_weekdays.add(_number(term[:-1], WEEKDAY_NAMES, 0) % 7)
            else:
                plain_dows.append(term)
        self.dows = (
            {v % 7 for v in expand_field(",".join(plain_dows), 0, 6, WEEKDAY_NAMES, 0)}
            if plain_dows
            else set()
        )
        # Vixie cron: a day field that starts with * makes a day match both fields.
        self.day_and = day_and or dom.startswith(("*", "?")) or dow.startswith(("*", "?"))
        hour_token = fields[1]
        self.fixed_hours = not (hour_token == "*" or ("/" in hour_token and "," not in hour_token))

    def matches_day(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        last = calendar.monthrange(day.year, day.month)[1]
        weekday = (day.weekday() + 1) % 7  # cron: Sunday is 0
        dom_ok = day.day in self.doms or (self.dom_last and day.day == last)
        dow_ok = (
            weekday in self.dows
            or (weekday, (day.day - 1) // 7 + 1) in self.nth
            or (weekday in self.last_weekdays and day.day + 7 > last)
        )
        return (dom_ok and dow_ok) if self.day_and else (dom_ok or dow_ok)

    def matches_minute(self, wall: datetime) -> bool:
        """Every field but the seconds."""
        return wall.minute in self.minutes and wall.hour in self.hours and self.matches_day(wall)

    def matches(self, wall: datetime) -> bool:
        return wall.second in self.seconds and self.matches_minute(wall)


def _wall_of(ts: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts, zone).replace(tzinfo=None)


def instants_of_wall(wall: datetime, zone: ZoneInfo) -> list[int]:
    """Every instant whose local wall clock reads `wall` (0, 1 or 2 of them)."""
    found = set()
    for fold in (0, 1):
        ts = int(wall.replace(tzinfo=zone, fold=fold).timestamp())
        if _wall_of(ts, zone) == wall:
            found.add(ts)
    return sorted(found)


def first_instant_after_gap(wall: datetime, zone: ZoneInfo) -> int:
    """For a wall time skipped by a gap: the first instant whose wall clock is past it."""
    a = int(wall.replace(tzinfo=zone, fold=0).timestamp())
    b = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    lo, hi = min(a, b), max(a, b)
    assert _wall_of(lo, zone) < wall < _wall_of(hi, zone)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _wall_of(mid, zone) > wall:
            hi = mid
        else:
            lo = mid
    return hi


def brute_force_fires(
    expression: str, zone: ZoneInfo, first: datetime, last: datetime, *, day_and: bool = False
) -> list[int]:
    """Fire instants in [first, last] (aware), by walking every wall minute around them."""
    matcher = WallMatcher(expression, day_and=day_and)
    lo, hi = int(first.timestamp()), int(last.timestamp())
    wall = (first.astimezone(UTC).replace(tzinfo=None) - timedelta(days=2)).replace(
        second=0, microsecond=0
    )
    wall_end = last.astimezone(UTC).replace(tzinfo=None) + timedelta(days=2)
    fires: set[int] = set()
    step = timedelta(minutes=1)
    while wall <= wall_end:
        if matcher.matches_minute(wall):
            for second in sorted(matcher.seconds):
                matching = wall.replace(second=second)
                instants = instants_of_wall(matching, zone)
                if instants:
                    fires.update(instants[:1] if matcher.fixed_hours else instants)
                elif matcher.fixed_hours:
                    fires.add(first_instant_after_gap(matching, zone))
        wall += step
    return sorted(ts for ts in fires if lo <= ts <= hi)


@cache
def transitions(
    zone_name: str, first_year: int, last_year: int, probe_seconds: int = 3600
) -> tuple[int, ...]:
    """Instants where the zone's UTC offset changes, by probing every hour (or every
    `probe_seconds`) then bisecting."""
    zone = ZoneInfo(zone_name)

    def offset(ts: int) -> timedelta | None:
        return datetime.fromtimestamp(ts, zone).utcoffset()

    ts = int(datetime(first_year, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(last_year + 1, 1, 1, tzinfo=UTC).timestamp())
    found = []
    previous = offset(ts)
    while ts < end:
        nxt = ts + probe_seconds
        current = offset(nxt)
        if current != previous:
            lo, hi = ts, nxt
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == previous:
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        previous, ts = current, nxt
    return tuple(found)
