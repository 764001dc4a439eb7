"""The leader's loop: the schedules in the core's ``DueQueue``, popped when due, and each slot
written as its fire.

Each tick pops what is due and, in one transaction per tick, writes each slot's fire (the
core's deterministic fire id; the store refuses a second) and advances each schedule's cursor;
this brain's own agents get their fires claimed in the same transaction. Edits reach the leader
by an in-process wake-up, ``NOTIFY z4j_schedules`` from other brains, a one-second check of the
store's schedule change count (one row), and a comparison of every schedule's version every
five minutes (a chunk at a time, against what is held, with no map of them all built). Of each
schedule the leader keeps its place in the queue (a shared parsed timing and a few machine
integers) and its version, nothing else: what a fire carries (task, args, labels) is read from
the store by the write of that fire, and rows are read in chunks of only the columns the queue
needs, so a million schedules load in bounded memory. A schedule whose slots cannot be
computed (or whose row cannot be read) is set aside as ``broken`` with its error, logged once;
every other schedule keeps firing on time, and an edit or a resume tries it again. A
schedule's overlap policy is decided in the same write, per slot, and stored with the fire.
Once a second the leader's housekeeping expires fires past their deadline (each missed one
logged by its schedule's name), releases buffered fires and pauses a schedule after its
configured run of failures. Never computes a slot itself: every instant comes from
``z4j_core.scheduling``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from z4j_brain import actions
from z4j_brain import schedule_health as health
from z4j_brain.audit import Actor, AuditLog
from z4j_brain.delivery import CLAIM_LIMIT, Delivery, claim_and_store
from z4j_brain.notifications import FIRES_CHANNEL, SCHEDULES_CHANNEL
from z4j_brain.schedules import MIN_DELIVERY_SECONDS, Conflict, NotFound
from z4j_brain.store import Agent, Claimed, FireRecipe, NewFire, ScheduleRow, Store
from z4j_brain.store.schedules import (
    BUFFERED,
    OVERLAP_ALLOW,
    OVERLAP_BUFFER_ONE,
    OVERLAP_CANCEL_PREVIOUS,
    PENDING,
    SKIPPED,
    HeldSchedule,
)
from z4j_core.scheduling import (
    Due,
    DueQueue,
    Schedule,
    ScheduleError,
    fire_id,
    format_instant,
    schedule_from_dict,
)
from z4j_core.scheduling.errors import explain
from z4j_core.wire.frames import ActionKind, Command, CommandStatus

if TYPE_CHECKING:
    from z4j_brain.brain import Brain

log = logging.getLogger("z4j.brain.scheduler")

#: How often the leader checks the store's schedule change count without a wake-up.
POLL_SECONDS: Final = 1.0
#: How often it compares every schedule's version anyway: a change the count missed (a row
#: written by hand). Reading every version takes seconds with a million schedules, so a change
#: the count saw is read by its change number (``Store.schedules_changed_after``), and every
#: version is compared only when those numbers do not account for every change counted (a
#: brain of the previous release records none).
FULL_SYNC_SECONDS: Final = 300.0
#: Schedule rows read per read job while syncing (the rows of one chunk are alive at once).
SYNC_CHUNK: Final = 2000
#: (id, version) pairs read per read job while comparing versions.
VERSION_CHUNK: Final = 10_000
#: A sync holding more schedules than this pauses the cyclic garbage collector meanwhile.
BULK_LOAD: Final = 10_000
#: Schedules popped per tick (a truncated catch-up continues next tick).
TICK_LIMIT: Final = 5000
#: How far behind on-time fires a catch-up fire is queued for delivery.
CATCH_UP_DELAY: Final = 0.5
_UTC = timezone.utc

#: (schedule id, its new fires, its new cursor, skipped through, when popped)
_Batch = tuple[str, list[NewFire], float, float | None, float]


class Leader:
    """The leader's state and loop on one brain (idle while another brain leads)."""

    def __init__(self, brain: Brain, delivery: Delivery) -> None:
        self.brain = brain
        self.delivery = delivery
        self.leading = False
        #: When this brain last became leader (monotonic), for the status route.
        self.leading_since: float | None = None
        self.queue = DueQueue()
        #: The held schedules whose overlap is cancel-previous (housekeeping asks the store
        #: for their unanswered decisions only while there are some).
        self.cancelling_schedules: set[str] = set()
        #: The version of each schedule held out of the queue (paused, broken); the queue
        #: keeps the others' (a version of -1 is read again).
        self.unqueued: dict[str, int] = {}
        #: Schedules deleted while this brain led (no version of them is to come).
        self._dropped: set[str] = set()
        #: The store's schedule change count at the last sync (None: sync in full).
        self._changes_seen: int | None = None
        self.fires_written = 0
        self.last_fire_at: float | None = None
        #: Schedules this brain's leader set aside as broken since it started.
        self.broken_found = 0
        self.schedules_changed = asyncio.Event()
        self._leadership = asyncio.Event()
        self._version_waiters: list[tuple[str, int, asyncio.Future[None]]] = []
        self._reload = False
        #: Popped slots not yet submitted, and whether a write of them is in flight.
        self._unwritten: list[_Batch] = []
        self._writing = False
        #: Fires whose cancel-previous this brain is sending (not sent twice meanwhile).
        self._cancelling: set[str] = set()

    def set_leading(self, leading: bool) -> None:
        if leading and not self.leading:
            log.info("brain %s is the scheduler leader", self.brain.brain_id)
            self.leading_since = time.monotonic()
        elif not leading and self.leading:
            log.info("brain %s is no longer the scheduler leader", self.brain.brain_id)
            self.leading_since = None
        self.leading = leading
        self._leadership.set()
        self.schedules_changed.set()

    async def applied(self, schedule_id: str, version: int, timeout: float) -> bool:
        """Wait until this leader holds ``version`` of a schedule (or a later one, or has
        dropped it); False when not leading here or on timeout."""
        if not self.leading:
            return False
        if self._applied(schedule_id, version):
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._version_waiters.append((schedule_id, version, future))
        self.schedules_changed.set()
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def _applied(self, schedule_id: str, version: int) -> bool:
        held = self.held_version(schedule_id)
        return schedule_id in self._dropped or (held is not None and held >= version)

    def held_version(self, schedule_id: str) -> int | None:
        """The version held of a schedule (None: not held)."""
        version = self.queue.version_of(schedule_id)
        return self.unqueued.get(schedule_id) if version is None else version

    def _held_count(self) -> int:
        return len(self.queue) + len(self.unqueued)

    @property
    def schedules_held(self) -> int:
        """Schedules in the queue (enabled, not broken)."""
        return len(self.queue)

    async def run(self) -> None:
        while True:
            if not self.leading:
                self._leadership.clear()
                await self._leadership.wait()
                continue
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("scheduler tick failed (%s: %s); reloading", type(exc).__name__, exc)
                await asyncio.sleep(1.0)

    async def _lead(self) -> None:
        """Lead until demoted: load every schedule, then tick."""
        self.queue = DueQueue()
        self.cancelling_schedules.clear()
        self.unqueued.clear()
        self._dropped.clear()
        self._unwritten.clear()
        await self._sync(full=True)
        last_sync = last_full = time.monotonic()
        while self.leading:
            if self._reload:
                self._reload = False
                return  # run() leads again from the stored cursors
            woken = self.schedules_changed.is_set()
            if woken or time.monotonic() - last_sync >= POLL_SECONDS:
                self.schedules_changed.clear()
                full = time.monotonic() - last_full >= FULL_SYNC_SECONDS
                await self._sync(full=full)
                last_sync = time.monotonic()
                if full:
                    last_full = last_sync
            now = datetime.now(_UTC)
            dues = self.queue.pop_due(now, limit=TICK_LIMIT)
            if dues:
                self._write(dues, now)
                await asyncio.sleep(0)
                continue
            wake = self.queue.next_wakeup()
            timeout = POLL_SECONDS
            if wake is not None:
                timeout = min(timeout, max(0.0, (wake - datetime.now(_UTC)).total_seconds()))
            if timeout > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.schedules_changed.wait(), timeout)

    async def _sync(self, full: bool) -> None:
        """Bring the due queue in line with the stored schedules (only changed ones are read).
        Unless ``full``, nothing is compared while the store's change count stands still."""
        changes = await self.brain.read(lambda s: s.schedule_changes())
        if not full and changes == self._changes_seen:
            return
        # Counted before the versions are read: a change in between is read again next poll.
        # Schedules with the same stored timing share one (immutable) value.
        timings: dict[str, Schedule] = {}
        if not self._held_count():
            await self._load_all(timings)
        else:
            found = None if full else await self._changes_after(self._changes_seen, changes)
            changed, gone = await self._compare_versions() if found is None else found
            for sid in gone:
                self.queue.remove(sid)
                self.cancelling_schedules.discard(sid)
                self.unqueued.pop(sid, None)
                self._dropped.add(sid)
            for start in range(0, len(changed), SYNC_CHUNK):
                chunk = changed[start : start + SYNC_CHUNK]
                for held in await self.brain.read(partial(Store.schedules_to_hold, ids=chunk)):
                    self._hold(held, timings)
        self._changes_seen = changes
        self._wake_version_waiters()

    async def _load_all(self, timings: dict[str, Schedule]) -> None:
        """Hold every stored schedule, read a chunk at a time in the store's order of ids.

        Holding is acyclic and long-lived: the collector's full passes over a growing heap
        would cost more than the load (quadratic in the schedules held), so it is paused
        meanwhile past ``BULK_LOAD``. One pass at the end collects what other threads left
        meanwhile, then what is held is frozen out of its future passes."""
        after: str | None = None
        paused = False
        try:
            while True:
                chunk = await self.brain.read(
                    partial(Store.schedules_to_hold_after, after=after, limit=SYNC_CHUNK)
                )
                for held in chunk:
                    self._hold(held, timings, fresh=True)
                if len(chunk) < SYNC_CHUNK:
                    break
                after = chunk[-1].schedule_id
                if not paused and self._held_count() > BULK_LOAD:
                    paused = gc.isenabled()
                    gc.disable()
        finally:
            if paused:
                gc.enable()
                gc.collect()
                gc.freeze()

    async def _changes_after(
        self, seen: int | None, count: int
    ) -> tuple[list[str], list[str]] | None:
        """The schedules written since the change count stood at ``seen`` whose version is not
        the one held (new ones included), and the held ones deleted since, found by their
        change numbers; None when those do not account for every change up to ``count`` (see
        ``ScheduleChanges.complete``) or there are too many: then every version is compared."""
        if seen is None or not 0 < count - seen <= VERSION_CHUNK:
            return None
        found = await self.brain.read(partial(Store.schedules_changed_after, change_no=seen))
        if not found.complete(seen, count):
            return None
        held = self.held_version
        changed = [sid for sid, version in found.written if held(sid) != version]
        return changed, [sid for sid in found.deleted if held(sid) is not None]

    async def _compare_versions(self) -> tuple[list[str], list[str]]:
        """The schedules whose stored version is not the one held (new ones included), and
        the held ones no longer stored: every version compared a chunk at a time, with no
        map of them all built."""
        unqueued, queued = self.unqueued, self.queue.version_of
        changed: list[str] = []
        found = 0
        after: str | None = None
        while True:
            chunk = await self.brain.read(
                partial(Store.schedule_versions_after, after=after, limit=VERSION_CHUNK)
            )
            for sid, version in chunk:
                mine = queued(sid)
                if mine is None:
                    mine = unqueued.get(sid)
                if mine is None:
                    changed.append(sid)
                    continue
                found += 1
                if mine != version:
                    changed.append(sid)
            if len(chunk) < VERSION_CHUNK:
                break
            after = chunk[-1][0]
        gone: list[str] = []
        if found < self._held_count():  # some were deleted: ask which, a chunk at a time
            ids = [*self.queue, *unqueued]
            for start in range(0, len(ids), SYNC_CHUNK):
                asked = ids[start : start + SYNC_CHUNK]
                there = await self.brain.read(partial(Store.existing_schedule_ids, ids=asked))
                gone.extend(sid for sid in asked if sid not in there)
        return changed, gone

    def _hold(self, held: HeldSchedule, timings: dict[str, Schedule], fresh: bool = False) -> None:
        """Hold a schedule's stored version (``fresh``: one not held yet, as in a first load)."""
        sid = held.schedule_id
        cursor = datetime.fromtimestamp(held.cursor, _UTC)
        if not fresh:
            if sid in self.queue:
                cursor = max(cursor, self.queue.cursor(sid))
                self.queue.remove(sid)
            self.unqueued.pop(sid, None)
            self._dropped.discard(sid)
            self.cancelling_schedules.discard(sid)
        if not held.enabled or held.broken:
            self.unqueued[sid] = held.version
            return  # a broken schedule waits for an edit or a resume
        try:
            schedule = timings.get(held.spec)
            if schedule is None:
                schedule = timings[held.spec] = schedule_from_dict(json.loads(held.spec))
            self.queue.add(sid, schedule, cursor, held.version)
        except Exception as exc:
            self.unqueued[sid] = held.version
            self._set_aside(sid, explain(exc))
            return
        if held.overlap == OVERLAP_CANCEL_PREVIOUS:
            self.cancelling_schedules.add(sid)

    def _set_aside(self, schedule_id: str, error: str) -> None:
        """Mark a schedule broken: out of the queue, logged once, stored with its error (unless
        it was edited meanwhile: then the edit is what the leader holds next)."""
        version = self.held_version(schedule_id)
        if version is None:
            version = -1
        self.queue.remove(schedule_id)
        self.unqueued[schedule_id] = version
        self.cancelling_schedules.discard(schedule_id)
        self.broken_found += 1
        self.delivery.spawn(self._store_broken(schedule_id, version, error))

    async def _store_broken(self, schedule_id: str, version: int, error: str) -> None:
        def job(store: Store) -> str:
            row = store.schedule(schedule_id)
            store.mark_broken(schedule_id, version, error, time.time())
            return schedule_id if row is None else row.name

        try:
            name = await self.brain.write(job)
        except Exception as exc:
            # Not stored: forget the version held, so the next sync reads the row again, finds
            # it broken again and retries the write (the schedule never looks active unnoticed).
            log.error("schedule id %s is broken and set aside: %s", schedule_id, error)
            log.error("could not store schedule %s as broken (%s); retrying", schedule_id, exc)
            if self.unqueued.get(schedule_id) == version:
                self.unqueued[schedule_id] = -1
            return
        log.error("schedule %s (id %s) is broken and set aside: %s", name, schedule_id, error)

    def _wake_version_waiters(self) -> None:
        keep = []
        for sid, version, future in self._version_waiters:
            if future.done():
                continue
            if self._applied(sid, version):
                future.set_result(None)
            else:
                keep.append((sid, version, future))
        self._version_waiters = keep

    def _write(self, dues: list[Due], now: datetime) -> None:
        """One transaction: every due slot's fire, and each schedule's cursor."""
        now_ts = now.timestamp()
        batches: list[_Batch] = []
        for due in dues:
            sid = due.schedule_id
            try:
                fires = self._fires_of(due, now)
            except Exception as exc:
                self._set_aside(sid, explain(exc))
                continue
            if due.error is not None:
                self._set_aside(sid, due.error)
            skipped = due.skipped_through.timestamp() if due.skipped_through else None
            if skipped is not None:
                self.brain.metrics.slots_skipped()
            batches.append((sid, fires, due.cursor.timestamp(), skipped, now_ts))
        self._unwritten.extend(batches)
        self._flush()

    @staticmethod
    def _fires_of(due: Due, now: datetime) -> list[NewFire]:
        now_ts = now.timestamp()
        schedule = due.schedule
        grace = max(schedule.misfire_grace.total_seconds(), MIN_DELIVERY_SECONDS)
        late = schedule.lateness_allowed
        fires = []
        for n, (slot, fid) in enumerate(zip(due.slots, due.fire_ids, strict=True)):
            due_at = schedule.due_at(due.schedule_id, slot).timestamp()
            missed = now - slot > late
            fires.append(
                NewFire(
                    fire_id=fid,
                    schedule_id=due.schedule_id,
                    kind="catch_up" if missed else "scheduled",
                    slot=slot.timestamp(),
                    due_at=due_at,
                    deliver_by=max(due_at, now_ts) + grace,
                    # A backlog goes out behind the on-time slots of the next moments,
                    # oldest first, paced by the tick (max_catch_up per schedule).
                    claim_order=now_ts + CATCH_UP_DELAY + n * 1e-6 if missed else None,
                )
            )
        return fires

    def _flush(self) -> None:
        """Submit what the ticks popped, unless a write is in flight: then it goes with the
        next one (under load, ticks batch themselves; idle, each goes at once)."""
        if self._writing or not self._unwritten or not self.leading:
            return
        batches, self._unwritten = self._unwritten, []
        write = partial(write_fires, batches=batches, agents=self.delivery.agents(),
                        brain_id=self.brain.brain_id)  # fmt: skip
        # Not awaited: the next tick's slots need not wait for this commit.
        self._writing = True
        future = self.brain.writer.submit(write, urgent=True)
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda done: loop.call_soon_threadsafe(self._written, done))

    async def housekeeping(self) -> None:
        """Once a second while leading (delivery's loop calls it): see ``housekeeping_job``."""
        audit = self.brain.audit
        assert audit is not None, "the brain was not prepared"
        done = await self.brain.write(housekeeping_job(audit, self.brain.brain_id))
        self.brain.metrics.fires_expired(done.missed_count, done.unknown_count)
        for fire in done.missed[:20]:
            name = fire["name"] or f"(deleted, id {fire['schedule_id']})"
            log.warning("schedule %s missed its slot %s (fire %s): %s", name,
                        _slot_text(fire["slot"]), fire["fire_id"],
                        fire["reason"] or "no suitable agent took it before its misfire grace "
                        "ran out")  # fmt: skip
        if done.missed_count > 20:
            log.warning("%d more fires missed this round", done.missed_count - 20)
        if done.unknown_count:
            log.warning("fires past their deadline with no answer: %d unknown",
                        done.unknown_count)  # fmt: skip
        for name, note in done.paused:
            log.warning("schedule %s %s", name, note)
        if done.paused:
            self.schedules_changed.set()
        if done.released:
            self.delivery.fires_waiting.set()
        if not self.cancelling_schedules:
            return
        since = time.time() - CANCEL_WITHIN
        asked = await self.brain.read(
            lambda s: s.decided_fires(OVERLAP_CANCEL_PREVIOUS, CANCELLING, since)
        )
        for fire in asked:
            if fire["fire_id"] not in self._cancelling:
                self._cancelling.add(fire["fire_id"])
                self.delivery.spawn(self._cancel_previous(fire))

    async def _cancel_previous(self, fire: dict[str, Any]) -> None:
        """Send the cancel a ``cancel-previous`` decision asked for (as the scheduler, audited)
        and record its outcome in the fire's decision: once, whatever the answer."""
        was = fire["decision"]
        task_id = was[len(CANCELLING) :].split(" (fire ", 1)[0]
        try:
            outcome = await cancel_task(self.brain, fire["engine"], fire["app"], task_id)
        except Exception as exc:  # recorded, never retried: the decision must end
            log.exception("cancel-previous of task %s failed", task_id)
            outcome = f"could not cancel task {task_id}: {type(exc).__name__}: {exc}"
        try:
            await self.brain.write(
                lambda s: s.set_decision(fire["fire_id"], was, f"cancel-previous: {outcome}")
            )
        finally:
            self._cancelling.discard(fire["fire_id"])

    def _written(self, done: Any) -> None:
        self._writing = False
        error = done.exception()
        if error is not None:
            self._unwritten.clear()
            # The queue moved on but the store did not: start again from the stored cursors.
            log.error("writing fires failed (%s); reloading schedules", type(error).__name__)
            self._reload = True
            self.schedules_changed.set()
            return
        self._flush()
        written, claimed = done.result()
        self.fires_written += written
        self.delivery.dispatch(claimed)
        if written:
            self.last_fire_at = time.time()
            if len(claimed) >= CLAIM_LIMIT:
                self.delivery.fires_waiting.set()


