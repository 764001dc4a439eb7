"""Fuzzing cron: every field syntax, every IANA zone, instants from 1900 to 2200.

- any text either compiles or is refused with a one-line `ScheduleError`, nothing else;
- an expression refused as "never fires" matches no date of a whole 400-year calendar cycle
  (checked by the independent oracle);
- `next_after` answers an instant strictly later that the oracle says matches (or, for fixed
  hours, the transition that ends a DST gap holding a match), or None;
- around DST transitions of randomly chosen zones, the fires equal a brute-force walk over
  wall-clock minutes (scheduling_oracle, which expands the fields itself).

No assertion on time (machines are shared): hypothesis runs with deadline=None, each test has
a generous timeout, and slow calls are recorded as hypothesis events (shown with
--hypothesis-show-statistics). Z4J_FUZZ_SCALE multiplies the example counts: 1 (about 200 per
property) in CI, more in bench/bench_fuzz_schedules.py. With `CI` set the examples are the same
on every run (the pytest plugin derandomizes hypothesis); local runs draw new ones, and a case
one of them finds becomes a test of its own (as the Atka one at the end of this file).
"""

from __future__ import annotations

import os
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, assume, event, given, settings, target
from hypothesis import strategies as st
from scheduling_oracle import ALIASES, WallMatcher, brute_force_fires, transitions

from z4j_core.scheduling import CronSchedule, ScheduleError
from z4j_core.scheduling.cron import CronRule

