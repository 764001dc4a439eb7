"""Solar schedules: sunrise, sunset, dawn, dusk, solar noon and midnight at a place.

Owns `SolarSchedule` and the sun's position (the NOAA solar calculator equations). Each local
date of the schedule's zone (midnight to midnight, DST-aware) fires at most once: at the first
time on that date the sun's elevation crosses the event's altitude in the event's direction
(or, for noon and midnight, at the first transit or anti-transit), found by our own search of
the elevation, truncated to whole seconds, then shifted by the offset. A date without the event
(polar day or night) is skipped; a search that finds nothing within about a year answers None.
Must never read the clock, import an astronomy library, or raise or loop on a polar date.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from z4j_core.scheduling.base import Schedule
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.instants import UTC, duration_seconds

SOLAR_EVENTS = ("sunrise", "sunset", "dawn", "dusk", "noon", "midnight")
DEPRESSIONS = {"civil": 6.0, "nautical": 12.0, "astronomical": 18.0}
# A year and a bit: every event that happens at a place happens within a year of any date.
SEARCH_DAYS = 370
# The sun's centre at sunrise and sunset: 34' of refraction plus 16' of solar radius.
SUNRISE_ALTITUDE = -0.833
# Dip of the horizon for an observer `h` metres up, in arc minutes per sqrt(metre).
DIP_ARCMIN_PER_SQRT_METRE = 2.076
# The elevation walk never steps less than this (seconds): two crossings closer than this
# (the sun grazing the altitude by well under 0.001 degree) may be missed, nothing else.
MIN_STEP = 10.0
# The crossing is refined until it is bracketed this tightly (seconds).
ROOT_WIDTH = 0.01
# The elevation changes by at most (15.04 deg/h * cos(latitude)) from the earth's turn plus
# 0.017 deg/h from the declination's drift; rounded up, so a step of |distance| / rate
# can never jump over a crossing.
TURN_RATE = 15.1 / 3600.0
DRIFT_RATE = 0.02 / 3600.0
# Declination changes by at most 0.41 deg a day; a local date spans at most 26 hours, and the
# declination's curvature within it is under 0.002 deg: this widens the endpoints' range.
DECLINATION_SLACK = 0.02
# Per-date answers: a year of dates for a few schedules.
CACHE_DATES = 4096

_RADIANS = math.pi / 180.0
_DEGREES = 180.0 / math.pi


def _declination_and_eot(seconds: float) -> tuple[float, float]:
    """The sun's declination (degrees) and the equation of time (minutes) at a Unix time."""
    century = (seconds / 86400.0 + 2440587.5 - 2451545.0) / 36525.0
    mean_long = (280.46646 + century * (36000.76983 + century * 0.0003032)) % 360.0
    anomaly = (357.52911 + century * (35999.05029 - 0.0001537 * century)) * _RADIANS
    eccentricity = 0.016708634 - century * (0.000042037 + 0.0000001267 * century)
    center = (
        math.sin(anomaly) * (1.914602 - century * (0.004817 + 0.000014 * century))
        + math.sin(2.0 * anomaly) * (0.019993 - 0.000101 * century)
        + math.sin(3.0 * anomaly) * 0.000289
    )
    omega = (125.04 - 1934.136 * century) * _RADIANS
    apparent_long = (mean_long + center - 0.00569 - 0.00478 * math.sin(omega)) * _RADIANS
    mean_obliquity = (
        23.0
        + (26.0 + (21.448 - century * (46.815 + century * (0.00059 - century * 0.001813))) / 60.0)
        / 60.0
    )
    obliquity = (mean_obliquity + 0.00256 * math.cos(omega)) * _RADIANS
    declination = math.asin(math.sin(obliquity) * math.sin(apparent_long)) * _DEGREES
    var_y = math.tan(obliquity / 2.0) ** 2
    mean_long_rad = mean_long * _RADIANS
    eot = (
        4.0
        * _DEGREES
        * (
            var_y * math.sin(2.0 * mean_long_rad)
            - 2.0 * eccentricity * math.sin(anomaly)
            + 4.0 * eccentricity * var_y * math.sin(anomaly) * math.cos(2.0 * mean_long_rad)
            - 0.5 * var_y * var_y * math.sin(4.0 * mean_long_rad)
            - 1.25 * eccentricity * eccentricity * math.sin(2.0 * anomaly)
        )
    )
    return declination, eot


def _hour_angle(seconds: float, longitude: float, eot: float) -> float:
    """The sun's hour angle in degrees (0 at transit), not normalised."""
    return (seconds % 86400.0) / 240.0 + eot / 4.0 + longitude - 180.0


def sun_elevation(latitude: float, longitude: float, seconds: float) -> float:
    """The sun's geometric elevation in degrees (no refraction) at a Unix time."""
    declination, eot = _declination_and_eot(seconds)
    lat, dec = latitude * _RADIANS, declination * _RADIANS
    hour_angle = _hour_angle(seconds, longitude, eot) * _RADIANS
    sine = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(hour_angle)
    return math.asin(max(-1.0, min(1.0, sine))) * _DEGREES


def _may_cross(latitude: float, altitude: float, start: float, end: float) -> bool:
    """False when the elevation provably stays on one side of `altitude` in [start, end]."""
    low_dec, high_dec = sorted((_declination_and_eot(start)[0], _declination_and_eot(end)[0]))
    low_dec -= DECLINATION_SLACK
    high_dec += DECLINATION_SLACK
    # Highest elevation for a declination: 90 - |lat - dec|; lowest: |lat + dec| - 90.
    if low_dec <= latitude <= high_dec:
        highest = 90.0
    else:
        highest = 90.0 - min(abs(latitude - low_dec), abs(latitude - high_dec))
    if low_dec <= -latitude <= high_dec:
        lowest = -90.0
    else:
        lowest = min(abs(latitude + low_dec), abs(latitude + high_dec)) - 90.0
    return lowest <= altitude <= highest