def write_fires(
    store: Store, batches: list[_Batch], agents: list[Agent], brain_id: str
) -> tuple[int, list[tuple[Claimed, Command]]]:
    """A leader's write of what its ticks popped, in the writer's transaction: every fire and
    cursor, then the claim of the fires this brain's own agents serve (one hop less)."""
    # What each fire carries is read here, in the transaction that writes it: the stored
    # schedule as it is now (a schedule deleted since it was popped fires no more). The fires
    # of schedules that allow overlap, and every cursor, go in one batch each.
    recipes = store.fire_recipes([sid for sid, fires, *_ in batches if fires])
    made = [(recipes[sid], fires, popped_at)
            for sid, fires, _, _, popped_at in batches if sid in recipes]  # fmt: skip
    written = store.insert_many_fires(
        [(recipe, fire, popped_at)
         for recipe, fires, popped_at in made if recipe.overlap == OVERLAP_ALLOW
         for fire in fires]
    )  # fmt: skip
    for recipe, fires, popped_at in made:
        if recipe.overlap != OVERLAP_ALLOW:
            for fire in fires:  # one by one: each slot's decision sees the one before
                decided = overlap_decision(store, recipe, fire)
                written += store.insert_fires(recipe, [decided], popped_at)
    store.advance_cursors([(sid, cursor, skipped) for sid, _, cursor, skipped, _ in batches])
    if written:
        store.notify(FIRES_CHANNEL)
    claimed = claim_and_store(store, agents, brain_id, time.time(), CLAIM_LIMIT)
    return written, claimed


