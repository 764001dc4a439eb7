"""The due queue: many schedules ordered by their next due instant.

Owns `DueQueue`, a binary heap of (due instant, token, schedule number) with lazy deletion:
editing, pausing or removing a schedule only invalidates its heap key (the token no longer
matches), and stale keys are dropped when they reach the top or, in bulk, when they outnumber
the live ones. So add, update, pause, resume and remove are O(log n), `next_wakeup` is
amortised O(1), and `pop_due` costs O(k log n) for k due schedules; nothing scans all
schedules per tick. A held schedule costs about 200 bytes besides its id (arrays of machine
integers, one int per heap key), so a million fit in one process. Must never read the clock:
`now` is always an argument.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from z4j_core.scheduling.base import Schedule
from z4j_core.scheduling.catchup import catch_up
from z4j_core.scheduling.errors import ScheduleError, explain
from z4j_core.scheduling.fireid import SCHEDULE_ID_PATTERN, check_schedule_id, fire_id
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


#: Microseconds are the queue's unit: exact for every instant a datetime can hold.
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_US = timedelta(microseconds=1)
#: A heap key is one int: its due instant (microseconds) above `_TOKEN_BITS + _NUMBER_BITS`
#: bits of token and schedule number. One int, not a tuple of three objects, per schedule.
_NUMBER_BITS = 32
_TOKEN_BITS = 48
_NUMBER_MASK = (1 << _NUMBER_BITS) - 1
_TOKEN_MASK = (1 << _TOKEN_BITS) - 1
_DUE_SHIFT = _NUMBER_BITS + _TOKEN_BITS
_NOT_QUEUED = -1
_ID_MATCH = SCHEDULE_ID_PATTERN.match
#: Remembered next slots (see `DueQueue._next_slot`) before the memo starts again.
_MEMO_SIZE = 4096


def _us(instant: datetime) -> int:
    return (instant - _EPOCH) // _ONE_US


def _instant(us: int) -> datetime:
    return _EPOCH + _ONE_US * us


class DueQueue:
    """Schedules keyed by their next due instant (slot plus deterministic jitter).

    Compact, for a million schedules in one process: a schedule is a number into arrays of
    machine integers (cursor, slot, due instant, token) and a slot in a list of timings (equal
    timings may be one shared value); only its id's entry in a dict and one int in the heap are
    Python objects of its own.
    """

    def __init__(self) -> None:
        self._heap: list[int] = []
        self._numbers: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._schedules: list[Schedule | None] = []
        self._cursor = array("q")
        self._slot = array("q")
        #: The caller's version of each schedule (the brain's row version), kept for it.
        self._version = array("q")
        #: The token of the schedule's live heap key (`_NOT_QUEUED`: paused or finished).
        self._token = array("q")
        self._paused = bytearray()
        self._free: list[int] = []
        self._next_token = 0
        self._stale = 0
        #: (id of a timing, cursor) -> (that timing, its next slot): schedules that share a
        #: timing and a cursor (loaded together, or settled on the same slot) share the answer.
        self._memo: dict[tuple[int, int], tuple[Schedule, int | None]] = {}

    # -- membership ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._numbers)

    def __contains__(self, schedule_id: object) -> bool:
        return schedule_id in self._numbers

    def _number(self, schedule_id: str) -> int:
        try:
            return self._numbers[schedule_id]
        except KeyError:
            raise ScheduleError(f"schedule {schedule_id!r} is not in the due queue") from None

    def next_slot(self, schedule_id: str) -> datetime | None:
        """The slot a schedule waits for (None when paused or finished)."""
        number = self._number(schedule_id)
        return None if self._token[number] < 0 else _instant(self._slot[number])

    def cursor(self, schedule_id: str) -> datetime:
        """The newest slot settled for a schedule (or the instant it was added from)."""
        return _instant(self._cursor[self._number(schedule_id)])

    def is_paused(self, schedule_id: str) -> bool:
        return bool(self._paused[self._number(schedule_id)])

    def version(self, schedule_id: str) -> int:
        """The version the schedule was added with."""
        return self._version[self._number(schedule_id)]

    def version_of(self, schedule_id: str) -> int | None:
        """`version`, or None when the schedule is not held (one call: a brain compares a
        million versions with it)."""
        number = self._numbers.get(schedule_id)
        return None if number is None else self._version[number]

    def __iter__(self) -> Iterator[str]:
        """The ids held, in no particular order."""
        return iter(self._numbers)

    # -- edits ------------------------------------------------------------------------------

    def _invalidate(self, number: int) -> None:
        if self._token[number] >= 0:
            self._token[number] = _NOT_QUEUED
            self._stale += 1

    def _place(self, number: int, push: bool = True) -> int | None:
        """Compute the schedule's next slot after its cursor and (re)insert it; returns its
        heap key (None when it never fires again)."""
        # Inlined (`_invalidate`, the memo's hit): a load places a million schedules.
        if self._token[number] >= 0:
            self._token[number] = _NOT_QUEUED
            self._stale += 1
        schedule = self._schedules[number]
        schedule_id = self._ids[number]
        assert schedule is not None and schedule_id is not None
        cursor = self._cursor[number]
        known = self._memo.get((id(schedule), cursor))
        if known is not None and known[0] is schedule:
            slot = known[1]
        else:
            slot = self._next_slot(schedule, cursor)
        if slot is None:
            return None
        due = slot
        if schedule.jitter:
            due = _us(schedule.due_at(schedule_id, _instant(slot)))
        self._slot[number] = slot
        token = self._next_token = (self._next_token + 1) & _TOKEN_MASK
        self._token[number] = token
        key = (due << _DUE_SHIFT) | (token << _NUMBER_BITS) | number
        if push:
            heapq.heappush(self._heap, key)
        return key

    def _next_slot(self, schedule: Schedule, cursor: int) -> int | None:
        """`schedule.next_after(cursor)` in microseconds (schedules are values: the same
        timing after the same instant always answers the same)."""
        key = (id(schedule), cursor)
        known = self._memo.get(key)
        if known is not None and known[0] is schedule:
            return known[1]
        found = schedule.next_after(_instant(cursor))
        slot = None if found is None else _us(found)
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = (schedule, slot)
        return slot

    def _new(self, schedule_id: str, schedule: Schedule, cursor: datetime, version: int) -> int:
        if type(schedule_id) is not str or not _ID_MATCH(schedule_id):
            check_schedule_id(schedule_id)  # raises, naming it
        try:
            cursor_us = (cursor - _EPOCH) // _ONE_US
        except TypeError:
            require_aware(cursor, "cursor")  # raises for a naive one or not a datetime
            raise
        if schedule_id in self._numbers:
            raise ScheduleError(f"schedule {schedule_id!r} is already in the due queue")
        if self._free:
            number = self._free.pop()
            self._ids[number] = schedule_id
            self._schedules[number] = schedule
            self._cursor[number] = cursor_us
            self._token[number] = _NOT_QUEUED
            self._paused[number] = 0
            self._version[number] = version
        else:
            number = len(self._ids)
            if number > _NUMBER_MASK:
                raise ScheduleError(f"the due queue holds at most {_NUMBER_MASK + 1} schedules")
            self._ids.append(schedule_id)
            self._schedules.append(schedule)
            self._cursor.append(cursor_us)
            self._slot.append(0)
            self._version.append(version)
            self._token.append(_NOT_QUEUED)
            self._paused.append(0)
        self._numbers[schedule_id] = number
        return number

    def add(
        self, schedule_id: str, schedule: Schedule, cursor: datetime, version: int = 0
    ) -> datetime | None:
        """Hold a schedule; its first slot is the first after `cursor`. Returns when it is due
        (None when it never fires again). `version` is the caller's, kept with it (`version`):
        a brain holding a million schedules keeps no map of its own beside the queue's."""
        number = self._new(schedule_id, schedule, cursor, version)
        try:
            key = self._place(number)
        except BaseException:
            self._forget(schedule_id, number)
            raise
        return None if key is None else _instant(key >> _DUE_SHIFT)

    def load(self, schedules: Iterable[tuple[str, Schedule, datetime]]) -> int:
        """Add many schedules at once (one O(n) heapify instead of n pushes); returns how many."""
        added = 0
        heap = self._heap
        for schedule_id, schedule, cursor in schedules:
            number = self._new(schedule_id, schedule, cursor, 0)
            try:
                key = self._place(number, push=False)
            except BaseException:
                self._forget(schedule_id, number)
                raise
            if key is not None:
                heap.append(key)
            added += 1
        heapq.heapify(heap)
        return added

    def update(
        self, schedule_id: str, schedule: Schedule, cursor: datetime | None = None
    ) -> datetime | None:
        """Replace a schedule (an edit); keeps its cursor unless one is given."""
        number = self._number(schedule_id)
        self._schedules[number] = schedule
        if cursor is not None:
            self._cursor[number] = _us(require_aware(cursor, "cursor"))
        if self._paused[number]:
            return None
        key = self._place(number)
        self._maybe_compact()
        return None if key is None else _instant(key >> _DUE_SHIFT)

    def pause(self, schedule_id: str) -> bool:
        """Take a schedule out of the order (kept, with its cursor). False if already paused."""
        number = self._number(schedule_id)
        if self._paused[number]:
            return False
        self._paused[number] = 1
        self._invalidate(number)
        self._maybe_compact()
        return True

    def resume(self, schedule_id: str, cursor: datetime) -> datetime | None:
        """Put a paused schedule back; slots up to `cursor` (usually now) do not fire."""
        number = self._number(schedule_id)
        cursor_us = _us(require_aware(cursor, "cursor"))
        self._paused[number] = 0
        self._cursor[number] = max(self._cursor[number], cursor_us)
        key = self._place(number)
        return None if key is None else _instant(key >> _DUE_SHIFT)

    def remove(self, schedule_id: str) -> bool:
        """Forget a schedule. False if it was not held."""
        number = self._numbers.get(schedule_id)
        if number is None:
            return False
        self._forget(schedule_id, number)
        self._maybe_compact()
        return True

    def _forget(self, schedule_id: str, number: int) -> None:
        self._invalidate(number)
        del self._numbers[schedule_id]
        self._ids[number] = None
        self._schedules[number] = None
        self._free.append(number)

    def _live(self, key: int) -> bool:
        return self._token[key & _NUMBER_MASK] == (key >> _NUMBER_BITS) & _TOKEN_MASK

    def _maybe_compact(self) -> None:
        if self._stale >= _COMPACT_AT and self._stale * 2 > len(self._heap):
            self._heap = [key for key in self._heap if self._live(key)]
            heapq.heapify(self._heap)
            self._stale = 0

    def _drop_stale_top(self) -> None:
        heap = self._heap
        while heap:
            if self._live(heap[0]):
                return
            heapq.heappop(heap)
            self._stale -= 1

    # -- the tick -----------------------------------------------------------------------------

    def next_wakeup(self) -> datetime | None:
        """When the earliest held schedule is due (UTC), or None when nothing is waiting."""
        self._drop_stale_top()
        if not self._heap:
            return None
        return _instant(self._heap[0] >> _DUE_SHIFT)

    def pop_due(self, now: datetime, limit: int | None = None) -> list[Due]:
        """Every schedule due at or before `now` (at most `limit`), each moved to its next slot.

        A slot no later than its lateness allowance (jitter plus misfire grace) fires alone;
        an older one settles the backlog with the schedule's catch-up policy. A truncated
        `all` catch-up continues on the next call, so one call is bounded.
        """
        now = require_aware(now, "now").astimezone(_UTC)
        # Every key due at or before `now` sorts below this one (whatever its token and number).
        bound = (_us(now) + 1) << _DUE_SHIFT
        heap = self._heap
        popped: list[Due] = []
        deferred: list[int] = []
        while heap and heap[0] < bound and (limit is None or len(popped) < limit):
            key = heapq.heappop(heap)
            if not self._live(key):
                self._stale -= 1
                continue
            number = key & _NUMBER_MASK
            self._token[number] = _NOT_QUEUED
            try:
                due, more = self._settle(number, now)
            except Exception as exc:  # one schedule's arithmetic never stalls the others
                popped.append(self._failed(number, exc))
                continue
            popped.append(due)
            if more:
                # Paced: the rest of the backlog waits for the next call.
                deferred.append(number)
        for number in deferred:
            try:
                self._place(number)
            except Exception as exc:
                popped.append(self._failed(number, exc))
        return popped

    def _failed(self, number: int, exc: Exception) -> Due:
        """Out of the order (until `update`d), with its error."""
        self._token[number] = _NOT_QUEUED
        schedule, schedule_id = self._schedules[number], self._ids[number]
        assert schedule is not None and schedule_id is not None
        return Due(schedule_id, schedule, (), _instant(self._cursor[number]), error=explain(exc))

    def _settle(self, number: int, now: datetime) -> tuple[Due, bool]:
        """The popped schedule's slots and its next place in the order; the bool says a
        truncated catch-up still has slots to go (the caller places it after the round). A
        failure to find the next slot keeps the slots found and sets `error`."""
        schedule, schedule_id = self._schedules[number], self._ids[number]
        assert schedule is not None and schedule_id is not None
        slot = _instant(self._slot[number])
        if now - slot <= schedule.lateness_allowed:
            self._cursor[number] = self._slot[number]
            due = Due(schedule_id, schedule, (slot,), slot)
        else:
            answer = catch_up(schedule, _instant(self._cursor[number]), now, include_on_time=False)
            self._cursor[number] = _us(answer.cursor)
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
            self._place(number)
        except Exception as exc:
            self._token[number] = _NOT_QUEUED
            due = replace(due, error=explain(exc))
        return due, False
