"""Aware instants: the checks and conversions every schedule kind shares.

Owns the rule that the scheduler core only ever sees aware datetimes (a naive one is refused,
never guessed at), ISO 8601 parsing that accepts a trailing `Z` on Python 3.10, and
duration parsing (`90s`, `15m`, `2h`, `1d`, `1h30m`, or seconds). Must never read the clock.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

from z4j_core.scheduling.describe import describe_duration
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.limits import MAX_INSTANT, MIN_INSTANT, describe_instant_range

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|ms|m|s)", re.ASCII)
_DURATION_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:w|d|h|ms|m|s)\s*)+$", re.ASCII)
# Past this no schedule field is meaningful, and a timedelta overflows near 8.6e13 s.
_LONGEST_SECONDS = 1000 * 366 * 86400.0
_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def require_aware(value: datetime, what: str) -> datetime:
    """Return `value` if it is an aware datetime; refuse a naive one with a clear error."""
    if not isinstance(value, datetime):
        raise ScheduleError(f"{what} must be a datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(
            f"{what} {value.isoformat()} has no time zone: give an aware datetime "
            "(for example 2025-01-01T09:00:00+01:00 or ...Z)"
        )
    return value


def parse_instant(text: str, what: str = "instant") -> datetime:
    """Parse an ISO 8601 instant with an offset or `Z`; a naive one is refused."""
    if not isinstance(text, str):
        raise ScheduleError(f"{what} must be an ISO 8601 string, got {text!r}")
    cleaned = text.strip()
    # datetime.fromisoformat accepts "Z" only from Python 3.11.
    if cleaned[-1:] in ("Z", "z"):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ScheduleError(
            f"{what} {text!r} is not an ISO 8601 instant (for example 2025-11-01T12:00:00Z)"
        ) from None
    if value.tzinfo is None:
        raise ScheduleError(
            f"{what} {text!r} has no time zone: add an offset or Z, e.g. {text.strip()}Z"
        )
    return check_instant(value, what, text)


def check_instant(value: datetime, what: str, shown: str | None = None) -> datetime:
    """Return an aware `value` if it lies within the instants a schedule may use."""
    require_aware(value, what)
    try:
        inside = MIN_INSTANT <= value.astimezone(UTC) < MAX_INSTANT
    except OverflowError:  # e.g. 9999-12-31T23:59:59-12:00 is past datetime.max in UTC
        inside = False
    if not inside:
        raise ScheduleError(
            f"{what} {shown if shown is not None else value.isoformat()!r} is out of range: "
            f"give an instant from {describe_instant_range()}"
        )
    return value


def format_instant(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, the form the core writes everywhere."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_duration(
    value: object,
    what: str,
    *,
    allow_zero: bool = False,
    minimum: timedelta | None = None,
    maximum: timedelta | None = None,
) -> timedelta:
    """A duration from `90s`/`15m`/`2h`/`1d`/`1w`/`1h30m`, a number of seconds, or a timedelta,
    refused outside [`minimum`, `maximum`] (and always beyond what a timedelta holds)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ScheduleError(f"{what} must be a duration like 90s or 15m, got {value!r}")
    elif isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ScheduleError(f"{what} must be a finite number of seconds, got {value!r}")
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif text and _DURATION_WHOLE.match(text):
            seconds = sum(
                float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text)
            )
        else:
            raise ScheduleError(
                f"{what} {value!r} is not a duration: use a number of seconds or units "
                "w, d, h, m, s (for example 90s, 15m, 2h, 1d, 1h30m)"
            )
    else:
        raise ScheduleError(f"{what} must be a duration like 90s or 15m, got {value!r}")
    if seconds < 0:
        raise ScheduleError(f"{what} {value!r} must not be negative")
    if seconds == 0 and not allow_zero:
        raise ScheduleError(f"{what} {value!r} is empty: it must be longer than zero")
    if seconds > _LONGEST_SECONDS or (maximum is not None and seconds > maximum.total_seconds()):
        most = maximum if maximum is not None else timedelta(seconds=_LONGEST_SECONDS)
        raise ScheduleError(f"{what} {value!r} is too long: at most {describe_duration(most)}")
    if minimum is not None and seconds < minimum.total_seconds() and (seconds or not allow_zero):
        raise ScheduleError(f"{what} {value!r} is too short: at least {describe_duration(minimum)}")
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


def duration_seconds(value: timedelta) -> int | float:
    """Seconds as an int when whole, for stable JSON."""
    seconds = value.total_seconds()
    return int(seconds) if seconds == int(seconds) else seconds