def trigger_job(
    ref: str, now: float, idempotency_key: str | None
) -> Callable[[Store], tuple[dict[str, Any], bool, ScheduleRow]]:
    """A write job: a fire of the schedule now, with its own fire id (the slot is the trigger's
    instant). With an idempotency key already used, the earlier fire is returned and nothing is
    written; the bool says whether a fire was created."""

    def job(store: Store) -> tuple[dict[str, Any], bool, ScheduleRow]:
        row = store.schedule(ref)
        if row is None:
            raise NotFound(f"no schedule named {ref!r}")
        if idempotency_key is not None:
            earlier = store.fire_by_key(row.schedule_id, idempotency_key)
            if earlier is not None:
                return earlier, False, row
        instant = datetime.fromtimestamp(now, _UTC)
        while True:
            fid = fire_id(row.schedule_id, instant)
            if store.fire(fid) is None:
                break
            instant += timedelta(microseconds=1)
        try:
            schedule = row.schedule()
        except ScheduleError as exc:
            raise Conflict(
                f"schedule {row.name!r} cannot be read ({exc}): edit it before triggering it"
            ) from None
        grace = max(schedule.misfire_grace.total_seconds(), MIN_DELIVERY_SECONDS)
        new = NewFire(fid, row.schedule_id, "trigger", now, now, now + grace)
        store.insert_fires(row, [new], now, idempotency_key)
        store.notify(FIRES_CHANNEL)
        created = store.fire(fid)
        assert created is not None
        return created, True, row

    return job