def _first_crossing(
    latitude: float, longitude: float, altitude: float, *, rising: bool, start: float, end: float
) -> float | None:
    """The first time in [start, end) the elevation crosses `altitude` upward (or downward)."""
    sign = 1.0 if rising else -1.0
    rate = TURN_RATE * abs(math.cos(latitude * _RADIANS)) + DRIFT_RATE

    def above(seconds: float) -> float:
        # Positive once the event has happened: above the altitude when rising, below it
        # when setting.
        return sign * (sun_elevation(latitude, longitude, seconds) - altitude)

    before_at, before = start, above(start)
    while before_at < end:
        # No crossing can hide in a step shorter than |distance| / the fastest possible rate.
        step = max(MIN_STEP, abs(before) / rate)
        after_at = min(end, before_at + step)
        after = above(after_at)
        if before < 0.0 <= after:
            root = _refine(above, before_at, before, after_at, after)
            return root if root < end else None
        before_at, before = after_at, after
    return None


def _refine(
    function: Callable[[float], float], low: float, low_value: float, high: float, high_value: float
) -> float:
    """A root of `function` in (low, high], given low_value < 0 <= high_value (Illinois)."""
    side = 0
    for _ in range(60):
        if high - low <= ROOT_WIDTH:
            break
        guess = (low * high_value - high * low_value) / (high_value - low_value)
        if not low < guess < high:
            guess = (low + high) / 2.0
        value = function(guess)
        if value < 0.0:
            low, low_value = guess, value
            if side == -1:
                high_value /= 2.0
            side = -1
        else:
            high, high_value = guess, value
            if side == 1:
                low_value /= 2.0
            side = 1
    return high


def _first_transit(longitude: float, hour_angle: float, start: float, end: float) -> float | None:
    """The first time in [start, end) the hour angle is `hour_angle` (mod 360 degrees)."""
    _, eot = _declination_and_eot(start)
    ahead = (hour_angle - _hour_angle(start, longitude, eot)) % 360.0
    seconds = start + ahead * 240.0
    # The hour angle turns at 1/240 deg/s give or take the equation of time's drift (at most
    # about 30 s a day), so each round shrinks the miss some thousandfold.
    for _ in range(4):
        _, eot = _declination_and_eot(seconds)
        miss = (_hour_angle(seconds, longitude, eot) - hour_angle + 180.0) % 360.0 - 180.0
        seconds -= miss * 240.0
    return seconds if start <= seconds < end else None


def _date_start(day: date, zone: ZoneInfo) -> int:
    """The first instant of a local date (a midnight inside a DST gap starts at the gap's end)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


@lru_cache(maxsize=CACHE_DATES)
def _event_seconds(
    event: str,
    altitude: float,
    latitude: float,
    longitude: float,
    *,
    zone: ZoneInfo,
    ordinal: int,
) -> int | None:
    """The event on a local date (proleptic ordinal) as whole Unix seconds, or None."""
    day = date.fromordinal(ordinal)
    try:
        start = _date_start(day, zone)
        end = _date_start(day + timedelta(days=1), zone)
    except (OverflowError, ValueError):
        return None
    if event in ("noon", "midnight"):
        found = _first_transit(longitude, 0.0 if event == "noon" else 180.0, start, end)
    else:
        if not _may_cross(latitude, altitude, start, end):
            return None
        rising = event in ("sunrise", "dawn")
        found = _first_crossing(latitude, longitude, altitude, rising=rising, start=start, end=end)
    # Whole seconds: slots, and so fire ids, must not depend on float noise.
    return None if found is None else math.floor(found)


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

    @property
    def altitude(self) -> float:
        """The sun's elevation (degrees) that marks the event; unused by noon and midnight."""
        if self.event in ("dawn", "dusk"):
            return -DEPRESSIONS[self.depression]
        # An observer above the ground sees past the geometric horizon: the sun rises earlier.
        dip = DIP_ARCMIN_PER_SQRT_METRE * math.sqrt(max(0.0, float(self.elevation))) / 60.0
        return SUNRISE_ALTITUDE - dip

    def _seconds_on(self, day: date) -> int | None:
        return _event_seconds(
            self.event,
            self.altitude,
            float(self.latitude),
            float(self.longitude),
            zone=self.timezone,
            ordinal=day.toordinal(),
        )

    def event_on(self, day: date) -> datetime | None:
        """The (unshifted) event on a local date, in the zone, or None when it has none."""
        found = self._seconds_on(day)
        if found is None:
            return None
        return datetime.fromtimestamp(found, tz=self.timezone)

    def _next_slot_after(self, after: datetime) -> datetime | None:
        # A slot is an event plus the offset, and local dates are consecutive spans of time, so
        # the first slot after `after` is the first event after `after - offset`: slots come
        # out strictly increasing whatever the offset.
        try:
            target = after - self.offset
            day = target.astimezone(self.timezone).date() - timedelta(days=1)
        except OverflowError:
            return None
        for _ in range(SEARCH_DAYS + 2):
            found = self._seconds_on(day)
            if found is not None:
                # In UTC: adding to a ZoneInfo datetime would move the wall clock instead.
                slot = datetime.fromtimestamp(found, tz=UTC) + self.offset
                if slot > after:
                    return slot
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
