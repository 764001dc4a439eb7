"""Cron parsing and day-field tables, the bounded search, and the creation-time horizon check.

Each reproduction the parser and the search were rewritten for is a row here: an equal-ended
range, matches that only ever fall in a DST gap, and rare dates asked for a thousand slots.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from z4j_core.scheduling import (
    CronSchedule,
    IntervalSchedule,
    OneShotSchedule,
    ScheduleError,
    check_fires_within,
    compile_cron,
)
from z4j_core.scheduling.cron import MAX_STRETCHES, CronRule, next_fire_ts
from z4j_core.scheduling.zones import ZoneTimeline

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
JAN_2025 = datetime(2025, 1, 1, tzinfo=UTC)
# Its only matches (02:30 on the second Sunday of March) fall in New York's spring-forward gap,
# and the hour is a step term, so a skipped wall time does not fire: it never fires.
GAP_ONLY = "30 2/24 8-14 3 0"


def days(expression: str, count: int, day_and: bool = False, after: str = "2025-01-01") -> list:
    schedule = CronSchedule(expression=expression, day_and=day_and)
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)
    return [slot.strftime("%Y-%m-%d") for slot in schedule.slots(start, count)]


def bits(mask: int) -> set[int]:
    return {i for i in range(mask.bit_length()) if mask >> i & 1}


# -- the reproductions ---------------------------------------------------------------------


def test_an_equal_ended_range_is_one_value() -> None:
    schedule = CronSchedule(expression="0 9-9 * * *")
    assert schedule.slots(JAN_2025, 3) == [
        datetime(2025, 1, 1, 9, tzinfo=UTC),
        datetime(2025, 1, 2, 9, tzinfo=UTC),
        datetime(2025, 1, 3, 9, tzinfo=UTC),
    ]


def test_matches_only_in_a_dst_gap_never_fire_and_the_search_ends() -> None:
    schedule = CronSchedule(expression=GAP_ONLY, day_and=True, timezone=NEW_YORK)
    assert schedule.next_after(JAN_2025) is None


def test_matches_only_in_a_dst_gap_are_refused_at_creation() -> None:
    schedule = CronSchedule(expression=GAP_ONLY, day_and=True, timezone=NEW_YORK)
    with pytest.raises(ScheduleError) as caught:
        check_fires_within(schedule, JAN_2025)
    assert str(caught.value) == (
        "cron expression '30 2/24 8-14 3 0' with day_and matches no instant that exists in "
        "America/New_York within 28 years after 2025-01-01T00:00:00Z"
    )


def test_before_2007_the_same_gap_only_expression_fired() -> None:
    # Until 2006 New York sprang forward in April: 02:30 on the second Sunday of March existed.
    schedule = CronSchedule(expression=GAP_ONLY, day_and=True, timezone=NEW_YORK)
    slot = schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC))
    assert slot == datetime(2000, 3, 12, 7, 30, tzinfo=UTC)


def test_a_thousand_slots_of_a_rare_date_are_every_one_there_is() -> None:
    schedule = CronSchedule(expression="0 0 29 2 1", day_and=True)
    slots = schedule.slots(JAN_2025, 1000)
    expected = [
        datetime(year, 2, 29, tzinfo=UTC)
        for year in range(2025, 10000)
        if calendar.isleap(year) and date(year, 2, 29).weekday() == 0
    ]
    assert slots == expected[:1000]
    assert [s.year for s in slots[:4]] == [2044, 2072, 2112, 2140]


def test_a_thousand_yearly_slots() -> None:
    schedule = CronSchedule(expression="59 23 L 2 *", timezone=NEW_YORK)
    slots = schedule.slots(JAN_2025, 1000)
    assert len(slots) == 1000
    for year, slot in zip(range(2025, 3025), slots, strict=True):
        local = slot.astimezone(NEW_YORK)
        assert (local.year, local.month, local.day) == (year, 2, calendar.monthrange(year, 2)[1])
        assert (local.hour, local.minute) == (23, 59)


def test_a_search_that_keeps_missing_gives_up_with_none() -> None:
    # Every search visits at most MAX_STRETCHES stretches of constant offset.
    assert MAX_STRETCHES >= 1000
    schedule = CronSchedule(expression=GAP_ONLY, day_and=True, timezone=NEW_YORK)
    assert schedule.next_after(datetime(2300, 1, 1, tzinfo=UTC)) is None


def chunks_built(expression: str, zone: str, day_and: bool, count: int) -> tuple[int, int]:
    """(slots found, timeline chunks built) by `count` searches on a fresh timeline.

    A chunk is the unit of the search's work (about 194 days of zoneinfo probes), so this
    measures the work without a clock.
    """
    rule = CronRule(expression, day_and=day_and)
    timeline = ZoneTimeline(ZoneInfo(zone))
    ts, found = int(JAN_2025.timestamp()), 0
    for _ in range(count):
        fire = next_fire_ts(rule, timeline, ts + 1)
        if fire is None:
            break
        ts, found = fire, found + 1
    return found, len(timeline._chunks)


@pytest.mark.parametrize(
    ("expression", "zone", "day_and", "count", "most_chunks"),
    [
        # Walking every stretch to the year 9999 built ~16,000 chunks for each of these.
        (GAP_ONLY, "America/New_York", True, 1, 2 * MAX_STRETCHES),
        ("0 0 29 2 1", "UTC", True, 1000, 2 * 300),
        ("0 0 29 2 1", "Australia/Lord_Howe", True, 1000, 2 * 300),
        # Walking built ~1.9 chunks a year; jumping builds about one per slot.
        ("59 23 L 2 *", "America/New_York", False, 1000, 1500),
    ],
)
def test_far_slots_are_reached_by_jumping_not_walking(
    expression: str, zone: str, day_and: bool, count: int, most_chunks: int
) -> None:
    found, chunks = chunks_built(expression, zone, day_and, count)
    assert chunks <= most_chunks, f"{found} slots cost {chunks} chunks"


# -- parsing: what each field reads ---------------------------------------------------------

# (expression, attribute of the compiled rule, the values it holds)
FIELD_TABLE = [
    ("0 9-9 * * *", "hour_mask", {9}),
    ("*/15 * * * *", "minute_mask", {0, 15, 30, 45}),
    ("5/20 * * * *", "minute_mask", {5, 25, 45}),
    ("10-30/10 * * * *", "minute_mask", {10, 20, 30}),
    ("1,5,9 * * * *", "minute_mask", {1, 5, 9}),
    ("0-2,58-59 * * * *", "minute_mask", {0, 1, 2, 58, 59}),
    ("0 2/24 * * *", "hour_mask", {2}),
    ("0 */100 * * *", "hour_mask", {0}),
    ("0 0 * JAN-Mar *", "month_mask", {1, 2, 3}),
    ("0 0 * jan/5 *", "month_mask", {1, 6, 11}),
    ("0 0 * */4 *", "month_mask", {1, 5, 9}),
    ("0 0 * * MON-fri", "dow_mask", {1, 2, 3, 4, 5}),
    ("0 0 * * 7", "dow_mask", {0}),
    ("0 0 * * 5-7", "dow_mask", {5, 6, 0}),
    ("0 0 * * 1/2", "dow_mask", {1, 3, 5}),
    ("0 0 * * sun,sat", "dow_mask", {0, 6}),
    ("0 0 * * *", "dow_mask", set(range(7))),
    ("0 0 * * 0-7", "dow_mask", set(range(7))),
    ("0 0 1,15,L * *", "dom_mask", {1, 15}),
    ("0 0 L * *", "dom_mask", set()),
    ("0 0 ? * 1", "dom_mask", set(range(1, 32))),
    ("0 0 * * * */20", "second_mask", {0, 20, 40}),
    ("0 0 * * * 7", "second_mask", {7}),
    ("0 0 * * *", "second_mask", {0}),
    ("@hourly", "hour_mask", set(range(24))),
    ("@weekly", "dow_mask", {0}),
    ("@yearly", "month_mask", {1}),
]


@pytest.mark.parametrize(("expression", "attribute", "values"), FIELD_TABLE)
def test_field_values(expression: str, attribute: str, values: set[int]) -> None:
    assert bits(getattr(CronRule(expression), attribute)) == values


# (expression, nth: (weekday, the n of each #n, last))
NTH_TABLE = [
    ("0 0 * * 5L", ((5, {}, True),)),
    ("0 0 * * L5", ((5, {}, True),)),
    ("0 0 * * friL", ((5, {}, True),)),
    ("0 0 * * 1#2", ((1, {2}, False),)),
    ("0 0 * * mon#1,mon#3", ((1, {1, 3}, False),)),
    ("0 0 * * 7#5,0L", ((0, {5}, True),)),
    ("0 0 * * 2,4#1", ((4, {1}, False),)),
]


@pytest.mark.parametrize(("expression", "nth"), NTH_TABLE)
def test_weekday_of_the_month_terms(expression: str, nth: tuple) -> None:
    rule = CronRule(expression)
    assert tuple((w, bits(n), last) for w, n, last in rule.nth) == tuple(
        (w, set(n), last) for w, n, last in nth
    )


def test_l_in_a_list_with_other_days() -> None:
    assert days("0 0 1,15,L * *", 6) == [
        "2025-01-15",
        "2025-01-31",
        "2025-02-01",
        "2025-02-15",
        "2025-02-28",
        "2025-03-01",
    ]


def test_fixed_hours_rule_is_unchanged() -> None:
    periodic = ["*", "*/2", "8-18/2", "1/3", "2/24"]
    fixed = ["2", "9-17", "9-9", "1,13", "*/6,1", "0-23"]
    for hour in periodic:
        assert not CronRule(f"0 {hour} * * *").fixed_hours, hour
    for hour in fixed:
        assert CronRule(f"0 {hour} * * *").fixed_hours, hour
    assert CronRule("@daily").fixed_hours and not CronRule("@hourly").fixed_hours


# -- parsing: what is refused, and how ------------------------------------------------------

REFUSED = [
    ("0 5-1 * * *", "hour field '5-1': range 5-1 is reversed: write 1-5"),
    ("0 0 * * fri-mon", "range fri-mon is reversed: write mon-fri"),
    ("*/0 * * * *", "minute field '*/0': step 0 in '*/0' never advances"),
    ("0 0 1-10/0 * *", "day-of-month field '1-10/0': step 0"),
    ("*/a * * * *", "step 'a' in '*/a' is not a whole number"),
    ("*/ * * * *", "step '' in '*/' is not a whole number"),
    ("0 0 1,,2 * *", "day-of-month field '1,,2': empty list item"),
    ("0 0 1, * *", "day-of-month field '1,': empty list item"),
    ("0 0 * * ,1", "day-of-week field ',1': empty list item"),
    ("0 0 * foo *", "month field 'foo': unknown name 'foo' (allowed: 1-12 or jan-dec"),
    ("0 0 * * Funday", "day-of-week field 'Funday': unknown name 'funday'"),
    ("0 0 * * funday", "day-of-week field 'funday': unknown name 'funday'"),
    ("0 0 * mon *", "month field 'mon': unknown name 'mon'"),
    ("x * * * *", "minute field 'x': 'x' is not a number (allowed: 0-59"),
    ("60 * * * *", "minute field '60': 60 is out of range (allowed: 0-59"),
    ("0 24 * * *", "hour field '24': 24 is out of range"),
    ("0 0 0 * *", "day-of-month field '0': 0 is out of range"),
    ("0 0 * 0 *", "month field '0': 0 is out of range"),
    ("0 0 * * 8", "day-of-week field '8': 8 is out of range"),
    ("0 0 * * * 60", "second field '60': 60 is out of range"),
    ("0 0-60 * * *", "hour field '0-60': 60 is out of range"),
    ("0 -1 * * *", "hour field '-1': a value is missing"),
    ("0 0 * * 1#0", "day-of-week field '1#0': #0 in '1#0'"),
    ("0 0 * * 1#6", "day-of-week field '1#6': #6"),
    ("0 0 * * 1#", "day-of-week field '1#': #"),
    ("0 0 * * L", "day-of-week field 'L': L needs a weekday here: 5L or L5"),
    ("0 0 * * 1-5L", "day-of-week field '1-5L'"),
    ("0 0 L-2 * *", "day-of-month field 'L-2'"),
    ("0 0 * L *", "month field 'L': unknown name 'l'"),
    ("0 0 31 2,4,6,9,11 *", "never fires"),
    ("0 0 30 2 *", "never fires"),
    ("H * * * *", "hashed or random"),
    ("R 0 * * *", "hashed or random"),
    ("0 0 LW * *", "nearest weekday"),
    ("0 0 15W * *", "nearest weekday"),
    ("@every_5m", "unknown cron alias"),
    ("* * * * * * *", "has 7 fields"),
]


@pytest.mark.parametrize(("expression", "message"), REFUSED)
def test_refusals_name_the_field_and_the_value(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        CronRule(expression)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert f"cron expression {expression!r}" in text or "unknown cron alias" in text


def test_a_never_matching_day_and_is_refused() -> None:
    with pytest.raises(ScheduleError, match="never fires"):
        CronRule("0 0 31 * 2#1", day_and=True)
    with pytest.raises(ScheduleError, match="never fires"):
        CronRule("0 0 30,31 2 *")


# -- the day fields: Vixie cron's rule ------------------------------------------------------

# (expression, day_and, first days from 2025-01-01, what it shows)
DAY_FIELD_TABLE = [
    (
        "0 0 */2 * 1",
        False,
        ["2025-01-13", "2025-01-27", "2025-02-03", "2025-02-17"],
        "day-of-month starts with *: odd days that are Mondays",
    ),
    (
        "0 0 1 * */2",
        False,
        ["2025-02-01", "2025-03-01", "2025-04-01"],
        "day-of-week starts with *: the 1st when it is a Sun, Tue, Thu or Sat",
    ),
    (
        "0 0 13 * 5",
        False,
        ["2025-01-03", "2025-01-10", "2025-01-13", "2025-01-17"],
        "both restricted: the 13th or a Friday",
    ),
    ("0 0 13 * 5", True, ["2025-06-13", "2026-02-13"], "day_and: Friday the 13th"),
    (
        "0 0 1-31 * 1",
        False,
        ["2025-01-02", "2025-01-03", "2025-01-04"],
        "1-31 does not start with *: every day or a Monday is every day",
    ),
    ("0 0 * * 1", False, ["2025-01-06", "2025-01-13"], "a plain * leaves the other field"),
    ("0 0 ? * 5L", False, ["2025-01-31", "2025-02-28"], "? reads as *"),
    (
        "0 0 */10 * mon",
        False,
        ["2025-03-31", "2025-04-21", "2025-07-21"],
        "days 1, 11, 21, 31 that are Mondays",
    ),
    (
        "0 0 L * 1",
        False,
        ["2025-01-06", "2025-01-13", "2025-01-20", "2025-01-27", "2025-01-31"],
        "the last day or a Monday",
    ),
    ("0 0 29 2 1", True, ["2044-02-29", "2072-02-29", "2112-02-29"], "Feb 29 on a Monday"),
]


@pytest.mark.parametrize(("expression", "day_and", "expected", "why"), DAY_FIELD_TABLE)
def test_day_fields(expression: str, day_and: bool, expected: list[str], why: str) -> None:
    assert days(expression, len(expected), day_and) == expected, why


@pytest.mark.parametrize(
    ("expression", "day_and", "words"),
    [
        ("0 0 13 * 5", False, "on day 13 of the month or on Friday"),
        ("0 0 13 * 5", True, "on day 13 of the month and on Friday"),
        ("0 0 */15 * 5", False, "on day 1, 16 and 31 of the month and on Friday"),
        ("0 0 1-31 * 5", False, "every day"),
    ],
)
def test_describe_follows_the_day_field_rule(expression: str, day_and: bool, words: str) -> None:
    text = CronSchedule(expression=expression, day_and=day_and).describe()
    assert text == f"at 00:00 {words}, UTC"


def test_compiled_rules_are_shared_and_keyed_by_day_and() -> None:
    assert compile_cron("0 0 13 * 5") is compile_cron("0 0 13 * 5")
    assert compile_cron("0 0 13 * 5", True) is not compile_cron("0 0 13 * 5")


# -- the horizon check ------------------------------------------------------------------------


def test_fires_within_accepts_a_schedule_that_fires() -> None:
    check_fires_within(CronSchedule(expression="0 0 29 2 *"), JAN_2025)
    check_fires_within(CronSchedule(expression="0 0 29 2 1", day_and=True), JAN_2025)
    check_fires_within(IntervalSchedule(every=timedelta(days=3650)), JAN_2025)


def test_fires_within_refuses_a_rare_date_across_a_century_year() -> None:
    # Feb 29 on a Monday: 2072, then 2112 (2100 is not a leap year).
    schedule = CronSchedule(expression="0 0 29 2 1", day_and=True)
    with pytest.raises(ScheduleError, match="within 28 years after 2073-01-01T00:00:00Z"):
        check_fires_within(schedule, datetime(2073, 1, 1, tzinfo=UTC))
    check_fires_within(schedule, datetime(2073, 1, 1, tzinfo=UTC), years=40)


def test_fires_within_judges_a_future_start_from_its_beginning() -> None:
    start = datetime(2100, 1, 1, tzinfo=UTC)
    check_fires_within(CronSchedule(expression="0 0 * * *", start=start), JAN_2025)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (
            OneShotSchedule(at=datetime(2020, 1, 1, tzinfo=UTC)),
            "oneshot schedule (once at",
        ),
        (
            CronSchedule(expression="0 0 * * *", end=datetime(2024, 1, 1, tzinfo=UTC)),
            "ended at 2024-01-01T00:00:00Z, before 2025-01-01T00:00:00Z",
        ),
        (
            CronSchedule(expression="0 0 29 2 *", end=datetime(2027, 1, 1, tzinfo=UTC)),
            "has no slot between 2025-01-01T00:00:00Z and its end 2027-01-01T00:00:00Z",
        ),
    ],
)
def test_fires_within_says_why(schedule: object, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        check_fires_within(schedule, JAN_2025)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_fires_within_refuses_bad_arguments() -> None:
    schedule = CronSchedule(expression="0 0 * * *")
    with pytest.raises(ScheduleError, match="no time zone"):
        check_fires_within(schedule, datetime(2025, 1, 1))
    with pytest.raises(ScheduleError, match="years must be"):
        check_fires_within(schedule, JAN_2025, years=0)