def _slot_text(slot: float) -> str:
    return format_instant(datetime.fromtimestamp(slot, _UTC))


def _doing(fire: dict[str, Any]) -> str:
    if fire["state"] in ("pending", "delivering"):
        return "not yet delivered"
    state = fire["task_state"]
    return "queued" if state is None else "running" if state == "started" else str(state)


#: Start of a ``cancel-previous`` decision whose cancel is not answered yet (the leader's
#: housekeeping sends it, then replaces the decision with the outcome).
CANCELLING: Final = "cancel-previous: cancelling task "
#: How old a slot's unanswered cancel may be and still be sent (a brain down longer drops it).
CANCEL_WITHIN: Final = 86400.0


def overlap_decision(store: Store, row: FireRecipe | ScheduleRow, fire: NewFire) -> NewFire:
    """The fire as the schedule's overlap policy decides it, in the leader's write (so the
    decision is stored with the fire, under its deterministic id, and a new leader finds it):
    fired (``pending``), ``skipped`` because an earlier fire's task is still queued or
    running, (``buffer-one``) ``buffered`` until it finishes, with at most one waiting, or
    (``cancel-previous``) fired with a decision asking housekeeping to cancel the newest
    earlier task still queued or running."""
    if row.overlap == OVERLAP_ALLOW or fire.state != PENDING:
        return fire
    earlier = store.running_fires(row.schedule_id, fire.slot)
    if not earlier:
        return fire
    if row.overlap == OVERLAP_CANCEL_PREVIOUS:
        busy = [f for f in earlier if f["state"] != BUFFERED]
        if not busy:
            return fire
        first = busy[0]
        about = f"(fire {first['fire_id']}, slot {_slot_text(first['slot'])}, {_doing(first)})"
        if first["state"] in ("pending", "delivering") or not first["task_id"]:
            return replace(fire, decision=f"cancel-previous: the previous fire {about} has "
                           "no task to cancel yet; fired anyway")  # fmt: skip
        return replace(fire, decision=f"{CANCELLING}{first['task_id']} {about}")
    waiting = [f for f in earlier if f["state"] == BUFFERED]
    busy = [f for f in earlier if f["state"] != BUFFERED]
    if row.overlap == OVERLAP_BUFFER_ONE and not waiting and busy:
        first = busy[0]
        return replace(fire, state=BUFFERED, reason=(
            f"waits for the previous fire to finish: fire {first['fire_id']} (slot "
            f"{_slot_text(first['slot'])}, {_doing(first)}), overlap buffer-one"))  # fmt: skip
    if waiting:
        reason = (f"one already waits: fire {waiting[0]['fire_id']} (slot "
                  f"{_slot_text(waiting[0]['slot'])}), overlap {row.overlap}")  # fmt: skip
    else:
        first = busy[0]
        reason = (f"previous fire still {_doing(first)}: fire {first['fire_id']} (slot "
                  f"{_slot_text(first['slot'])}), overlap {row.overlap}")  # fmt: skip
    return replace(fire, state=SKIPPED, reason=reason)


