"""Independent oracles for the scheduler tests.

A brute-force walk over local wall-clock minutes that applies the DST rules of
docs/schedules.md literally (one zoneinfo conversion per wall minute), and a transition finder
that probes zoneinfo hour by hour. Neither uses the code under test; field values come from
croniter's parser, the matching and the DST rules are written out here again, plainly.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

from croniter import croniter

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


class WallMatcher:
    """Does a naive wall-clock minute match a 5-field cron expression?"""

    def __init__(self, expression: str, *, day_and: bool = False) -> None:
        expanded, nth = croniter.expand(expression)

        def values(index: int, low: int, high: int) -> set[int]:
            field = expanded[index]
            return (
                set(range(low, high + 1))
                if field == ["*"]
                else {int(v) for v in field if v not in ("*", "l")}
            )

        self.minutes = values(0, 0, 59)
        self.hours = values(1, 0, 23)
        self.months = values(3, 1, 12)
        self.dom_restricted = expanded[2] != ["*"]
        self.doms = values(2, 1, 31) if self.dom_restricted else set()
        self.dom_last = "l" in expanded[2]
        self.nth = {int(k): set(v) for k, v in nth.items()}
        self.dow_restricted = expanded[4] != ["*"] or bool(nth)
        self.dows = (
            {int(v) for v in expanded[4] if v != "*" and int(v) not in self.nth}
            if expanded[4] != ["*"]
            else set()
        )
        self.day_and = day_and
        hour_token = expression.split()[1]
        self.fixed_hours = not (hour_token == "*" or ("/" in hour_token and "," not in hour_token))

    def matches(self, wall: datetime) -> bool:
        if wall.minute not in self.minutes or wall.hour not in self.hours:
            return False
        if wall.month not in self.months:
            return False
        last = calendar.monthrange(wall.year, wall.month)[1]
        weekday = (wall.weekday() + 1) % 7  # cron: Sunday is 0
        dom_ok = wall.day in self.doms or (self.dom_last and wall.day == last)
        dow_ok = weekday in self.dows
        if weekday in self.nth:
            which = self.nth[weekday]
            dow_ok = (
                dow_ok
                or ((wall.day - 1) // 7 + 1) in which
                or ("l" in which and wall.day + 7 > last)
            )
        if self.dom_restricted and self.dow_restricted:
            return (dom_ok and dow_ok) if self.day_and else (dom_ok or dow_ok)
        if self.dom_restricted:
            return dom_ok
        if self.dow_restricted:
            return dow_ok
        return True


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
        if matcher.matches(wall):
            instants = instants_of_wall(wall, zone)
            if instants:
                fires.update(instants[:1] if matcher.fixed_hours else instants)
            elif matcher.fixed_hours:
                fires.add(first_instant_after_gap(wall, zone))
        wall += step
    return sorted(ts for ts in fires if lo <= ts <= hi)


@cache
def transitions(zone_name: str, first_year: int, last_year: int) -> tuple[int, ...]:
    """Instants where the zone's UTC offset changes, by probing every hour then bisecting."""
    zone = ZoneInfo(zone_name)

    def offset(ts: int) -> timedelta | None:
        return datetime.fromtimestamp(ts, zone).utcoffset()

    ts = int(datetime(first_year, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(last_year + 1, 1, 1, tzinfo=UTC).timestamp())
    found = []
    previous = offset(ts)
    while ts < end:
        nxt = ts + 3600
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
