"""Cron next-fire properties against independent oracles.

- in every DST zone we use: agreement with a brute-force walk over wall-clock minutes (the
  rules applied literally), around random instants and around every transition 2022-2027;
- in UTC and fixed-offset zones: agreement with croniter's own get_next, seconds, L and # too;
- next_after is strictly increasing and never returns an instant the rules exclude.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scheduling_oracle import DST_ZONES, brute_force_fires, transitions

from z4j_core.scheduling import CronSchedule, ScheduleError

UTC = timezone.utc
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _value_field(low: int, high: int, favourites: list[int]) -> st.SearchStrategy[str]:
    value = st.one_of(st.sampled_from(favourites), st.integers(low, high))
    return st.one_of(
        st.just("*"),
        value.map(str),
        st.tuples(value, value).map(lambda p: f"{min(p)}-{max(p)}"),
        st.lists(value, min_size=2, max_size=3, unique=True).map(
            lambda vs: ",".join(map(str, sorted(vs)))
        ),
        st.integers(2, 20).map(lambda n: f"*/{n}"),
        st.tuples(value, value, st.integers(2, 5)).map(
            lambda p: f"{min(p[:2])}-{max(p[:2])}/{p[2]}"
        ),
    )


MINUTES = _value_field(0, 59, [0, 15, 30, 45, 59])
HOURS = _value_field(0, 23, [0, 1, 2, 3, 22, 23])
DOMS = st.one_of(
    st.just("*"),
    st.just("*"),
    st.just("L"),
    st.integers(1, 31).map(str),
    st.tuples(st.integers(1, 28), st.integers(1, 31)).map(lambda p: f"{min(p)}-{max(p)}"),
    st.just("1,15,L"),
)
MONTHS = st.one_of(st.just("*"), st.just("*"), st.integers(1, 12).map(str), st.just("3-4,9-11"))
DOWS = st.one_of(
    st.just("*"),
    st.just("*"),
    st.integers(0, 6).map(str),
    st.just("mon-fri"),
    st.just("sat,sun"),
    st.tuples(st.integers(0, 6), st.integers(1, 5)).map(lambda p: f"{p[0]}#{p[1]}"),
    st.integers(0, 6).map(lambda d: f"L{d}"),
)


@st.composite
def cron_expressions(draw: st.DrawFn, seconds: bool = False) -> str:
    fields = [draw(MINUTES), draw(HOURS), draw(DOMS), draw(MONTHS), draw(DOWS)]
    if seconds:
        fields.append(draw(st.one_of(st.just("0"), st.just("*/20"), st.integers(0, 59).map(str))))
    return " ".join(fields)


def _schedule(expression: str, zone: str, day_and: bool = False) -> CronSchedule:
    try:
        return CronSchedule(expression=expression, timezone=ZoneInfo(zone), day_and=day_and)
    except ScheduleError:
        assume(False)
        raise


def _ours(schedule: CronSchedule, first: datetime, last: datetime) -> list[int]:
    fires = []
    slot = schedule.next_after(first - timedelta(seconds=1))
    while slot is not None and slot <= last:
        fires.append(int(slot.timestamp()))
        slot = schedule.next_after(slot)
    return fires


def _assert_agrees(expression: str, zone: str, centre: datetime, day_and: bool) -> None:
    schedule = _schedule(expression, zone, day_and)
    first, last = centre - timedelta(days=1), centre + timedelta(days=2)
    expected = brute_force_fires(expression, ZoneInfo(zone), first, last, day_and=day_and)
    got = _ours(schedule, first, last)
    show = [datetime.fromtimestamp(ts, ZoneInfo(zone)).isoformat() for ts in got]
    want = [datetime.fromtimestamp(ts, ZoneInfo(zone)).isoformat() for ts in expected]
    assert got == expected, f"{expression!r} in {zone}: got {show}, want {want}"


@FAST
@given(
    expression=cron_expressions(),
    zone=st.sampled_from(DST_ZONES),
    centre=st.datetimes(
        min_value=datetime(2021, 1, 1), max_value=datetime(2029, 12, 31), timezones=st.just(UTC)
    ),
    day_and=st.booleans(),
)
def test_agrees_with_brute_force_around_random_instants(
    expression: str, zone: str, centre: datetime, day_and: bool
) -> None:
    _assert_agrees(expression, zone, centre, day_and)


@pytest.mark.parametrize("zone", DST_ZONES)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_agrees_with_brute_force_around_every_transition(zone: str, data: st.DataObject) -> None:
    instants = transitions(zone, 2022, 2027)
    assert instants, f"{zone} has no transitions 2022-2027?"
    index = data.draw(st.integers(0, len(instants) - 1), label="transition")
    expression = data.draw(cron_expressions(), label="expression")
    shift = data.draw(st.integers(-6 * 3600, 6 * 3600), label="shift")
    centre = datetime.fromtimestamp(instants[index] + shift, UTC)
    _assert_agrees(expression, zone, centre, day_and=False)


@pytest.mark.parametrize("zone", DST_ZONES)
def test_every_transition_with_the_classic_expressions(zone: str) -> None:
    """Deterministic sweep: hourly, half-hourly and fixed early-morning slots at each change."""
    for ts in transitions(zone, 2024, 2025):
        centre = datetime.fromtimestamp(ts, UTC)
        for expression in ("0 * * * *", "*/30 * * * *", "30 0,1,2 * * *", "15 23,0 * * *"):
            _assert_agrees(expression, zone, centre, day_and=False)


FIXED_ZONES = ("UTC", "Etc/GMT-5", "Etc/GMT+3", "Asia/Kolkata", "Asia/Kathmandu")


@settings(max_examples=60, deadline=None)
@given(
    expression=cron_expressions(seconds=False) | cron_expressions(seconds=True),
    zone=st.sampled_from(FIXED_ZONES),
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    day_and=st.booleans(),
)
def test_agrees_with_croniter_in_fixed_offset_zones(
    expression: str, zone: str, start: datetime, day_and: bool
) -> None:
    # croniter reads '#' beside a day-of-month as an intersection even in OR mode, and an
    # equal-ended range (9-9) as '*'; our readings are covered by the brute-force oracle, so
    # keep croniter to the cases it reads right.
    fields = expression.split()
    assume(not (fields[2] != "*" and ("#" in fields[4] or "L" in fields[4])))
    assume(not re.search(r"(?<![\d#])(\d+)-\1(?!\d)", expression))
    schedule = _schedule(expression, zone, day_and)
    local_start = start.astimezone(ZoneInfo(zone))
    oracle = croniter(expression, local_start, day_or=not day_and)
    ours = local_start
    for _ in range(15):
        want = oracle.get_next(datetime)
        got = schedule.next_after(ours)
        assert got == want, f"{expression!r} in {zone} after {ours}: {got} != {want}"
        ours = got


@FAST
@given(
    expression=cron_expressions(seconds=True),
    zone=st.sampled_from(DST_ZONES),
    start=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
)
def test_next_after_strictly_increases_and_only_returns_allowed_instants(
    expression: str, zone: str, start: datetime
) -> None:
    schedule = _schedule(expression, zone)
    rule = schedule.rule
    previous = start
    for _ in range(40):
        slot = schedule.next_after(previous)
        assert slot is not None
        assert slot.timestamp() > previous.timestamp()
        assert slot.tzinfo is UTC and slot.microsecond == 0
        aware_local = slot.astimezone(ZoneInfo(zone))
        local = aware_local.replace(tzinfo=None)
        if not rule.matches_wall(local):
            # Only a fixed-hour slot moved out of a DST gap may read another wall time, and
            # then it sits exactly on a transition.
            assert rule.fixed_hours
            before = (slot - timedelta(seconds=1)).astimezone(ZoneInfo(zone)).utcoffset()
            assert before is not None and before < aware_local.utcoffset()  # type: ignore[operator]
        elif local.fold == 1 and rule.fixed_hours:
            pytest.fail(f"{expression!r} fired in the second occurrence of {local}")
        previous = slot
