"""Every value a schedule takes is bounded, refused by name when it is not; one schedule whose
arithmetic raises never stalls the due queue; host-dependent zone names are refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from z4j_core.scheduling import (
    DueQueue,
    IntervalSchedule,
    OneShotSchedule,
    ScheduleError,
    check_fires_within,
    parse_instant,
    resolve_zone,
    schedule_from_dict,
)
from z4j_core.scheduling.limits import MAX_INSTANT

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"kind": "oneshot", "at": "9999-12-31T23:59:59Z", "jitter": "1h"}, "at"),
        ({"kind": "oneshot", "at": "1899-12-31T23:59:59Z"}, "at"),
        ({"kind": "interval", "every": 0.000001}, "interval"),
        ({"kind": "interval", "every": "500ms"}, "interval"),
        ({"kind": "interval", "every": 1e300}, "interval"),
        ({"kind": "interval", "every": "200000d"}, "interval"),
        ({"kind": "interval", "every": "10s", "jitter": 1e20}, "jitter"),
        ({"kind": "interval", "every": "10s", "jitter": "2d"}, "jitter"),
        ({"kind": "interval", "every": "10s", "misfire_grace": "99999999999d"}, "misfire_grace"),
        ({"kind": "interval", "every": "10s", "misfire_grace": "8d"}, "misfire_grace"),
        ({"kind": "interval", "every": "10s", "start": "9999-12-31T23:59:59-12:00"}, "start"),
        ({"kind": "interval", "every": "10s", "end": "0001-01-01T00:00:00+14:00"}, "end"),
        ({"kind": "interval", "every": "10s", "anchor": "9999-06-01T00:00:00Z"}, "anchor"),
        ({"kind": "interval", "every": "10s", "max_catch_up": 10**12}, "max_catch_up"),
        ({"kind": "interval", "every": "10s", "max_catch_up": 0}, "max_catch_up"),
        ({"kind": "interval", "every": "10s", "timezone": ""}, "time zone"),
        ({"kind": "interval", "every": "10s", "timezone": "localtime"}, "localtime"),
        (
            {"kind": "solar", "event": "sunset", "latitude": 0, "longitude": 0, "offset": "-13h"},
            "offset",
        ),
        (
            {"kind": "solar", "event": "sunset", "latitude": float("nan"), "longitude": 0},
            "latitude",
        ),
    ],
)
def test_out_of_range_values_are_refused_by_name(data: dict[str, Any], named: str) -> None:
    with pytest.raises(ScheduleError) as refused:
        schedule_from_dict(data)
    message = str(refused.value)
    assert named in message and "\n" not in message, message


def test_bounds_are_inclusive_where_they_should_be() -> None:
    assert IntervalSchedule(every=timedelta(seconds=1)).next_after(T0) == T0 + timedelta(seconds=1)
    schedule_from_dict({"kind": "interval", "every": "1s", "jitter": "1d", "misfire_grace": "7d"})
    schedule_from_dict({"kind": "oneshot", "at": "9998-12-31T23:59:59Z", "jitter": "1d"})


def test_no_slot_at_or_past_the_last_instant_and_no_overflow_near_it() -> None:
    schedule = IntervalSchedule(every=timedelta(days=365), anchor=datetime(9000, 1, 1, tzinfo=UTC))
    slots = schedule.slots(datetime(9990, 1, 1, tzinfo=UTC), 100)
    assert slots and all(slot < MAX_INSTANT for slot in slots) and len(slots) < 10
    for slot in slots:
        schedule.due_at("x", slot)
    last = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-12)))
    assert schedule.next_after(last) is None


@pytest.mark.parametrize(
    "text", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "1700-01-01T00:00:00Z"]
)
def test_instants_out_of_range_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(ScheduleError, match=r"--after .* is out of range"):
        parse_instant(text, "--after")


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory", "", " ", "right/UTC",
                                  "posix/Europe/Berlin", "/etc/localtime", "../UTC"])  # fmt: skip
def test_host_dependent_zone_names_are_refused(name: str) -> None:
    with pytest.raises(ScheduleError):
        resolve_zone(name)


def test_a_schedule_that_fires_within_the_horizon_passes_and_one_that_does_not_is_named() -> None:
    check_fires_within(IntervalSchedule(every=timedelta(hours=1)), T0)
    with pytest.raises(ScheduleError, match="within 28 years after 2025-01-01T00:00:00Z"):
        check_fires_within(OneShotSchedule(at=datetime(2060, 1, 1, tzinfo=UTC)), T0)


class _Raising(IntervalSchedule):
    """An interval that raises when asked for a slot after `fail_after` (a bug, an overflow)."""

    fail_after = datetime(2025, 1, 1, 0, 0, 3, tzinfo=UTC)

    def _next_slot_after(self, after: datetime) -> datetime | None:
        if after >= self.fail_after:
            raise OverflowError("date value out of range")
        return IntervalSchedule._next_slot_after(self, after)


def test_one_schedule_that_raises_never_stalls_the_others() -> None:
    queue = DueQueue()
    every = timedelta(seconds=1)
    queue.add("bad", _Raising(every=every), T0)
    for n in range(3):
        queue.add(f"ok{n}", IntervalSchedule(every=every), T0)
    popped: dict[str, list[Any]] = {}
    errors: dict[str, str] = {}
    for second in range(1, 8):
        for due in queue.pop_due(T0 + timedelta(seconds=second)):
            popped.setdefault(due.schedule_id, []).extend(due.slots)
            if due.error is not None:
                errors[due.schedule_id] = due.error
    # The bad schedule fired the slots it could compute, then was taken out of the order once.
    assert errors == {"bad": "OverflowError: date value out of range"}
    assert popped["bad"] == [T0 + timedelta(seconds=s) for s in (1, 2, 3)]
    assert queue.next_slot("bad") is None
    for n in range(3):
        assert popped[f"ok{n}"] == [T0 + timedelta(seconds=s) for s in range(1, 8)]
    # `update` puts it back (the leader's answer to an edit).
    queue.update("bad", IntervalSchedule(every=every))
    assert queue.next_slot("bad") == T0 + timedelta(seconds=4)


def test_a_catch_up_that_raises_is_reported_and_the_others_still_pop() -> None:
    queue = DueQueue()
    every = timedelta(seconds=1)
    queue.add("bad", _Raising(every=every, catch_up="all"), T0)
    queue.add("ok", IntervalSchedule(every=every, catch_up="all"), T0)
    dues = {d.schedule_id: d for d in queue.pop_due(T0 + timedelta(minutes=10))}
    assert dues["bad"].error and dues["bad"].slots == ()
    assert len(dues["ok"].slots) == 100 and dues["ok"].error is None