async def cancel_task(brain: Brain, engine: str, app: str, task_id: str) -> str:
    """Cancel a schedule's earlier task for ``cancel-previous`` (audited, as the scheduler):
    a running one only with ``terminate`` where an agent advertises it. Returns what happened,
    for the fire's decision."""
    target = await actions.resolve_task(brain, task_id, engine, app)
    terminate = target.state == "started"
    if terminate:
        needed = actions.describe(ActionKind.CANCEL, terminate=True)
        if not actions.able_agents(brain, target, needed):
            return (f"task {task_id} is running and could not be stopped: "
                    f"{actions.no_agent_reason(brain, target, needed)}")  # fmt: skip
    actor = Actor(SCHEDULER_ACTOR, f"brain {brain.brain_id}")
    row = await actions.perform(brain, ActionKind.CANCEL, target, actions.Requested(actor),
                                terminate=terminate)  # fmt: skip
    verb = "terminated" if terminate else "cancelled"
    if row["status"] == CommandStatus.DONE.value:
        return f"{verb} task {task_id} (action {row['action_id']})"
    return (f"could not cancel task {task_id}: {row['status']}, {row['reason'] or 'no reason'} "
            f"(action {row['action_id']})")  # fmt: skip


@dataclass
class Housekeeping:
    """What the leader's housekeeping did this round (for its log lines)."""

    missed: list[dict[str, Any]] = field(default_factory=list)
    missed_count: int = 0
    unknown_count: int = 0
    released: int = 0
    paused: list[tuple[str, str]] = field(default_factory=list)


