"""Cron tables: DST in several zones, the southern hemisphere, leap days, L and #, parsing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from z4j_core.scheduling import CronSchedule, ScheduleError

UTC = timezone.utc


def fires(expression: str, zone: str, after: str, count: int, day_and: bool = False) -> list[str]:
    schedule = CronSchedule(expression=expression, timezone=ZoneInfo(zone), day_and=day_and)
    start = datetime.fromisoformat(after.replace("Z", "+00:00"))
    return [s.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for s in schedule.slots(start, count)]


# (zone, expression, after (UTC), expected fires (UTC), what it shows)
DST_TABLE = [
    # New York: fall-back 2025-11-02 02:00 EDT -> 01:00 EST; spring 2025-03-09 02:00 -> 03:00.
    (
        "America/New_York",
        "30 1 * * *",
        "2025-11-01T12:00:00Z",
        ["2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z"],
        "fixed hour: first 01:30 only",
    ),
    (
        "America/New_York",
        "30 1 * * *",
        "2025-11-02T05:30:00Z",
        ["2025-11-03T06:30:00Z"],
        "the second 01:30 does not fire",
    ),
    (
        "America/New_York",
        "30 2 * * *",
        "2025-03-08T12:00:00Z",
        ["2025-03-09T07:00:00Z", "2025-03-10T06:30:00Z"],
        "gap: 02:30 fires at 03:00 EDT",
    ),
    (
        "America/New_York",
        "0,30 2 * * *",
        "2025-03-08T12:00:00Z",
        ["2025-03-09T07:00:00Z", "2025-03-10T06:00:00Z"],
        "two slots in one gap fire once",
    ),
    (
        "America/New_York",
        "0,30 2,3 * * *",
        "2025-03-09T06:00:00Z",
        ["2025-03-09T07:00:00Z", "2025-03-09T07:30:00Z"],
        "gap slots and 03:00 share an instant",
    ),
    (
        "America/New_York",
        "30 * * * *",
        "2025-11-02T04:00:00Z",
        [
            "2025-11-02T04:30:00Z",
            "2025-11-02T05:30:00Z",
            "2025-11-02T06:30:00Z",
            "2025-11-02T07:30:00Z",
        ],
        "wildcard hour: 01:30 fires in both folds",
    ),
    (
        "America/New_York",
        "30 */1 * * *",
        "2025-03-09T05:00:00Z",
        ["2025-03-09T05:30:00Z", "2025-03-09T06:30:00Z", "2025-03-09T07:30:00Z"],
        "step hour: 02:30 does not exist and does not fire",
    ),
    # Santiago: the change is at midnight. 2025-09-07 00:00 -> 01:00; 2025-04-06 00:00 -> 23:00.
    (
        "America/Santiago",
        "0 0 * * *",
        "2025-09-06T12:00:00Z",
        ["2025-09-07T04:00:00Z", "2025-09-08T03:00:00Z"],
        "midnight skipped: fires at 01:00",
    ),
    (
        "America/Santiago",
        "30 23 * * *",
        "2025-04-05T12:00:00Z",
        ["2025-04-06T02:30:00Z", "2025-04-07T03:30:00Z"],
        "23:30 repeats: first only",
    ),
    (
        "America/Santiago",
        "30 * * * *",
        "2025-04-06T01:00:00Z",
        [
            "2025-04-06T01:30:00Z",
            "2025-04-06T02:30:00Z",
            "2025-04-06T03:30:00Z",
            "2025-04-06T04:30:00Z",
        ],
        "23:30 both folds for a wildcard hour",
    ),
    # Beirut: 2025-03-30 00:00 -> 01:00; 2025-10-26 00:00 -> 23:00 (Oct 25).
    (
        "Asia/Beirut",
        "15 0 * * *",
        "2025-03-29T12:00:00Z",
        ["2025-03-29T22:00:00Z", "2025-03-30T21:15:00Z"],
        "00:15 skipped: at 01:00 +03",
    ),
    (
        "Asia/Beirut",
        "15 23 * * *",
        "2025-10-25T12:00:00Z",
        ["2025-10-25T20:15:00Z", "2025-10-26T21:15:00Z"],
        "23:15 repeated: first only",
    ),
    # Havana: 2025-03-09 00:00 -> 01:00; 2025-11-02 01:00 -> 00:00.
    (
        "America/Havana",
        "30 0 * * *",
        "2025-03-08T12:00:00Z",
        ["2025-03-09T05:00:00Z", "2025-03-10T04:30:00Z"],
        "00:30 skipped: at 01:00 CDT",
    ),
    (
        "America/Havana",
        "30 0 * * *",
        "2025-11-01T12:00:00Z",
        ["2025-11-02T04:30:00Z", "2025-11-03T05:30:00Z"],
        "00:30 repeated: first only",
    ),
    # Lord Howe: 30-minute shifts. 2025-10-05 02:00 -> 02:30; 2025-04-06 02:00 -> 01:30.
    (
        "Australia/Lord_Howe",
        "15 2 * * *",
        "2025-10-04T00:00:00Z",
        ["2025-10-04T15:30:00Z", "2025-10-05T15:15:00Z"],
        "02:15 in a 30-min gap: at 02:30",
    ),
    (
        "Australia/Lord_Howe",
        "45 1 * * *",
        "2025-04-05T00:00:00Z",
        ["2025-04-05T14:45:00Z", "2025-04-06T15:15:00Z"],
        "01:45 repeated by 30 min: first only",
    ),
    (
        "Australia/Lord_Howe",
        "*/30 * * * *",
        "2025-04-05T14:20:00Z",
        [
            "2025-04-05T14:30:00Z",
            "2025-04-05T15:00:00Z",
            "2025-04-05T15:30:00Z",
            "2025-04-05T16:00:00Z",
        ],
        "01:30 twice for a wildcard hour",
    ),
    (
        "Australia/Lord_Howe",
        "0 * * * *",
        "2025-10-04T14:00:00Z",
        ["2025-10-04T14:30:00Z", "2025-10-04T16:00:00Z"],
        "02:00 does not exist for hourly",
    ),
    # Troll: 2-hour shifts. 2025-03-30 01:00 -> 03:00; 2025-10-26 03:00 -> 01:00.
    (
        "Antarctica/Troll",
        "0 1,2 * * *",
        "2025-03-29T12:00:00Z",
        ["2025-03-30T01:00:00Z", "2025-03-30T23:00:00Z"],
        "01:00 and 02:00 in the gap: once",
    ),
    (
        "Antarctica/Troll",
        "30 2 * * *",
        "2025-10-25T12:00:00Z",
        ["2025-10-26T00:30:00Z", "2025-10-27T02:30:00Z"],
        "02:30 repeated: first only",
    ),
    (
        "Antarctica/Troll",
        "0 * * * *",
        "2025-10-25T23:30:00Z",
        [
            "2025-10-26T00:00:00Z",
            "2025-10-26T01:00:00Z",
            "2025-10-26T02:00:00Z",
            "2025-10-26T03:00:00Z",
        ],
        "hourly through a 2-hour fall-back: every UTC hour",
    ),
    # Sydney, southern hemisphere: spring forward in October, fall back in April.
    (
        "Australia/Sydney",
        "30 2 * * *",
        "2025-10-04T00:00:00Z",
        ["2025-10-04T16:00:00Z", "2025-10-05T15:30:00Z"],
        "October gap: 02:30 at 03:00 AEDT",
    ),
    (
        "Australia/Sydney",
        "30 2 * * *",
        "2025-04-05T00:00:00Z",
        ["2025-04-05T15:30:00Z", "2025-04-06T16:30:00Z"],
        "April repeat: first 02:30 only",
    ),
]


@pytest.mark.parametrize(("zone", "expression", "after", "expected", "why"), DST_TABLE)
def test_dst_table(zone: str, expression: str, after: str, expected: list[str], why: str) -> None:
    assert fires(expression, zone, after, len(expected)) == expected, why


CALENDAR_TABLE = [
    ("0 0 29 2 *", "2025-01-01T00:00:00Z", ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
    ("0 0 L 2 *", "2027-01-01T00:00:00Z", ["2027-02-28T00:00:00Z", "2028-02-29T00:00:00Z"]),
    (
        "0 12 L * *",
        "2024-01-31T12:00:00Z",
        ["2024-02-29T12:00:00Z", "2024-03-31T12:00:00Z", "2024-04-30T12:00:00Z"],
    ),
    (
        "0 9 * * 5L",
        "2025-01-01T00:00:00Z",
        ["2025-01-31T09:00:00Z", "2025-02-28T09:00:00Z", "2025-03-28T09:00:00Z"],
    ),
    (
        "0 9 * * L5",
        "2025-01-01T00:00:00Z",
        ["2025-01-31T09:00:00Z", "2025-02-28T09:00:00Z", "2025-03-28T09:00:00Z"],
    ),
    (
        "0 9 * * 1#2",
        "2025-01-01T00:00:00Z",
        ["2025-01-13T09:00:00Z", "2025-02-10T09:00:00Z", "2025-03-10T09:00:00Z"],
    ),
    (
        "0 9 * * sat#5",
        "2025-01-01T00:00:00Z",
        ["2025-03-29T09:00:00Z", "2025-05-31T09:00:00Z", "2025-08-30T09:00:00Z"],
    ),
    (
        "0 0 29 2 1",
        "2024-01-01T00:00:00Z",  # POSIX or: Feb 29, and every Monday of February
        [
            "2024-02-05T00:00:00Z",
            "2024-02-12T00:00:00Z",
            "2024-02-19T00:00:00Z",
            "2024-02-26T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2025-02-03T00:00:00Z",
        ],
    ),
    ("0 0 1 jan-mar mon", "2025-01-01T00:00:00Z", ["2025-01-06T00:00:00Z", "2025-01-13T00:00:00Z"]),
    ("@yearly", "2025-06-01T00:00:00Z", ["2026-01-01T00:00:00Z"]),
    ("@monthly", "2025-06-01T00:00:00Z", ["2025-07-01T00:00:00Z"]),
    ("@weekly", "2025-06-01T00:00:00Z", ["2025-06-08T00:00:00Z"]),
    ("@daily", "2025-06-01T00:00:00Z", ["2025-06-02T00:00:00Z"]),
    ("@hourly", "2025-06-01T00:00:00Z", ["2025-06-01T01:00:00Z"]),
    ("*/20 * * * * 15", "2025-06-01T00:00:00Z", ["2025-06-01T00:00:15Z", "2025-06-01T00:20:15Z"]),
    (
        "0 0 * * * */20",
        "2025-06-01T00:00:00Z",
        ["2025-06-01T00:00:20Z", "2025-06-01T00:00:40Z", "2025-06-02T00:00:00Z"],
    ),
]


@pytest.mark.parametrize(("expression", "after", "expected"), CALENDAR_TABLE)
def test_calendar_table(expression: str, after: str, expected: list[str]) -> None:
    assert fires(expression, "UTC", after, len(expected)) == expected


def test_day_and_reads_both_fields_as_celery_does() -> None:
    # Friday the 13th.
    assert fires("0 0 13 * 5", "UTC", "2025-01-01T00:00:00Z", 2, day_and=True) == [
        "2025-06-13T00:00:00Z",
        "2026-02-13T00:00:00Z",
    ]
    assert fires("0 0 13 * 5", "UTC", "2025-01-01T00:00:00Z", 2) == [
        "2025-01-03T00:00:00Z",
        "2025-01-10T00:00:00Z",
    ]


def test_leap_day_in_a_dst_zone_southern_hemisphere() -> None:
    assert fires("0 3 29 2 *", "America/Santiago", "2025-01-01T00:00:00Z", 1) == [
        "2028-02-29T06:00:00Z"
    ]


def test_bounds_start_inclusive_end_inclusive() -> None:
    start = datetime(2025, 1, 1, 9, tzinfo=UTC)
    end = datetime(2025, 1, 3, 9, tzinfo=UTC)
    schedule = CronSchedule(expression="0 9 * * *", start=start, end=end)
    assert schedule.slots(datetime(2024, 1, 1, tzinfo=UTC), 10) == [
        start,
        datetime(2025, 1, 2, 9, tzinfo=UTC),
        end,
    ]


def test_returns_utc_instants_whose_local_reading_has_the_fold() -> None:
    zone = ZoneInfo("America/New_York")
    schedule = CronSchedule(expression="30 * * * *", timezone=zone)
    first, second = schedule.slots(datetime(2025, 11, 2, 5, 0, tzinfo=UTC), 2)
    assert second.tzinfo is UTC and second - first == timedelta(hours=1)
    local = second.astimezone(zone)
    assert local.fold == 1 and local.hour == 1


def test_naive_after_is_refused() -> None:
    schedule = CronSchedule(expression="* * * * *")
    with pytest.raises(ScheduleError, match="no time zone"):
        schedule.next_after(datetime(2025, 1, 1))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "minute field '61'"),
        ("* 24 * * *", "hour field '24'"),
        ("* * 32 * *", "day-of-month field '32'"),
        ("* * * 13 *", "month field '13'"),
        ("* * * * 8", "day-of-week field '8'"),
        ("* * * * 1#6", "day-of-week field '1#6'"),
        ("* * * * * 60", "second field '60'"),
        ("* * * *", "has 4 fields"),
        ("* * * * * * 2025", "has 7 fields"),
        ("0 0 30 2 *", "never fires"),
        ("@fortnightly", "unknown cron alias"),
        ("H * * * *", "hashed or random"),
        ("0 0 15W * *", "nearest weekday"),
        ("", "non-empty"),
    ],
)
def test_bad_expressions_name_the_bad_value(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("*", r"\*")):
        CronSchedule(expression=expression)


def test_never_matching_day_and_is_refused_not_looped() -> None:
    with pytest.raises(ScheduleError, match="never fires"):
        CronSchedule(expression="0 0 1 * 1#2", day_and=True)


def test_search_past_year_9999_ends_with_none() -> None:
    schedule = CronSchedule(expression="0 0 1 1 *")
    assert schedule.next_after(datetime(9999, 6, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("30 1 * * *", "at 01:30 every day"),
        ("*/15 * * * *", "every 15 minutes every day"),
        ("0 9 * * mon-fri", "at 09:00 on Monday to Friday"),
        ("0 12 L * *", "at 12:00 on the last day of the month"),
        ("0 9 * * 1#2", "at 09:00 on the second Monday of the month"),
        ("0 0 1 1 *", "at 00:00 on day 1 of the month in January"),
    ],
)
def test_describe(expression: str, words: str) -> None:
    schedule = CronSchedule(expression=expression, timezone=ZoneInfo("Europe/Berlin"))
    assert schedule.describe() == f"{words}, Europe/Berlin"
