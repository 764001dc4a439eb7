"""Backfill slots: every slot in a closed range, oldest first, bounded (a table)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from z4j_core.scheduling import ScheduleError, backfill_slots, schedule_from_dict

UTC = timezone.utc


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "start", "end", "wanted"),
    [
        # Both ends are included.
        ({"kind": "cron", "expression": "0 * * * *"}, "2026-03-01T01:00", "2026-03-01T03:00",
         ["2026-03-01T01:00", "2026-03-01T02:00", "2026-03-01T03:00"]),
        # A range between two slots holds none.
        ({"kind": "cron", "expression": "0 * * * *"}, "2026-03-01T01:01", "2026-03-01T01:59",
         []),
        # DST fall-back in New York: the fixed-hour slot fires once for its wall time.
        ({"kind": "cron", "expression": "30 1 * * *", "timezone": "America/New_York"},
         "2026-11-01T00:00", "2026-11-02T00:00", ["2026-11-01T05:30"]),
        # An interval from its anchor; slots before the schedule's start are not backfilled.
        ({"kind": "interval", "every": "10m", "anchor": "2026-03-01T00:05:00Z",
          "start": "2026-03-01T00:20:00Z"}, "2026-03-01T00:00", "2026-03-01T00:40",
         ["2026-03-01T00:25", "2026-03-01T00:35"]),
    ],
)  # fmt: skip
def test_backfill_slots(spec: dict[str, object], start: str, end: str, wanted: list[str]) -> None:
    schedule = schedule_from_dict(spec)
    assert backfill_slots(schedule, _at(start), _at(end)) == [_at(w) for w in wanted]


def test_a_range_over_the_limit_or_backwards_is_refused() -> None:
    schedule = schedule_from_dict({"kind": "interval", "every": "1s"})
    with pytest.raises(ScheduleError, match="holds more than 100 slots"):
        backfill_slots(schedule, _at("2026-03-01T00:00"), _at("2026-03-01T01:00"), limit=100)
    assert len(backfill_slots(schedule, _at("2026-03-01T00:00"), _at("2026-03-01T00:01:39"),
                              limit=100)) == 100  # fmt: skip
    with pytest.raises(ScheduleError, match=r"ends .* before it starts"):
        backfill_slots(schedule, _at("2026-03-02T00:00"), _at("2026-03-01T00:00"))
