"""Fire ids: one deterministic id per (schedule id, slot), usable as every engine's job id.

Owns the id format `<schedule id>_<UTC slot as YYYYMMDDTHHMMSS[ffffff]Z>`. It is derived,
never random, so two leaders computing the same slot produce the same id and the store refuses
the second. Only [A-Za-z0-9_-] appear. Must never depend on a schedule's name (which can be
reused) or on the slot's zone (the same instant gives the same id).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.instants import require_aware

SCHEDULE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_SLOT_PATTERN = re.compile(r"^(\d{8}T\d{6})(\d{6})?Z$")
_UTC = timezone.utc


def check_schedule_id(schedule_id: str) -> str:
    """Refuse a schedule id that could not be part of an engine job id."""
    if not isinstance(schedule_id, str) or not SCHEDULE_ID_PATTERN.match(schedule_id):
        raise ScheduleError(
            f"schedule id {schedule_id!r} must be 1 to 80 characters of A-Z, a-z, 0-9, _ and -"
        )
    return schedule_id


def fire_id(schedule_id: str, slot: datetime) -> str:
    """The id of the fire of `schedule_id` at `slot`, e.g. `7f3c9a_20251102T053000Z`."""
    check_schedule_id(schedule_id)
    utc = require_aware(slot, "slot").astimezone(_UTC)
    stamp = utc.strftime("%Y%m%dT%H%M%S")
    if utc.microsecond:
        stamp += f"{utc.microsecond:06d}"
    return f"{schedule_id}_{stamp}Z"


def parse_fire_id(value: str) -> tuple[str, datetime]:
    """(schedule id, slot in UTC) back from a fire id."""
    schedule_id, _, stamp = value.rpartition("_")
    match = _SLOT_PATTERN.match(stamp)
    if not schedule_id or match is None or not SCHEDULE_ID_PATTERN.match(schedule_id):
        raise ScheduleError(f"{value!r} is not a z4j fire id")
    slot = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=_UTC)
    if match.group(2):
        slot += timedelta(microseconds=int(match.group(2)))
    return schedule_id, slot