#: Who the audit log names for a pause the brain made itself.
SCHEDULER_ACTOR: Final = "scheduler"


def housekeeping_job(audit: AuditLog, brain_id: str) -> Callable[[Store], Housekeeping]:
    """A write job for the leader, once a second: fires past their deadline become ``missed``
    or ``unknown`` (the missed ones named, for the log), buffered fires whose earlier fire
    finished go to delivery, and a schedule with ``pause_after_failures`` whose newest task
    outcomes failed that many times in a row is paused (audited, with a note naming them)."""

    def job(store: Store) -> Housekeeping:
        now = time.time()
        done = Housekeeping()
        done.missed = store.expiring_fires(now)
        done.missed_count, done.unknown_count = store.expire_fires(now)
        for buffered in store.buffered_fires():
            if any(
                f["state"] != BUFFERED
                for f in store.running_fires(buffered["schedule_id"], buffered["slot"])
            ):
                continue  # fmt: skip
            row = store.schedule(buffered["schedule_id"])
            grace = MIN_DELIVERY_SECONDS
            if row is not None:
                with contextlib.suppress(Exception):
                    grace = max(row.schedule().misfire_grace.total_seconds(), grace)
            done.released += store.release_buffered(buffered["fire_id"], now + grace, now)
        for row in store.watched_schedules():
            limit = row.pause_after_failures or 0
            history = store.fire_history(row.schedule_id, max(limit * 2, health.HEALTH_FIRES))
            # Counted from the schedule's last change: a resume (or an edit) starts again.
            since = [f for f in history if f["created_at"] > row.updated_at]
            failures = health.consecutive_failures(since)
            if len(failures) < limit:
                continue
            note = health.pause_note(failures)
            store.pause_schedule(row.schedule_id, note, actor=SCHEDULER_ACTOR, now=now)
            after = store.schedule(row.schedule_id)
            audit.append(store, actor=Actor(SCHEDULER_ACTOR, f"brain {brain_id}"),
                         action="schedule.pause", target=row.name, before=row.as_dict(),
                         after=None if after is None else after.as_dict(), now=now)  # fmt: skip
            store.notify(SCHEDULES_CHANNEL, row.schedule_id)
            done.paused.append((row.name, note))
        if done.released:
            store.notify(FIRES_CHANNEL)
        return done

    return job
