"""The scheduler core: exact fire times for cron, interval, one-shot and solar schedules.

Pure: no I/O (beyond zoneinfo loading its database) and no clock reads; time is always an
argument and every datetime must be aware (a naive one raises `ScheduleError`). Cron parsing and
the sun's position are our own: no cron or astronomy library is imported. croniter is used
only where a native scheduler that itself uses croniter is emulated (`z4j_rq.schedules`, the
conformance suite's oracle). `z4j_core` does not import this package, so an agent never loads
it.

Public API, as the brain uses it:

Schedules are immutable values sharing these keyword fields: `timezone` (ZoneInfo, from
`resolve_zone(name)`), `start`/`end` (inclusive bounds), `jitter` (timedelta), `catch_up`
("skip" | "one" | "all"), `misfire_grace` (timedelta), `max_catch_up` (int).

- `CronSchedule(expression=..., day_and=False, ...)`: 5 fields, or 6 with seconds last;
  names, ranges, steps, lists, `L`, `5L`/`L5`, `#`, @hourly .. @yearly.
- `IntervalSchedule(every=timedelta, anchor=datetime | None, ...)`
- `OneShotSchedule(at=datetime, ...)`
- `SolarSchedule(event=..., latitude=..., longitude=..., elevation=0, depression="civil",
  offset=timedelta(0), ...)`

Each has:
- `next_after(after) -> datetime | None`: the first slot strictly after `after`.
- `slots(after, count) -> list[datetime]`
- `due_at(schedule_id, slot) -> datetime`: slot plus its deterministic jitter.
- `to_dict() -> dict` and `describe() -> str`.

Functions and structures:
- `schedule_from_dict(data) -> Schedule`: the inverse of `to_dict`, for JSON.
- `catch_up(schedule, cursor, now, *, policy=None, max_slots=None, include_on_time=True)
  -> CatchUp(slots, cursor, truncated, skipped_through)`.
- `check_fires_within(schedule, after, years=28)`: raises `ScheduleError` when the schedule
  has no slot within `years` years (call it when a schedule is created or changed).
- `fire_id(schedule_id, slot) -> str` and `parse_fire_id(fire_id) -> (schedule_id, slot)`.
- `jitter_offset(schedule_id, slot, max_jitter) -> timedelta`.
- `DueQueue`: `add(id, schedule, cursor, version=0)`, `load(iterable)`,
  `update(id, schedule, cursor=None)`, `pause(id)`, `resume(id, cursor)`, `remove(id)`,
  `pop_due(now, limit=None) -> list[Due]`, `next_wakeup() -> datetime | None`, `version(id)`;
  `Due(schedule_id, schedule, slots, cursor, truncated, skipped_through)` with `.fire_ids`.
- `resolve_zone(name) -> ZoneInfo`, `parse_instant(text)`, `parse_duration(value, what)`.
- `ScheduleError(ValueError)`: every invalid schedule or argument; the message names the value.
"""

from __future__ import annotations

from z4j_core.scheduling.backfill import backfill_slots
from z4j_core.scheduling.base import CATCH_UP_POLICIES, CatchUpPolicy, Schedule
from z4j_core.scheduling.catchup import CatchUp, catch_up, latest_slot_between
from z4j_core.scheduling.cron import CronRule, CronSchedule, compile_cron
from z4j_core.scheduling.duequeue import Due, DueQueue
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.fireid import check_schedule_id, fire_id, parse_fire_id
from z4j_core.scheduling.horizon import DEFAULT_HORIZON_YEARS, check_fires_within
from z4j_core.scheduling.instants import format_instant, parse_duration, parse_instant
from z4j_core.scheduling.interval import IntervalSchedule
from z4j_core.scheduling.jitter import jitter_offset
from z4j_core.scheduling.oneshot import OneShotSchedule
from z4j_core.scheduling.solar import SOLAR_EVENTS, SolarSchedule
from z4j_core.scheduling.spec import schedule_from_dict
from z4j_core.scheduling.zones import UTC_ZONE, resolve_zone

__all__ = [
    "CATCH_UP_POLICIES",
    "DEFAULT_HORIZON_YEARS",
    "SOLAR_EVENTS",
    "UTC_ZONE",
    "CatchUp",
    "CatchUpPolicy",
    "CronRule",
    "CronSchedule",
    "Due",
    "DueQueue",
    "IntervalSchedule",
    "OneShotSchedule",
    "Schedule",
    "ScheduleError",
    "SolarSchedule",
    "backfill_slots",
    "catch_up",
    "check_fires_within",
    "check_schedule_id",
    "compile_cron",
    "fire_id",
    "format_instant",
    "jitter_offset",
    "latest_slot_between",
    "parse_duration",
    "parse_fire_id",
    "parse_instant",
    "resolve_zone",
    "schedule_from_dict",
]
