"""An independent search for solar events, for the solar tests and bench/bench_solar.py.

Walks each local date on a 5-minute grid of astral's elevation and azimuth (its own
implementation of the NOAA equations, refraction off), brackets every crossing of an altitude,
and bisects it to the whole second. Noon and midnight are where the sun crosses the meridian
(its azimuth passes from east to west, or west to east): solar transit, as in NOAA's
calculator. (The highest elevation drifts from transit by up to about 75 s at 78 N, because the
declination moves during the day; transit is what "solar noon" means.) Nothing here uses the
code under test: only the rule itself (a local date runs from its midnight to the next, in
zoneinfo's reading) is written out again.

Accuracy of the walk: between two grid points the elevation can bend by at most
omega^2 / cos(18 deg) = 0.00115 deg/min^2 (omega = 15.04 deg/h, for altitudes down to -18 deg),
so the grid's extreme is within 0.00115 * 5^2 / 8 = 0.0036 deg of the date's true extreme, and
a pair of crossings hidden between two grid points lies within 0.0036 deg of that extreme.
`MARGIN` (0.01 deg) covers both; the code under test misses only pairs less than 10 s apart
(under 0.00001 deg). Dates whose extreme lies within `MARGIN` of the altitude may therefore
disagree on whether the event happens, and are the only ones allowed to.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import zenith_and_azimuth

UTC = timezone.utc
GRID = 300  # seconds
MARGIN = 0.01  # degrees

# (name, latitude, longitude, zone), from the equator to 78 N and two southern places.
CITIES = (
    ("Quito", -0.18, -78.47, "America/Guayaquil"),
    ("Singapore", 1.35, 103.82, "Asia/Singapore"),
    ("Dhaka", 23.81, 90.41, "Asia/Dhaka"),
    ("Cairo", 30.04, 31.24, "Africa/Cairo"),
    ("New York", 40.71, -74.01, "America/New_York"),
    ("Berlin", 52.52, 13.405, "Europe/Berlin"),
    ("Stockholm", 59.33, 18.07, "Europe/Stockholm"),
    ("Reykjavik", 64.15, -21.94, "Atlantic/Reykjavik"),
    ("Tromso", 69.65, 18.96, "Europe/Oslo"),
    ("Longyearbyen", 78.22, 15.65, "Arctic/Longyearbyen"),
    ("Sydney", -33.87, 151.21, "Australia/Sydney"),
    ("Ushuaia", -54.80, -68.30, "America/Argentina/Ushuaia"),
    ("Kiritimati", 1.87, -157.36, "Pacific/Kiritimati"),
    ("Pago Pago", -14.28, -170.70, "Pacific/Pago_Pago"),
)

# (event, depression, altitude, rising): the altitude events the comparison covers.
ALTITUDE_EVENTS = (
    ("sunrise", "civil", -0.833, True),
    ("sunset", "civil", -0.833, False),
    ("dawn", "civil", -6.0, True),
    ("dawn", "nautical", -12.0, True),
    ("dusk", "civil", -6.0, False),
    ("dusk", "astronomical", -18.0, False),
)


@dataclass
class ReferenceDay:
    """One local date as the walk saw it."""

    start: int
    end: int
    highest: float
    lowest: float
    samples: list[tuple[int, float, float]] = field(repr=False)

    def near_extreme(self, altitude: float) -> bool:
        """The altitude is within MARGIN of the date's extreme: existence may differ."""
        return min(abs(altitude - self.highest), abs(altitude - self.lowest)) < MARGIN


class ReferenceSun:
    """astral's elevation at one place, walked date by date."""

    def __init__(self, latitude: float, longitude: float, zone: ZoneInfo) -> None:
        self.observer = Observer(latitude=latitude, longitude=longitude, elevation=0.0)
        self.zone = zone

    def position(self, seconds: int) -> tuple[float, float]:
        """(elevation, azimuth) in degrees; astral reads whole seconds only, and refraction
        is in the altitudes instead."""
        instant = datetime.fromtimestamp(seconds, UTC)
        zenith, azimuth = zenith_and_azimuth(self.observer, instant, with_refraction=False)
        return 90.0 - float(zenith), float(azimuth)

    def day(self, day: date) -> ReferenceDay:
        following = day + timedelta(days=1)
        start = int(datetime(day.year, day.month, day.day, tzinfo=self.zone).timestamp())
        end = int(
            datetime(following.year, following.month, following.day, tzinfo=self.zone).timestamp()
        )
        samples = [(point, *self.position(point)) for point in (*range(start, end, GRID), end)]
        values = [value for _, value, _ in samples]
        return ReferenceDay(start, end, max(values), min(values), samples)

    def _first(
        self, day: ReferenceDay, happened: Callable[[int, float, float], bool]
    ) -> int | None:
        """The first whole second of the date at which `happened` turns true, or None."""
        for low, high in itertools.pairwise(day.samples):
            if not happened(*low) and happened(*high):
                before, after = low[0], high[0]
                while after - before > 1:
                    middle = (before + after) // 2
                    if happened(middle, *self.position(middle)):
                        after = middle
                    else:
                        before = middle
                return after if after < day.end else None
        return None

    def crossing(self, day: ReferenceDay, altitude: float, rising: bool) -> int | None:
        """The first whole second at or after the date's first crossing, or None."""
        if rising:
            return self._first(day, lambda _, elevation, __: elevation >= altitude)
        return self._first(day, lambda _, elevation, __: elevation <= altitude)

    def transit(self, day: ReferenceDay, upper: bool) -> int | None:
        """The first whole second after the sun crosses the meridian westward (upper) or
        eastward (lower), or None."""
        if upper:
            return self._first(day, lambda _, __, azimuth: not 0.0 < azimuth < 180.0)
        return self._first(day, lambda _, __, azimuth: 0.0 < azimuth < 180.0)


def reference_year(
    latitude: float, longitude: float, zone: ZoneInfo, year: int
) -> dict[str, dict[date, tuple[int | None, bool]]]:
    """Per event key ("sunrise", "dawn/nautical", "noon", ...), per local date of `year`:
    (the reference's whole second or None, whether the date is near an extreme)."""
    sun = ReferenceSun(latitude, longitude, zone)
    result: dict[str, dict[date, tuple[int | None, bool]]] = {}
    day = date(year, 1, 1)
    while day.year == year:
        walked = sun.day(day)
        for event, depression, altitude, rising in ALTITUDE_EVENTS:
            key = event_key(event, depression)
            found = sun.crossing(walked, altitude, rising)
            result.setdefault(key, {})[day] = (found, walked.near_extreme(altitude))
        for event, upper in (("noon", True), ("midnight", False)):
            result.setdefault(event, {})[day] = (sun.transit(walked, upper), False)
        day += timedelta(days=1)
    return result


def event_key(event: str, depression: str) -> str:
    return f"{event}/{depression}" if event in ("dawn", "dusk") else event
