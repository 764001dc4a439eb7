"""The slots of a backfill: every slot of a schedule in a closed range, oldest first, bounded.

Pure: no clock, no store. The brain writes each slot's fire under the same deterministic id a
live slot gets (``fire_id``), so a slot that already has a fire is never fired twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from z4j_core.scheduling.base import Schedule
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.instants import format_instant
from z4j_core.scheduling.limits import MAX_BACKFILL_SLOTS

_UTC = timezone.utc
_ONE_MICROSECOND = timedelta(microseconds=1)


def backfill_slots(
    schedule: Schedule, start: datetime, end: datetime, limit: int = MAX_BACKFILL_SLOTS
) -> list[datetime]:
    """Every slot in [start, end], oldest first. A range holding more than ``limit`` slots is
    refused (``ScheduleError`` naming the count), never silently cut."""
    start, end = start.astimezone(_UTC), end.astimezone(_UTC)
    if end < start:
        raise ScheduleError(
            f"backfill range ends ({format_instant(end)}) before it starts "
            f"({format_instant(start)})"
        )
    found: list[datetime] = []
    slot = schedule.next_after(start - _ONE_MICROSECOND)
    while slot is not None and slot <= end:
        if len(found) == limit:
            raise ScheduleError(
                f"backfill range {format_instant(start)} to {format_instant(end)} holds more "
                f"than {limit} slots: give a shorter range (--from/--to) and run it in parts"
            )
        found.append(slot)
        slot = schedule.next_after(slot)
    return found
