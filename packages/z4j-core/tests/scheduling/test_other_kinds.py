"""Interval, one-shot and solar schedules."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from z4j_core.scheduling import (
    IntervalSchedule,
    OneShotSchedule,
    ScheduleError,
    SolarSchedule,
    parse_duration,
)

UTC = timezone.utc
NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("45", 45),
        (30, 30),
        (1.5, 1.5),
        ("1w", 604800),
        ("250ms", 0.25),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "interval").total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "0s", "0", "-5m", "5 minutes", "abc", True, None])
def test_bad_or_empty_intervals_are_refused(text: object) -> None:
    with pytest.raises(ScheduleError, match="interval"):
        parse_duration(text, "interval")


def test_interval_is_a_fixed_rate_through_dst() -> None:
    anchor = datetime(2025, 3, 9, 0, 0, tzinfo=NY)  # 05:00Z, before the spring-forward
    schedule = IntervalSchedule(every=timedelta(minutes=90), anchor=anchor, timezone=NY)
    slots = schedule.slots(anchor - timedelta(seconds=1), 4)
    assert [s.astimezone(UTC).strftime("%H:%M") for s in slots] == [
        "05:00",
        "06:30",
        "08:00",
        "09:30",
    ]
    assert [b - a for a, b in itertools.pairwise(slots)] == [timedelta(minutes=90)] * 3
    # In local time the gap shows: 00:00, 01:30, 04:00 (EDT), 05:30.
    assert [s.astimezone(NY).strftime("%H:%M") for s in slots] == [
        "00:00",
        "01:30",
        "04:00",
        "05:30",
    ]


def test_interval_from_any_instant_stays_on_the_anchor_grid() -> None:
    anchor = datetime(2025, 1, 1, 0, 0, 7, tzinfo=UTC)
    schedule = IntervalSchedule(every=timedelta(seconds=10), anchor=anchor)
    for probe in (anchor, anchor + timedelta(seconds=3), anchor + timedelta(days=400, seconds=9.5)):
        slot = schedule.next_after(probe)
        assert slot is not None and slot > probe
        assert (slot - anchor) % timedelta(seconds=10) == timedelta(0)
        assert slot - probe <= timedelta(seconds=10)


def test_interval_default_anchor_is_start_then_epoch() -> None:
    start = datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)
    with_start = IntervalSchedule(every=timedelta(minutes=1), start=start)
    assert with_start.next_after(datetime(2024, 1, 1, tzinfo=UTC)) == start
    epoch_grid = IntervalSchedule(every=timedelta(hours=1))
    assert epoch_grid.next_after(start) == datetime(2025, 1, 1, 1, tzinfo=UTC)


def test_one_shot_fires_once_and_refuses_naive() -> None:
    at = datetime(2026, 1, 1, 9, tzinfo=timezone(timedelta(hours=1)))
    schedule = OneShotSchedule(at=at)
    assert schedule.slots(datetime(2025, 1, 1, tzinfo=UTC), 5) == [at]
    assert schedule.next_after(at) is None
    with pytest.raises(ScheduleError, match="no time zone"):
        OneShotSchedule(at=datetime(2026, 1, 1, 9))


BERLIN = ZoneInfo("Europe/Berlin")


def test_sunset_in_berlin_is_daily_and_plausible() -> None:
    schedule = SolarSchedule(event="sunset", latitude=52.52, longitude=13.405, timezone=BERLIN)
    slots = schedule.slots(datetime(2025, 6, 20, tzinfo=UTC), 3)
    local = [s.astimezone(BERLIN) for s in slots]
    assert [s.date().isoformat() for s in local] == ["2025-06-20", "2025-06-21", "2025-06-22"]
    assert all(21 <= s.hour <= 22 for s in local)  # about 21:33 CEST at midsummer


def test_solar_offset_and_strict_increase_across_dst() -> None:
    schedule = SolarSchedule(
        event="sunrise",
        latitude=52.52,
        longitude=13.405,
        timezone=BERLIN,
        offset=timedelta(minutes=-30),
    )
    plain = SolarSchedule(event="sunrise", latitude=52.52, longitude=13.405, timezone=BERLIN)
    after = datetime(2025, 3, 28, tzinfo=UTC)
    shifted, unshifted = schedule.slots(after, 5), plain.slots(after, 5)
    assert [b - a for a, b in zip(shifted, unshifted, strict=True)] == [timedelta(minutes=30)] * 5
    assert all(a < b for a, b in itertools.pairwise(shifted))


@pytest.mark.parametrize("event", ["dawn", "dusk"])
@pytest.mark.parametrize("depression", ["civil", "nautical", "astronomical"])
def test_twilights_order(event: str, depression: str) -> None:
    schedule = SolarSchedule(
        event=event,
        latitude=45.0,
        longitude=7.0,
        depression=depression,
        timezone=ZoneInfo("Europe/Rome"),
    )
    assert schedule.next_after(datetime(2025, 1, 10, tzinfo=UTC)) is not None


def test_deeper_dawn_is_earlier() -> None:
    def dawn(depression: str) -> datetime:
        slot = SolarSchedule(
            event="dawn",
            latitude=45.0,
            longitude=7.0,
            depression=depression,
            timezone=ZoneInfo("Europe/Rome"),
        ).next_after(datetime(2025, 1, 10, tzinfo=UTC))
        assert slot is not None
        return slot

    assert dawn("astronomical") < dawn("nautical") < dawn("civil")


TROMSO = {"latitude": 69.65, "longitude": 18.96, "timezone": ZoneInfo("Europe/Oslo")}
LONGYEARBYEN = {"latitude": 78.22, "longitude": 15.65, "timezone": ZoneInfo("Arctic/Longyearbyen")}


def test_polar_night_skips_dates_until_the_sun_returns() -> None:
    schedule = SolarSchedule(event="sunrise", **LONGYEARBYEN)  # type: ignore[arg-type]
    slot = schedule.next_after(datetime(2025, 11, 1, tzinfo=UTC))
    assert slot is not None and slot.date().isoformat().startswith("2026-02")


def test_polar_day_skips_sunset_in_tromso_midsummer() -> None:
    schedule = SolarSchedule(event="sunset", **TROMSO)  # type: ignore[arg-type]
    slot = schedule.next_after(datetime(2025, 6, 1, tzinfo=UTC))
    assert slot is not None and slot.astimezone(TROMSO["timezone"]).month == 7  # type: ignore[arg-type]


def test_an_event_that_never_happens_answers_none_without_raising() -> None:
    # At the north pole astronomical dusk ends twice a year at most; in any case the search
    # is bounded and answers None rather than looping.
    schedule = SolarSchedule(event="dusk", latitude=90.0, longitude=0.0, depression="astronomical")
    for month in (1, 4, 7, 10):
        result = schedule.next_after(datetime(2025, month, 1, tzinfo=UTC))
        assert result is None or result > datetime(2025, month, 1, tzinfo=UTC)


def test_noon_and_midnight_always_exist_even_in_polar_night() -> None:
    for event in ("noon", "midnight"):
        schedule = SolarSchedule(event=event, **LONGYEARBYEN)  # type: ignore[arg-type]
        slots = schedule.slots(datetime(2025, 12, 20, tzinfo=UTC), 3)
        assert len(slots) == 3
        assert all(
            timedelta(hours=23) < b - a < timedelta(hours=25) for a, b in itertools.pairwise(slots)
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"latitude": 95.0}, "latitude 95.0 is outside -90..90"),
        ({"longitude": -181.0}, "longitude -181.0 is outside -180..180"),
        ({"event": "noonish"}, "unknown solar event 'noonish'"),
        ({"depression": "deep"}, "unknown twilight 'deep'"),
    ],
)
def test_bad_solar_fields(fields: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"event": "sunset", "latitude": 10.0, "longitude": 10.0}
    base.update(fields)
    with pytest.raises(ScheduleError, match=message):
        SolarSchedule(**base)  # type: ignore[arg-type]
