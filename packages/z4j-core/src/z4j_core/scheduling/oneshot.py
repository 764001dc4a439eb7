"""One-shot schedules: a single aware instant.

Owns `OneShotSchedule`. It fires once, at `at`; a naive `at` is refused. Must never read the
clock: whether the instant is past is the caller's question, asked with `next_after(now)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from z4j_core.scheduling.base import Schedule
from z4j_core.scheduling.instants import UTC, check_instant, format_instant


@dataclass(frozen=True, kw_only=True, slots=True)
class OneShotSchedule(Schedule):
    """Fires once, at `at`."""

    kind = "oneshot"

    at: datetime

    def __post_init__(self) -> None:
        Schedule._check_common(self)
        check_instant(self.at, "at")

    def _next_slot_after(self, after: datetime) -> datetime | None:
        at = self.at.astimezone(UTC)
        return at if at > after else None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at.isoformat(), **self._common_dict()}

    def describe(self) -> str:
        local = self.at.astimezone(self.timezone)
        return (
            f"once at {local.strftime('%Y-%m-%d %H:%M:%S')} {self.timezone.key} "
            f"({format_instant(self.at)})"
        )
