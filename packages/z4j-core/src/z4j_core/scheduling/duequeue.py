"""The due queue: many schedules ordered by their next due instant.

Owns `DueQueue`, a binary heap of (due instant, token, schedule id) with lazy deletion:
editing, pausing or removing a schedule only invalidates its heap item (the token no longer
matches), and stale items are dropped when they reach the top or, in bulk, when they outnumber
the live ones. So add, update, pause, resume and remove are O(log n), `next_wakeup` is
amortised O(1), and `pop_due` costs O(k log n) for k due schedules; nothing scans all
schedules per tick. Must never read the clock: `now` is always an argument.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from z4j_core.scheduling.base import Schedule
from z4j_core.scheduling.catchup import catch_up
from z4j_core.scheduling.errors import ScheduleError, explain
from z4j_core.scheduling.fireid import check_schedule_id, fire_id
from z4j_core.scheduling.instants import require_aware

_UTC = timezone.utc
# Rebuild the heap when stale items are this many and more than the live ones.
_COMPACT_AT = 1024


@dataclass(frozen=True, slots=True)
class Due:
    """One schedule popped from the queue.

    `schedule` is the one the queue holds (parsed once, when added); `slots` fire now, oldest
    first (empty when catch-up skipped them all); `cursor` is the newest slot settled, for the
    caller to store; `truncated` and `skipped_through` are as in `CatchUp`.

    `error` is set when computing this schedule's slots raised: the schedule is out of the
    order (held, never due again until `update`d), `slots` is empty, and every other schedule
    in the same call was popped as usual. One bad schedule never stalls the queue.
    """

    schedule_id: str
    schedule: Schedule
    slots: tuple[datetime, ...]
    cursor: datetime
    truncated: bool = False
    skipped_through: datetime | None = None
    error: str | None = None

    @property
    def fire_ids(self) -> tuple[str, ...]:
        return tuple(fire_id(self.schedule_id, slot) for slot in self.slots)


class _Entry:
    __slots__ = ("cursor", "due_ts", "paused", "schedule", "slot", "token")

    def __init__(self, schedule: Schedule, cursor: datetime) -> None:
        self.schedule = schedule
        self.cursor = cursor
        self.slot: datetime | None = None
        self.due_ts = 0.0
        self.token = -1  # -1: not in the heap (paused or finished)
        self.paused = False


class DueQueue:
    """Schedules keyed by their next due instant (slot plus deterministic jitter)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._entries: dict[str, _Entry] = {}
        self._tokens = itertools.count()
        self._stale = 0

    # -- membership ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, schedule_id: object) -> bool:
        return schedule_id in self._entries

    def _entry(self, schedule_id: str) -> _Entry:
        try:
            return self._entries[schedule_id]
        except KeyError:
            raise ScheduleError(f"schedule {schedule_id!r} is not in the due queue") from None

    def next_slot(self, schedule_id: str) -> datetime | None:
        """The slot a schedule waits for (None when paused or finished)."""
        entry = self._entry(schedule_id)
        return None if entry.token < 0 else entry.slot

    def cursor(self, schedule_id: str) -> datetime:
        """The newest slot settled for a schedule (or the instant it was added from)."""
        return self._entry(schedule_id).cursor

    def is_paused(self, schedule_id: str) -> bool:
        return self._entry(schedule_id).paused

    # -- edits ------------------------------------------------------------------------------

    def _invalidate(self, entry: _Entry) -> None:
        if entry.token >= 0:
            entry.token = -1
            self._stale += 1

    def _place(self, schedule_id: str, entry: _Entry, push: bool = True) -> datetime | None:
        """Compute the entry's next slot after its cursor and (re)insert it."""
        self._invalidate(entry)
        slot = entry.schedule.next_after(entry.cursor)
        entry.slot = slot
        if slot is None:
            return None
        due = entry.schedule.due_at(schedule_id, slot)
        entry.due_ts = due.timestamp()
        entry.token = next(self._tokens)
        if push:
            heapq.heappush(self._heap, (entry.due_ts, entry.token, schedule_id))
        return due

    def add(self, schedule_id: str, schedule: Schedule, cursor: datetime) -> datetime | None:
        """Hold a schedule; its first slot is the first after `cursor`. Returns when it is due
        (None when it never fires again)."""
        check_schedule_id(schedule_id)
        cursor = require_aware(cursor, "cursor").astimezone(_UTC)
        if schedule_id in self._entries:
            raise ScheduleError(f"schedule {schedule_id!r} is already in the due queue")
        entry = _Entry(schedule, cursor)
        self._entries[schedule_id] = entry
        return self._place(schedule_id, entry)

    def load(self, schedules: Iterable[tuple[str, Schedule, datetime]]) -> int:
        """Add many schedules at once (one O(n) heapify instead of n pushes); returns how many."""
        added = 0
        heap = self._heap
        for schedule_id, schedule, given_cursor in schedules:
            check_schedule_id(schedule_id)
            cursor = require_aware(given_cursor, "cursor").astimezone(_UTC)
            if schedule_id in self._entries:
                raise ScheduleError(f"schedule {schedule_id!r} is already in the due queue")
            entry = _Entry(schedule, cursor)
            self._entries[schedule_id] = entry
            if self._place(schedule_id, entry, push=False) is not None:
                heap.append((entry.due_ts, entry.token, schedule_id))
            added += 1
        heapq.heapify(heap)
        return added

    def update(
        self, schedule_id: str, schedule: Schedule, cursor: datetime | None = None
    ) -> datetime | None:
        """Replace a schedule (an edit); keeps its cursor unless one is given."""
        entry = self._entry(schedule_id)
        entry.schedule = schedule
        if cursor is not None:
            entry.cursor = require_aware(cursor, "cursor").astimezone(_UTC)
        if entry.paused:
            return None
        due = self._place(schedule_id, entry)
        self._maybe_compact()
        return due

    def pause(self, schedule_id: str) -> bool:
        """Take a schedule out of the order (kept, with its cursor). False if already paused."""
        entry = self._entry(schedule_id)
        if entry.paused:
            return False
        entry.paused = True
        self._invalidate(entry)
        self._maybe_compact()
        return True

    def resume(self, schedule_id: str, cursor: datetime) -> datetime | None:
        """Put a paused schedule back; slots up to `cursor` (usually now) do not fire."""
        entry = self._entry(schedule_id)
        cursor = require_aware(cursor, "cursor").astimezone(_UTC)
        entry.paused = False
        entry.cursor = max(entry.cursor, cursor)
        return self._place(schedule_id, entry)

    def remove(self, schedule_id: str) -> bool:
        """Forget a schedule. False if it was not held."""
        entry = self._entries.pop(schedule_id, None)
        if entry is None:
            return False
        self._invalidate(entry)
        self._maybe_compact()
        return True

    def _maybe_compact(self) -> None:
        if self._stale >= _COMPACT_AT and self._stale * 2 > len(self._heap):
            entries = self._entries
            self._heap = [
                item
                for item in self._heap
                if (entry := entries.get(item[2])) is not None and entry.token == item[1]
            ]
            heapq.heapify(self._heap)
            self._stale = 0

    def _drop_stale_top(self) -> None:
        heap, entries = self._heap, self._entries
        while heap:
            _, token, schedule_id = heap[0]
            entry = entries.get(schedule_id)
            if entry is not None and entry.token == token:
                return
            heapq.heappop(heap)
            self._stale -= 1

    # -- the tick -----------------------------------------------------------------------------

    def next_wakeup(self) -> datetime | None:
        """When the earliest held schedule is due (UTC), or None when nothing is waiting."""
        self._drop_stale_top()
        if not self._heap:
            return None
        return datetime.fromtimestamp(self._heap[0][0], _UTC)

    def pop_due(self, now: datetime, limit: int | None = None) -> list[Due]:
        """Every schedule due at or before `now` (at most `limit`), each moved to its next slot.

        A slot no later than its lateness allowance (jitter plus misfire grace) fires alone;
        an older one settles the backlog with the schedule's catch-up policy. A truncated
        `all` catch-up continues on the next call, so one call is bounded.
        """
        now = require_aware(now, "now").astimezone(_UTC)
        now_ts = now.timestamp()
        heap, entries = self._heap, self._entries
        popped: list[Due] = []
        deferred: list[tuple[str, _Entry]] = []
        while heap and heap[0][0] <= now_ts and (limit is None or len(popped) < limit):
            _, token, schedule_id = heapq.heappop(heap)
            entry = entries.get(schedule_id)
            if entry is None or entry.token != token:
                self._stale -= 1
                continue
            entry.token = -1
            try:
                due, more = self._settle(schedule_id, entry, now)
            except Exception as exc:  # one schedule's arithmetic never stalls the others
                entry.token = -1
                popped.append(
                    Due(schedule_id, entry.schedule, (), entry.cursor, error=explain(exc))
                )
                continue
            popped.append(due)
            if more:
                # Paced: the rest of the backlog waits for the next call.
                deferred.append((schedule_id, entry))
        for schedule_id, entry in deferred:
            try:
                self._place(schedule_id, entry)
            except Exception as exc:
                entry.token = -1
                popped.append(
                    Due(schedule_id, entry.schedule, (), entry.cursor, error=explain(exc))
                )
        return popped

    def _settle(self, schedule_id: str, entry: _Entry, now: datetime) -> tuple[Due, bool]:
        """The popped entry's slots and its next place in the order; the bool says a truncated
        catch-up still has slots to go (the caller places it after the round). A failure to
        find the next slot keeps the slots found and sets `error`."""
        schedule = entry.schedule
        slot = entry.slot
        assert slot is not None  # an entry in the heap has a slot
        if now - slot <= schedule.lateness_allowed:
            entry.cursor = slot
            due = Due(schedule_id, schedule, (slot,), slot)
        else:
            answer = catch_up(schedule, entry.cursor, now, include_on_time=False)
            entry.cursor = answer.cursor
            due = Due(
                schedule_id,
                schedule,
                answer.slots,
                answer.cursor,
                answer.truncated,
                answer.skipped_through,
            )
            if answer.truncated:
                return due, True
        try:
            self._place(schedule_id, entry)
        except Exception as exc:
            entry.token = -1
            due = replace(due, error=explain(exc))
        return due, False
