"""Interval schedules: a fixed rate in absolute time from an anchor instant.

Owns `IntervalSchedule`. Slots are anchor + k * every for whole k >= 0; DST never moves them
because they are computed on UTC instants, never on wall clocks. Must never read the clock:
without an anchor the slots are aligned to `start`, or else to the Unix epoch, so every leader
computes the same slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from z4j_core.scheduling.base import Schedule
from z4j_core.scheduling.describe import describe_duration
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.instants import EPOCH, UTC, check_instant, duration_seconds
from z4j_core.scheduling.limits import MAX_INTERVAL, MIN_INTERVAL

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class IntervalSchedule(Schedule):
    """Every `every` from `anchor` (default: `start`, else 1970-01-01T00:00Z)."""

    kind = "interval"

    every: timedelta
    anchor: datetime | None = None

    def __post_init__(self) -> None:
        Schedule._check_common(self)
        if not isinstance(self.every, timedelta):
            raise ScheduleError(f"interval must be a duration, got {self.every!r}")
        if not MIN_INTERVAL <= self.every <= MAX_INTERVAL:
            raise ScheduleError(
                f"interval {describe_duration(self.every)} is out of range: give "
                f"{describe_duration(MIN_INTERVAL)} to {describe_duration(MAX_INTERVAL)}"
            )
        if self.anchor is not None:
            check_instant(self.anchor, "anchor")

    @property
    def effective_anchor(self) -> datetime:
        if self.anchor is not None:
            return self.anchor
        return self.start if self.start is not None else EPOCH

    def _next_slot_after(self, after: datetime) -> datetime | None:
        # In UTC: Python adds a timedelta to a ZoneInfo datetime on the wall clock.
        anchor = self.effective_anchor.astimezone(UTC)
        if after < anchor:
            return anchor
        # Exact integer arithmetic in microseconds: no float drift over long runs.
        elapsed = (after - anchor) // _MICROSECOND
        step = self.every // _MICROSECOND
        count = elapsed // step + 1
        try:
            slot = anchor + timedelta(microseconds=count * step)
        except OverflowError:
            return None
        return slot

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "every": duration_seconds(self.every),
            "anchor": None if self.anchor is None else self.anchor.isoformat(),
            **self._common_dict(),
        }

    def describe(self) -> str:
        from z4j_core.scheduling.describe import describe_duration
        from z4j_core.scheduling.instants import format_instant

        return (
            f"every {describe_duration(self.every)} from {format_instant(self.effective_anchor)}"
            f", {self.timezone.key}"
        )
