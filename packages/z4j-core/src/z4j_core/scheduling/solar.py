"""Solar schedules: sunrise, sunset, dawn, dusk, solar noon and midnight at a place.

Owns `SolarSchedule`. Events are computed with astral for each local date of the schedule's
zone, then shifted by the offset. A date without the event (polar day or night) is skipped;
a search that finds nothing within about a year answers None. Must never read the clock
(astral defaults to today when no date is given, so a date is always passed) and never
raise or loop on a polar date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from z4j_core.scheduling.base import Schedule
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.instants import UTC, duration_seconds

SOLAR_EVENTS = ("sunrise", "sunset", "dawn", "dusk", "noon", "midnight")
DEPRESSIONS = {"civil": 6.0, "nautical": 12.0, "astronomical": 18.0}
# A year and a bit: every event that happens at a place happens within a year of any date.
SEARCH_DAYS = 370


@dataclass(frozen=True, kw_only=True, slots=True)
class SolarSchedule(Schedule):
    """`event` at (`latitude`, `longitude`, `elevation` m), shifted by `offset`.

    `depression` (civil, nautical, astronomical) applies to dawn and dusk only.
    """

    kind = "solar"

    event: str
    latitude: float
    longitude: float
    elevation: float = 0.0
    depression: str = "civil"
    offset: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        Schedule._check_common(self)
        if self.event not in SOLAR_EVENTS:
            raise ScheduleError(
                f"unknown solar event {self.event!r} (use {', '.join(SOLAR_EVENTS)})"
            )
        for name, value, limit in (
            ("latitude", self.latitude, 90),
            ("longitude", self.longitude, 180),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ScheduleError(f"{name} must be a number, got {value!r}")
            if not -limit <= value <= limit:
                raise ScheduleError(f"{name} {value} is outside -{limit}..{limit}")
        if isinstance(self.elevation, bool) or not isinstance(self.elevation, (int, float)):
            raise ScheduleError(f"elevation must be a number of metres, got {self.elevation!r}")
        if not -500 <= self.elevation <= 20000:
            raise ScheduleError(f"elevation {self.elevation} m is outside -500..20000")
        if self.depression not in DEPRESSIONS:
            raise ScheduleError(
                f"unknown twilight {self.depression!r} (use civil, nautical or astronomical)"
            )
        if not isinstance(self.offset, timedelta) or abs(self.offset) > timedelta(hours=12):
            raise ScheduleError(f"offset {self.offset!r} must be a duration within 12 hours")

    def event_on(self, day: date) -> datetime | None:
        """The (unshifted) event on a local date, or None when that date has none."""
        from astral import Observer, sun

        observer = Observer(
            latitude=float(self.latitude),
            longitude=float(self.longitude),
            elevation=float(self.elevation),
        )
        zone = self.timezone
        try:
            if self.event == "sunrise":
                found: datetime = sun.sunrise(observer, day, zone)
            elif self.event == "sunset":
                found = sun.sunset(observer, day, zone)
            elif self.event == "dawn":
                found = sun.dawn(observer, day, DEPRESSIONS[self.depression], zone)
            elif self.event == "dusk":
                found = sun.dusk(observer, day, DEPRESSIONS[self.depression], zone)
            elif self.event == "noon":
                found = sun.noon(observer, day, zone)
            else:
                found = sun.midnight(observer, day, zone)
        except (ValueError, ArithmeticError):
            # astral says "sun never reaches ..." for polar day and night.
            return None
        # Whole seconds: slots, and so fire ids, must not depend on float noise.
        return found.replace(microsecond=0)

    def _next_slot_after(self, after: datetime) -> datetime | None:
        local_day = after.astimezone(self.timezone).date()
        # Start a day early: a negative offset or solar midnight can land on the day before.
        day = local_day - timedelta(days=1)
        previous: datetime | None = None
        for _ in range(SEARCH_DAYS + 2):
            found = self.event_on(day)
            if found is not None:
                # In UTC: adding to a ZoneInfo datetime would move the wall clock instead.
                slot = found.astimezone(UTC) + self.offset
                # Two dates can name one event (astral searches a neighbouring day); keep
                # the sequence strictly increasing.
                if slot > after and (previous is None or slot > previous):
                    return slot
                previous = slot
            try:
                day += timedelta(days=1)
            except OverflowError:
                return None
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "event": self.event,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "elevation": self.elevation,
            "depression": self.depression,
            "offset": duration_seconds(self.offset),
            **self._common_dict(),
        }

    def describe(self) -> str:
        from z4j_core.scheduling.describe import describe_solar

        return describe_solar(self)
