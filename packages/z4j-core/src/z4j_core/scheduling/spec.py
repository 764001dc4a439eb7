"""Schedules from plain data (JSON) and back: what the brain stores and the API accepts.

Owns `schedule_from_dict`: it checks every field, names the bad value in its error, and
refuses unknown fields (a typo must not silently become a default). `Schedule.to_dict` is its
inverse. Must never read the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from z4j_core.scheduling.base import CATCH_UP_POLICIES, Schedule
from z4j_core.scheduling.cron import CronSchedule
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.instants import check_instant, parse_duration, parse_instant
from z4j_core.scheduling.interval import IntervalSchedule
from z4j_core.scheduling.limits import (
    MAX_INTERVAL,
    MAX_JITTER,
    MAX_MISFIRE_GRACE,
    MAX_SOLAR_OFFSET,
    MIN_INTERVAL,
)
from z4j_core.scheduling.oneshot import OneShotSchedule
from z4j_core.scheduling.solar import SolarSchedule
from z4j_core.scheduling.zones import resolve_zone

KINDS: dict[str, type[Schedule]] = {
    "cron": CronSchedule,
    "interval": IntervalSchedule,
    "oneshot": OneShotSchedule,
    "solar": SolarSchedule,
}
COMMON_FIELDS = (
    "kind",
    "timezone",
    "start",
    "end",
    "jitter",
    "catch_up",
    "misfire_grace",
    "max_catch_up",
)
KIND_FIELDS = {
    "cron": ("expression", "day_and"),
    "interval": ("every", "anchor"),
    "oneshot": ("at",),
    "solar": ("event", "latitude", "longitude", "elevation", "depression", "offset"),
}
REQUIRED_FIELDS = {
    "cron": ("expression",),
    "interval": ("every",),
    "oneshot": ("at",),
    "solar": ("event", "latitude", "longitude"),
}


def _instant(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return check_instant(value, what)
    if not isinstance(value, str):
        raise ScheduleError(f"{what} must be an ISO 8601 string, got {value!r}")
    return parse_instant(value, what)


def _signed_duration(value: object, what: str, maximum: timedelta) -> timedelta:
    if isinstance(value, str) and value.strip().startswith("-"):
        return -parse_duration(value.strip()[1:], what, allow_zero=True, maximum=maximum)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return -parse_duration(-value, what, allow_zero=True, maximum=maximum)
    return parse_duration(value, what, allow_zero=True, maximum=maximum)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ScheduleError(f"{what} must be a number, got {value!r}")
    return float(value)


def schedule_from_dict(data: Mapping[str, Any]) -> Schedule:
    """A schedule from plain data, e.g. {"kind": "cron", "expression": "30 1 * * *",
    "timezone": "America/New_York"}; raises ScheduleError naming the bad value."""
    if not isinstance(data, Mapping):
        raise ScheduleError(f"a schedule must be an object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ScheduleError(f"unknown schedule kind {kind!r} (use {', '.join(KINDS)})")
    allowed = set(COMMON_FIELDS) | set(KIND_FIELDS[kind])
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ScheduleError(
            f"unknown field {unknown[0]!r} for a {kind} schedule "
            f"(fields: {', '.join(sorted(allowed - {'kind'}))})"
        )
    for name in REQUIRED_FIELDS[kind]:
        if data.get(name) is None:
            raise ScheduleError(f"a {kind} schedule needs {name!r}")

    zone = data.get("timezone")
    common: dict[str, Any] = {"timezone": resolve_zone("UTC" if zone is None else zone)}
    common["start"] = _instant(data.get("start"), "start")
    common["end"] = _instant(data.get("end"), "end")
    if data.get("jitter") is not None:
        common["jitter"] = parse_duration(
            data["jitter"], "jitter", allow_zero=True, maximum=MAX_JITTER
        )
    if data.get("misfire_grace") is not None:
        common["misfire_grace"] = parse_duration(
            data["misfire_grace"], "misfire_grace", allow_zero=True, maximum=MAX_MISFIRE_GRACE
        )
    if data.get("catch_up") is not None:
        if data["catch_up"] not in CATCH_UP_POLICIES:
            raise ScheduleError(
                f"unknown catch-up policy {data['catch_up']!r} (use skip, one or all)"
            )
        common["catch_up"] = data["catch_up"]
    if data.get("max_catch_up") is not None:
        common["max_catch_up"] = data["max_catch_up"]

    if kind == "cron":
        expression = data["expression"]
        if not isinstance(expression, str):
            raise ScheduleError(f"expression must be a string, got {expression!r}")
        return CronSchedule(expression=expression, day_and=data.get("day_and") or False, **common)
    if kind == "interval":
        return IntervalSchedule(
            every=parse_duration(
                data["every"], "interval", minimum=MIN_INTERVAL, maximum=MAX_INTERVAL
            ),
            anchor=_instant(data.get("anchor"), "anchor"),
            **common,
        )
    if kind == "oneshot":
        at = _instant(data["at"], "at")
        assert at is not None
        return OneShotSchedule(at=at, **common)
    return SolarSchedule(
        event=str(data["event"]).lower() if isinstance(data["event"], str) else data["event"],
        latitude=_number(data["latitude"], "latitude"),
        longitude=_number(data["longitude"], "longitude"),
        elevation=_number(data.get("elevation") or 0.0, "elevation"),
        depression=data.get("depression") or "civil",
        offset=_signed_duration(data.get("offset") or 0, "offset", MAX_SOLAR_OFFSET),
        **common,
    )
