"""Catch-up: which slots fire after the scheduler was away, per the schedule's policy.

Owns `catch_up`. Slots between the cursor (the last slot settled, or the instant the schedule
was created or resumed) and `now` split in two: on time (no older than the schedule's jitter
plus misfire grace) and missed (older). On-time slots fire. Missed ones follow the policy:
`skip` fires none, `one` fires the latest, `all` fires them oldest first, at most
`max_catch_up` per answer (the answer says so, and its cursor lets the caller go on next
tick). Must never read the clock, and never enumerate a backlog without bound: `skip` and `one`
find the latest missed slot by galloping back from the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from z4j_core.scheduling.base import CATCH_UP_POLICIES, CatchUpPolicy, Schedule
from z4j_core.scheduling.errors import ScheduleError
from z4j_core.scheduling.instants import UTC, require_aware

_ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class CatchUp:
    """The answer of `catch_up`.

    - `slots`: the slots to fire now, oldest first.
    - `cursor`: the newest slot this answer settles (fired or skipped); store it and pass it
      back next time. Equal to the cursor given when nothing was due.
    - `truncated`: `all` hit `max_catch_up`; more missed slots follow `cursor`.
    - `skipped_through`: the newest missed slot that will not fire (`skip`, `one`), or None.
    """

    slots: tuple[datetime, ...]
    cursor: datetime
    truncated: bool = False
    skipped_through: datetime | None = None


def latest_slot_between(schedule: Schedule, after: datetime, until: datetime) -> datetime | None:
    """The newest slot in (after, until], found without walking from `after`.

    Gallops back from `until` (1 s, 2 s, 4 s, ...) until a window holds a slot, then walks
    forward inside that window only; a month-long backlog of a per-second schedule costs a
    few calls, not millions.
    """
    after, until = after.astimezone(UTC), until.astimezone(UTC)
    first = schedule.next_after(after)
    if first is None or first > until:
        return None
    window = _ONE_SECOND
    while True:
        probe = max(until - window, after)
        found = schedule.next_after(probe)
        if found is not None and found <= until:
            latest = found
            while (following := schedule.next_after(latest)) is not None and following <= until:
                latest = following
            return latest
        if probe == after:  # cannot happen: `first` is in the range
            return first
        window *= 2


def catch_up(
    schedule: Schedule,
    cursor: datetime,
    now: datetime,
    *,
    policy: CatchUpPolicy | None = None,
    max_slots: int | None = None,
    include_on_time: bool = True,
) -> CatchUp:
    """The slots in (cursor, now] to fire now, per the schedule's catch-up policy.

    `policy` and `max_slots` override the schedule's `catch_up` and `max_catch_up`.
    With `include_on_time=False` only the missed part is settled (the due queue fires
    on-time slots one by one, each at its jittered due time).
    """
    cursor = require_aware(cursor, "cursor").astimezone(UTC)
    now = require_aware(now, "now").astimezone(UTC)
    policy = schedule.catch_up if policy is None else policy
    if policy not in CATCH_UP_POLICIES:
        raise ScheduleError(f"unknown catch-up policy {policy!r} (use skip, one or all)")
    limit = schedule.max_catch_up if max_slots is None else max_slots
    if limit < 1:
        raise ScheduleError(f"max_slots must be >= 1, got {limit}")
    deadline = now - schedule.lateness_allowed

    fired: list[datetime] = []
    settled = cursor
    skipped_through: datetime | None = None
    truncated = False
    if deadline > cursor:
        if policy == "all":
            slot = schedule.next_after(cursor)
            while slot is not None and slot <= deadline:
                if len(fired) == limit:
                    truncated = True
                    break
                fired.append(slot)
                settled = slot
                slot = schedule.next_after(slot)
        else:
            latest = latest_slot_between(schedule, cursor, deadline)
            if latest is not None:
                settled = latest
                if policy == "one":
                    fired.append(latest)
                    if schedule.next_after(cursor) != latest:
                        skipped_through = schedule_previous(schedule, cursor, latest)
                else:
                    skipped_through = latest
    if include_on_time and not truncated:
        slot = schedule.next_after(settled)
        while slot is not None and slot <= now:
            if len(fired) >= limit:
                truncated = True
                break
            fired.append(slot)
            settled = slot
            slot = schedule.next_after(slot)
    return CatchUp(
        slots=tuple(fired), cursor=settled, truncated=truncated, skipped_through=skipped_through
    )


def schedule_previous(schedule: Schedule, after: datetime, before: datetime) -> datetime | None:
    """The newest slot in (after, before), i.e. the one just before `before`."""
    return latest_slot_between(schedule, after, before.astimezone(UTC) - timedelta(microseconds=1))
