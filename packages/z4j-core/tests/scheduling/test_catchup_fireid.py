"""Catch-up policies, fire ids and deterministic jitter."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from z4j_core.scheduling import (
    CronSchedule,
    IntervalSchedule,
    ScheduleError,
    catch_up,
    fire_id,
    jitter_offset,
    latest_slot_between,
    parse_fire_id,
)

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)
MINUTELY = {"expression": "* * * * *", "misfire_grace": timedelta(seconds=30)}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_skip_fires_nothing_missed_and_reports_it() -> None:
    schedule = CronSchedule(catch_up="skip", **MINUTELY)  # type: ignore[arg-type]
    answer = catch_up(schedule, T0, at(10))
    assert answer.slots == (at(10),)  # 10:00 is on time (0 s late)
    assert answer.skipped_through == at(9)
    assert answer.cursor == at(10)


def test_one_fires_only_the_latest_missed_slot() -> None:
    schedule = CronSchedule(catch_up="one", **MINUTELY)  # type: ignore[arg-type]
    answer = catch_up(schedule, T0, at(10.2))
    assert answer.slots == (at(9), at(10))
    assert answer.skipped_through == at(8)


def test_all_fires_every_missed_slot_oldest_first_bounded() -> None:
    schedule = CronSchedule(catch_up="all", max_catch_up=4, **MINUTELY)  # type: ignore[arg-type]
    first = catch_up(schedule, T0, at(10))
    assert first.slots == (at(1), at(2), at(3), at(4)) and first.truncated
    second = catch_up(schedule, first.cursor, at(10))
    assert second.slots == (at(5), at(6), at(7), at(8)) and second.truncated
    third = catch_up(schedule, second.cursor, at(10))
    assert third.slots == (at(9), at(10)) and not third.truncated


def test_grace_decides_what_is_missed() -> None:
    schedule = CronSchedule(
        expression="0 * * * *", catch_up="skip", misfire_grace=timedelta(minutes=5)
    )
    on_time = catch_up(schedule, at(-1), at(4))
    assert on_time.slots == (T0,)
    late = catch_up(schedule, at(-1), at(6))
    assert late.slots == () and late.skipped_through == T0 and late.cursor == T0


def test_nothing_due_keeps_the_cursor() -> None:
    schedule = CronSchedule(expression="0 0 * * *")
    answer = catch_up(schedule, at(1), at(2))
    assert answer == type(answer)(slots=(), cursor=at(1))


def test_a_month_backlog_of_a_per_second_schedule_is_cheap_to_skip() -> None:
    schedule = CronSchedule(expression="* * * * * *", catch_up="one")
    now = T0 + timedelta(days=30)
    answer = catch_up(schedule, T0, now)
    late = now - schedule.lateness_allowed
    assert answer.slots[0] == late  # the latest missed slot
    assert len(answer.slots) == 1 + 60  # plus the 60 on-time seconds within the grace


@settings(max_examples=40, deadline=None)
@given(
    step=st.integers(1, 5000),
    span=st.integers(0, 200_000),
    lag=st.integers(0, 100_000),
)
def test_latest_slot_between_matches_a_walk(step: int, span: int, lag: int) -> None:
    schedule = IntervalSchedule(every=timedelta(seconds=step), anchor=T0)
    after = T0 + timedelta(seconds=lag)
    until = after + timedelta(seconds=span)
    walked = None
    slot = schedule.next_after(after)
    while slot is not None and slot <= until:
        walked = slot
        slot = schedule.next_after(slot)
    assert latest_slot_between(schedule, after, until) == walked


def test_fire_ids_are_deterministic_safe_and_zone_free() -> None:
    slot = datetime(2025, 11, 2, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York"))
    same_instant = slot.astimezone(UTC)
    assert fire_id("sched-7f3c_a", slot) == fire_id("sched-7f3c_a", same_instant)
    assert fire_id("sched-7f3c_a", slot) == "sched-7f3c_a_20251102T063000Z"
    first_fold = slot.replace(fold=0)
    assert fire_id("s", first_fold) != fire_id("s", slot)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", fire_id("s", slot + timedelta(microseconds=5)))


@settings(max_examples=100, deadline=None)
@given(
    schedule_id=st.from_regex(r"[A-Za-z0-9_-]{1,80}", fullmatch=True),
    slot=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
)
def test_fire_id_round_trips(schedule_id: str, slot: datetime) -> None:
    value = fire_id(schedule_id, slot)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", value)
    assert parse_fire_id(value) == (schedule_id, slot)


@pytest.mark.parametrize("bad", ["", "a b", "a/b", "x" * 81, "é"])
def test_bad_schedule_ids_are_refused(bad: str) -> None:
    with pytest.raises(ScheduleError, match="schedule id"):
        fire_id(bad, T0)


def test_jitter_is_deterministic_bounded_and_spread() -> None:
    span = timedelta(seconds=30)
    offsets = [jitter_offset("s1", T0 + timedelta(minutes=i), span) for i in range(200)]
    assert offsets == [jitter_offset("s1", T0 + timedelta(minutes=i), span) for i in range(200)]
    assert all(timedelta(0) <= o <= span for o in offsets)
    assert len(set(offsets)) > 150
    assert jitter_offset("s2", T0, span) != jitter_offset("s1", T0, span) or jitter_offset(
        "s3", T0, span
    ) != jitter_offset("s1", T0, span)
    schedule = CronSchedule(expression="* * * * *", jitter=span)
    assert schedule.due_at("s1", T0) == T0 + offsets[0]