UTC = timezone.utc
SCALE = max(1, int(os.environ.get("Z4J_FUZZ_SCALE", "1")))
ZONES = sorted(available_timezones())
FUZZ = settings(
    max_examples=200 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TIMEOUT = pytest.mark.timeout(300 * SCALE)
SLOW_SECONDS = 0.05

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


# -- expressions ---------------------------------------------------------------------------


def _cased(names: list[str]) -> st.SearchStrategy[str]:
    cases = st.sampled_from([str.lower, str.upper, str.title])
    return st.tuples(st.sampled_from(names), cases).map(lambda pair: pair[1](pair[0]))


def _terms(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    """One list item: a value, a range (equal ends too), a step of * or of a value or range."""
    number = st.integers(low, high)
    value = number.map(str) if names is None else st.one_of(number.map(str), _cased(names))
    pair = st.tuples(number, number).map(sorted)
    step = st.integers(1, high - low + 3)
    return st.one_of(
        st.just("*"),
        value,
        pair.map(lambda p: f"{p[0]}-{p[1]}"),
        number.map(lambda n: f"{n}-{n}"),
        step.map(lambda n: f"*/{n}"),
        st.tuples(value, step).map(lambda p: f"{p[0]}/{p[1]}"),
        st.tuples(pair, step).map(lambda p: f"{p[0][0]}-{p[0][1]}/{p[1]}"),
    )


def _field(terms: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(terms, min_size=1, max_size=3).map(",".join)


SECONDS = _field(_terms(0, 59))
MINUTES = _field(_terms(0, 59))
HOURS = _field(_terms(0, 23))
DOMS = st.one_of(
    _field(st.one_of(_terms(1, 31), st.sampled_from(["L", "l"]))),
    st.sampled_from(["*", "?", "L", "1,15,L"]),
)
MONTH_FIELD = _field(_terms(1, 12, MONTHS))
WEEKDAY = st.one_of(st.integers(0, 7).map(str), _cased(WEEKDAYS))
DOW_TERMS = st.one_of(
    _terms(0, 7, WEEKDAYS),
    st.tuples(WEEKDAY, st.integers(1, 5)).map(lambda p: f"{p[0]}#{p[1]}"),
    WEEKDAY.map(lambda d: f"{d}L"),
    WEEKDAY.map(lambda d: f"L{d}"),
)
DOWS = st.one_of(_field(DOW_TERMS), st.sampled_from(["*", "?"]))


@st.composite
def expressions(draw: st.DrawFn, seconds: st.SearchStrategy[str] = SECONDS) -> str:
    if draw(st.integers(0, 19)) == 0:
        alias = draw(st.sampled_from(sorted(ALIASES)))
        return alias.upper() if draw(st.booleans()) else alias
    fields = [draw(MINUTES), draw(HOURS), draw(DOMS), draw(MONTH_FIELD), draw(DOWS)]
    if draw(st.booleans()):
        fields.append(draw(seconds))
    return " ".join(fields)


# A few values each, so that a brute-force walk over wall seconds stays small.
FEW_SECONDS = st.sampled_from(["0", "30", "0,59", "*/20", "15-16"])
# Anything at all, from the characters cron uses: must be compiled or refused cleanly.
NOISE = st.text(alphabet="0123456789*/-,#?LlWwHhR jfmasondJFMASOND@", max_size=30)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid expression with one field broken in a way people break them."""
    fields = draw(expressions()).split(" ")
    assume(len(fields) >= 5)
    index = draw(st.integers(0, len(fields) - 1))
    fields[index] = draw(
        st.sampled_from(["5-1", "*/0", "1,,2", "1,", ",1", "99", "-1", "1-", "1#9", "mon-fri#2"])
    )
    return " ".join(fields)


INSTANTS = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC)
)


def _compile(expression: str, day_and: bool) -> CronRule | None:
    try:
        return CronRule(expression, day_and=day_and)
    except ScheduleError as refused:
        assert "\n" not in str(refused)
        return None


def _never_matches(matcher: WallMatcher) -> bool:
    """No day of a whole 400-year cycle (the Gregorian calendar repeats) matches."""
    day, last = date(2000, 1, 1), date(2399, 12, 31)
    while day <= last:
        if matcher.matches_day(datetime(day.year, day.month, day.day)):
            return False
        day += timedelta(days=1)
    return True


class _Timed:
    """Calls next_after and keeps the slowest call, for hypothesis to report and aim at."""

    def __init__(self, schedule: CronSchedule) -> None:
        self.schedule = schedule
        self.slowest = 0.0

    def next_after(self, after: datetime) -> datetime | None:
        began = time.perf_counter()
        slot = self.schedule.next_after(after)
        self.slowest = max(self.slowest, time.perf_counter() - began)
        return slot

    def record(self) -> None:
        target(self.slowest, label="slowest next_after (s)")
        if self.slowest > SLOW_SECONDS:
            event(f"a next_after over {SLOW_SECONDS * 1000:.0f} ms")


# -- properties ------------------------------------------------------------------------------


@TIMEOUT
@FUZZ
@given(text=st.one_of(NOISE, mutated(), expressions()), day_and=st.booleans())
def test_any_text_compiles_or_is_refused_in_one_line(text: str, day_and: bool) -> None:
    rule = _compile(text, day_and)
    if rule is not None:
        assert rule.next_wall(0) is not None


@TIMEOUT
@FUZZ
@given(expression=expressions(), day_and=st.booleans())
def test_never_fires_is_refused_exactly_when_no_date_matches(
    expression: str, day_and: bool
) -> None:
    try:
        CronRule(expression, day_and=day_and)
    except ScheduleError as refused:
        assert "never fires" in str(refused), f"{expression!r}: {refused}"
        assert _never_matches(WallMatcher(expression, day_and=day_and))


@TIMEOUT
@FUZZ
@given(
    expression=expressions(),
    day_and=st.booleans(),
    zone=st.sampled_from(ZONES),
    after=INSTANTS,
)
def test_next_after_is_later_and_matches(
    expression: str, day_and: bool, zone: str, after: datetime
) -> None:
    assume(_compile(expression, day_and) is not None)
    tz = ZoneInfo(zone)
    timed = _Timed(CronSchedule(expression=expression, timezone=tz, day_and=day_and))
    matcher = WallMatcher(expression, day_and=day_and)
    previous = after
    for _ in range(4):
        slot = timed.next_after(previous)
        if slot is None:
            event("no slot")
            break
        assert slot > previous and slot.tzinfo is UTC and slot.microsecond == 0
        local = slot.astimezone(tz)
        wall = local.replace(tzinfo=None)
        before = datetime.fromtimestamp(slot.timestamp() - 1, tz)
        if matcher.matches(wall):
            if matcher.fixed_hours:
                # a repeated wall time fires in its first occurrence only
                first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
                assert first == slot, f"{expression!r} in {zone}: {local} is a second occurrence"
        else:
            # only a fixed-hour match skipped by a gap moves, to the transition that ends it
            assert matcher.fixed_hours, f"{expression!r} in {zone}: {local} does not match"
            gap_start = before.replace(tzinfo=None) + timedelta(seconds=1)
            assert gap_start < wall, f"{expression!r} in {zone}: {local} is not after a gap"
            assert _matches_between(matcher, gap_start, wall)
        previous = slot
    timed.record()


def _matches_between(matcher: WallMatcher, first: datetime, stop: datetime) -> bool:
    minute = first.replace(second=0)
    while minute < stop:
        if matcher.matches_minute(minute):
            for second in matcher.seconds:
                if first <= minute.replace(second=second) < stop:
                    return True
        minute += timedelta(minutes=1)
    return False


@TIMEOUT
@FUZZ
@given(
    expression=expressions(seconds=FEW_SECONDS),
    day_and=st.booleans(),
    zone=st.sampled_from(ZONES),
    decade=st.integers(190, 219),
    data=st.data(),
)
def test_agrees_with_brute_force_around_dst_transitions(
    expression: str, day_and: bool, zone: str, decade: int, data: st.DataObject
) -> None:
    assume(_compile(expression, day_and) is not None)
    # Probing twice a day finds every change but two that cancel out within half a day.
    changes = transitions(zone, decade * 10, decade * 10 + 9, probe_seconds=12 * 3600)
    if changes:
        event("around a transition")
        centre_ts = data.draw(st.sampled_from(changes), label="transition")
        centre_ts += data.draw(st.integers(-6 * 3600, 6 * 3600), label="shift")
    else:
        event("no transition in that decade")
        centre_ts = data.draw(
            st.integers(
                int(datetime(decade * 10, 1, 1, tzinfo=UTC).timestamp()),
                int(datetime(decade * 10 + 9, 12, 31, tzinfo=UTC).timestamp()),
            ),
            label="instant",
        )
    tz = ZoneInfo(zone)
    centre = datetime.fromtimestamp(centre_ts, UTC)
    first, last = centre - timedelta(hours=30), centre + timedelta(hours=30)
    expected = brute_force_fires(expression, tz, first, last, day_and=day_and)
    timed = _Timed(CronSchedule(expression=expression, timezone=tz, day_and=day_and))
    got = []
    slot = timed.next_after(first - timedelta(seconds=1))
    while slot is not None and slot <= last:
        got.append(int(slot.timestamp()))
        slot = timed.next_after(slot)
    timed.record()
    if got != expected:
        show = [datetime.fromtimestamp(ts, tz).isoformat() for ts in got]
        want = [datetime.fromtimestamp(ts, tz).isoformat() for ts in expected]
        missing = sorted(set(want) - set(show))[:5]
        extra = sorted(set(show) - set(want))[:5]
        pytest.fail(f"{expression!r} in {zone}: missing {missing}, extra {extra}")


def test_a_search_starting_on_a_spring_forward_fires_its_gap() -> None:
    """Found by the fuzz above: America/Atka left local mean time (-11:46:38) for -11:00 on
    1900-08-20, skipping 12:00:00-12:46:37. A search that starts exactly at that instant (the
    fire before it was 11:59:59) still fires the skipped wall times there, once, as the brute
    force does; the walk used to see only gaps ahead of where it starts."""
    tz = ZoneInfo("America/Atka")
    schedule = CronSchedule(expression="* *,* * * * 0,59", timezone=tz)
    first = datetime(1900, 8, 20, 23, 40, tzinfo=UTC)
    last = datetime(1900, 8, 20, 23, 50, tzinfo=UTC)
    expected = brute_force_fires(schedule.expression, tz, first, last)
    got, slot = [], schedule.next_after(first - timedelta(seconds=1))
    while slot is not None and slot <= last:
        got.append(int(slot.timestamp()))
        slot = schedule.next_after(slot)
    transition = int(datetime(1900, 8, 20, 23, 46, 38, tzinfo=UTC).timestamp())
    assert transition in expected and got == expected
