"""The brain's scheduler: who leads, the leader's tick, and delivery of fires to agents.

Owns three loops of a running brain:

- **Election.** On SQLite the brain is alone (``SingleBrainLock`` holds an OS lock on the
  database file), so it always leads. On Postgres a thread holds a session advisory lock on a
  dedicated connection with short TCP keepalives; followers try again every half second, and a
  leader whose connection fails is demoted at once.
- **The leader's tick.** The schedules sit in the core's ``DueQueue``; each tick pops what is
  due and, in one transaction per tick, writes each slot's fire (the core's deterministic fire
  id; the store refuses a second) and advances each schedule's cursor. Edits reach the leader
  by an in-process wake-up, ``NOTIFY z4j_schedules`` from other brains, and a one-second check
  of the schedules' versions.
- **Delivery (every brain).** Open fires are claimed for this brain's own agents (``FOR UPDATE
  SKIP LOCKED`` on Postgres), sent as commands, and their answers recorded. A fire whose agent
  did not answer is re-offered to another agent only when its engine refuses a repeated job id;
  otherwise only to the same agent (which refuses a fire id it already enqueued) until the
  fire's deadline, when it becomes ``unknown``.

Never computes a slot itself: every instant comes from ``z4j_core.scheduling``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import msgspec

from z4j_brain import schedules as sched
from z4j_brain.db import DatabaseError, PostgresConnection
from z4j_brain.store import Store
from z4j_core.scheduling import Due, DueQueue, ScheduleError, format_instant
from z4j_core.wire.frames import Capability, Command, CommandKind, CommandOptions

if TYPE_CHECKING:
    from z4j_brain.brain import Brain

log = logging.getLogger("z4j.brain.scheduler")

#: The advisory-lock key the leader holds (beside MIGRATION_LOCK and EVENT_POSITION_LOCK).
LEADER_LOCK: Final = 0x7A346A03
#: How often a follower tries to take the lead, and a leader checks its lock's connection.
ELECTION_SECONDS: Final = 0.5
#: How often the leader re-reads schedule versions without a wake-up, and delivery looks for
#: open fires (both are also woken at once by this brain and by NOTIFY from the others).
POLL_SECONDS: Final = 1.0
#: Fires claimed per delivery round; catch-up fires go after on-time ones.
CLAIM_LIMIT: Final = 500
#: Schedules popped per tick (a truncated catch-up continues next tick).
TICK_LIMIT: Final = 5000
#: Least time a fire may wait for an agent, whatever its misfire grace.
MIN_DELIVERY_SECONDS: Final = 10.0
#: Longest a fire command waits for its agent's answer.
MAX_COMMAND_SECONDS: Final = 30.0
#: How often delivery looks for fires bound to an agent that reconnected, besides at once
#: when an agent connects.
REOFFER_SECONDS: Final = 5.0
#: How far behind on-time fires a catch-up fire is queued for delivery.
CATCH_UP_DELAY: Final = 0.5
FIRES_CHANNEL: Final = "z4j_fires"
SCHEDULES_CHANNEL: Final = "z4j_schedules"
_UTC = timezone.utc


class SingleBrainLock:
    """An exclusive OS lock beside a SQLite database: one brain per file."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 -- held for the brain's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            who = f" (pid {holder})" if holder else ""
            raise DatabaseError(
                f"another brain{who} is already running on {self.path.with_suffix('')}: "
                "a SQLite database serves one brain; stop that one first, or share a "
                "Postgres database to run several"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class PostgresElection:
    """A thread that holds the leader's advisory lock on its own connection."""

    def __init__(
        self, url: str, key: int, on_change: Callable[[bool], None], stop: threading.Event
    ) -> None:
        self.url = url
        self.key = key
        self.on_change = on_change
        self.stop = stop
        self.leading = False
        self.thread = threading.Thread(target=self._run, name="z4j-leader-election", daemon=True)

    def _set(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            self.on_change(leading)

    def _run(self) -> None:
        conn: PostgresConnection | None = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.broken:
                    conn = PostgresConnection(self.url)
                if self.leading:
                    conn.raw.execute("SELECT 1")
                else:
                    row = conn.raw.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                    got = row.fetchone()
                    if got is not None and got[0]:
                        self._set(True)
            except Exception as exc:
                if self.leading:
                    log.error("lost the leader lock's connection (%s): demoted", type(exc).__name__)
                self._set(False)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
            self.stop.wait(ELECTION_SECONDS)
        self._set(False)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


class PostgresListener:
    """A thread that LISTENs on the scheduler's channels and calls back on each notification."""

    def __init__(
        self, url: str, on_notify: Callable[[str, str], None], stop: threading.Event
    ) -> None:
        self.url = url
        self.on_notify = on_notify
        self.stop = stop
        self.thread = threading.Thread(target=self._run, name="z4j-listen", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn = PostgresConnection(self.url)
            except DatabaseError:
                self.stop.wait(1.0)
                continue
            try:
                conn.raw.execute(f"LISTEN {FIRES_CHANNEL}")
                conn.raw.execute(f"LISTEN {SCHEDULES_CHANNEL}")
                # Whatever was notified while not listening is picked up by the polls.
                self.on_notify(SCHEDULES_CHANNEL, "")
                self.on_notify(FIRES_CHANNEL, "")
                while not self.stop.is_set():
                    for note in conn.raw.notifies(timeout=0.5, stop_after=64):
                        self.on_notify(note.channel, note.payload)
            except Exception as exc:
                if not self.stop.is_set():
                    log.warning("LISTEN connection lost (%s); reconnecting", type(exc).__name__)
                    self.stop.wait(0.5)
            finally:
                with contextlib.suppress(Exception):
                    conn.close()


def command_for(fire: sched.Claimed, now: float) -> Command:
    """The command that delivers a claimed fire (``trigger_now`` for a trigger)."""
    payload = fire.payload
    options = payload.get("options") or {}
    return Command(
        command_id=uuid.uuid4().hex,
        kind=CommandKind.TRIGGER_NOW if fire.kind == "trigger" else CommandKind.FIRE,
        deadline_seconds=min(MAX_COMMAND_SECONDS, max(5.0, fire.deliver_by - now)),
        engine=fire.engine,
        app=fire.app,
        task=fire.task,
        args=list(payload.get("args") or []),
        kwargs=dict(payload.get("kwargs") or {}),
        options=CommandOptions(
            queue=options.get("queue"),
            priority=options.get("priority"),
            expires_seconds=options.get("expires_seconds"),
        ),
        fire_id=fire.fire_id,
        schedule_id=fire.schedule_id,
        slot=format_instant(datetime.fromtimestamp(fire.slot, _UTC)),
    )


def claim_and_store(
    store: Store,
    agents: list[sched.Agent],
    brain_id: str,
    now: float,
    limit: int,
    *,
    reoffer: bool = False,
) -> list[tuple[sched.Claimed, Command]]:
    """Claim open fires for ``agents`` and store the command of each, in the caller's
    transaction: a fire is never marked delivering without its command recorded."""
    if not agents:
        return []
    result = []
    for fire in sched.claim(store, agents, brain_id, now, limit, reoffer=reoffer):
        command = command_for(fire, now)
        store.insert_command(
            command_id=command.command_id,
            agent_instance=fire.agent_instance,
            kind=command.kind.value,
            engine=fire.engine,
            app=fire.app,
            task=fire.task,
            payload={
                "args": command.args,
                "kwargs": command.kwargs,
                "options": msgspec.to_builtins(command.options),
                "schedule_id": command.schedule_id,
                "slot": command.slot,
            },
            fire_id=fire.fire_id,
            created_at=now,
            deadline_at=now + command.deadline_seconds,
        )
        sched.set_command(store, fire.fire_id, command.command_id)
        result.append((fire, command))
    return result


def notify(store: Store, channel: str, payload: str = "") -> None:
    """Inside a transaction: wake the other brains when it commits (Postgres only)."""
    if store.dialect == "postgres":
        store.conn.execute("SELECT pg_notify(?, ?)", (channel, payload))


#: (schedule, its new fires, its new cursor, skipped through, when popped)
_Batch = tuple[sched.ScheduleRow, list[sched.NewFire], float, float | None, float]


class Scheduler:
    """The scheduler of one brain: elected or not, it always delivers to its own agents."""

    def __init__(self, brain: Brain) -> None:
        self.brain = brain
        self.leading = False
        #: When this brain last became leader (monotonic), for the status route.
        self.leading_since: float | None = None
        self.queue = DueQueue()
        self.rows: dict[str, sched.ScheduleRow] = {}
        self.held: dict[str, int] = {}
        self.fires_written = 0
        self.last_fire_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._schedules_changed = asyncio.Event()
        self._fires_waiting = asyncio.Event()
        self._leadership = asyncio.Event()
        self._stop = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._election: PostgresElection | None = None
        self._listener: PostgresListener | None = None
        self.applied_version: dict[str, int] = {}
        self._version_waiters: list[tuple[str, int, asyncio.Future[None]]] = []
        self._reoffer = True
        self._last_reoffer = 0.0
        self._reload = False
        #: Popped slots not yet submitted, and whether a write of them is in flight.
        self._unwritten: list[_Batch] = []
        self._writing = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        config = self.brain.config
        self._tasks = [
            asyncio.create_task(self._lead_loop()),
            asyncio.create_task(self._deliver_loop()),
        ]
        if config.is_postgres:
            url = str(config.database)
            key = config.leader_lock_key if config.leader_lock_key is not None else LEADER_LOCK
            self._election = PostgresElection(url, key, self._leadership_changed, self._stop)
            self._listener = PostgresListener(url, self._notified, self._stop)
            self._election.thread.start()
            self._listener.thread.start()
        else:
            self._set_leading(True)

    async def stop(self) -> None:
        self._stop.set()
        for task in [*self._tasks, *self._sending]:
            task.cancel()
        for task in [*self._tasks, *self._sending]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for thread in (self._election, self._listener):
            if thread is not None:
                await asyncio.to_thread(thread.thread.join, 5)

    def _leadership_changed(self, leading: bool) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._set_leading, leading)

    def _set_leading(self, leading: bool) -> None:
        if leading and not self.leading:
            log.warning("brain %s is the scheduler leader", self.brain.brain_id)
            self.leading_since = time.monotonic()
        elif not leading and self.leading:
            log.warning("brain %s is no longer the scheduler leader", self.brain.brain_id)
            self.leading_since = None
        self.leading = leading
        self._leadership.set()
        self._schedules_changed.set()

    def _notified(self, channel: str, payload: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        target = self._fires_waiting if channel == FIRES_CHANNEL else self._schedules_changed
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(target.set)

    def schedules_changed(self) -> None:
        """A schedule was edited through this brain (its transaction committed)."""
        self._schedules_changed.set()

    def fires_waiting(self) -> None:
        """Fires were written here, or an agent connected: look for work now."""
        self._fires_waiting.set()

    def agent_connected(self) -> None:
        """An agent (re)connected here: fires bound to its earlier session are offered again."""
        self._reoffer = True
        self._fires_waiting.set()

    async def applied(self, schedule_id: str, version: int, timeout: float) -> bool:
        """Wait until this brain's leader holds ``version`` of a schedule (or a later one, or
        has dropped it); False when not leading here or on timeout. For tests and benchmarks
        that measure how fast an edit takes effect."""
        if not self.leading:
            return False
        if self.applied_version.get(schedule_id, -1) >= version:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._version_waiters.append((schedule_id, version, future))
        self._schedules_changed.set()
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except asyncio.TimeoutError:
            return False

    # -- the leader ---------------------------------------------------------------------------

    async def _lead_loop(self) -> None:
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
        self.rows.clear()
        self.held.clear()
        self.applied_version.clear()
        self._unwritten.clear()
        await self._sync()
        last_sync = time.monotonic()
        while self.leading:
            if self._reload:
                self._reload = False
                return  # _lead_loop leads again from the stored cursors
            if self._schedules_changed.is_set() or time.monotonic() - last_sync >= POLL_SECONDS:
                self._schedules_changed.clear()
                await self._sync()
                last_sync = time.monotonic()
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
                    await asyncio.wait_for(self._schedules_changed.wait(), timeout)

    async def _sync(self) -> None:
        """Bring the due queue in line with the stored schedules (only changed ones are read)."""
        stored = await self.brain.read(sched.versions)
        gone = [sid for sid in self.held if sid not in stored]
        changed = [sid for sid, version in stored.items() if self.held.get(sid) != version]
        for sid in gone:
            self.queue.remove(sid)
            self.rows.pop(sid, None)
            del self.held[sid]
            self.applied_version[sid] = 1 << 62
        if changed:
            rows = await self.brain.read(lambda s: sched.rows_by_id(s, changed))
            for row in rows:
                self._hold(row)
        self._wake_version_waiters()

    def _hold(self, row: sched.ScheduleRow) -> None:
        sid = row.schedule_id
        cursor = row.cursor_dt()
        if sid in self.queue:
            cursor = max(cursor, self.queue.cursor(sid))
            self.queue.remove(sid)
        self.held[sid] = row.version
        self.applied_version[sid] = row.version
        if not row.enabled:
            self.rows.pop(sid, None)
            return
        try:
            schedule = row.schedule()
        except ScheduleError as exc:
            log.error("schedule %s cannot be read (%s); not scheduled", row.name, exc)
            return
        self.rows[sid] = row
        self.queue.add(sid, schedule, cursor)

    def _wake_version_waiters(self) -> None:
        keep = []
        for sid, version, future in self._version_waiters:
            if future.done():
                continue
            if self.applied_version.get(sid, -1) >= version:
                future.set_result(None)
            else:
                keep.append((sid, version, future))
        self._version_waiters = keep

    def _write(self, dues: list[Due], now: datetime) -> None:
        """One transaction: every due slot's fire, and each schedule's cursor."""
        now_ts = now.timestamp()
        batches: list[_Batch] = []
        for due in dues:
            row = self.rows.get(due.schedule_id)
            if row is None:
                continue
            schedule = due.schedule
            grace = max(schedule.misfire_grace.total_seconds(), MIN_DELIVERY_SECONDS)
            late = schedule.lateness_allowed
            fires = []
            for n, (slot, fid) in enumerate(zip(due.slots, due.fire_ids, strict=True)):
                due_at = schedule.due_at(due.schedule_id, slot).timestamp()
                missed = now - slot > late
                fires.append(
                    sched.NewFire(
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
            skipped = due.skipped_through.timestamp() if due.skipped_through else None
            batches.append((row, fires, due.cursor.timestamp(), skipped, now_ts))
        self._unwritten.extend(batches)
        self._flush()

    def _flush(self) -> None:
        """Submit what the ticks popped, unless a write is in flight: then it goes with the
        next one (under load, ticks batch themselves; idle, each goes at once)."""
        if self._writing or not self._unwritten or not self.leading:
            return
        batches, self._unwritten = self._unwritten, []
        agents = self._agents()
        brain_id = self.brain.brain_id

        def write(store: Store) -> tuple[int, list[tuple[sched.Claimed, Command]]]:
            written = 0
            for row, fires, cursor, skipped, popped_at in batches:
                written += sched.insert_fires(store, row, fires, popped_at)
                sched.advance_cursor(store, row.schedule_id, cursor, skipped)
            if written:
                notify(store, FIRES_CHANNEL)
            # This brain's own agents get their fires in the same transaction (one hop less).
            claimed = claim_and_store(store, agents, brain_id, time.time(), CLAIM_LIMIT)
            return written, claimed

        # Not awaited: the next tick's slots need not wait for this commit.
        self._writing = True
        future = self.brain.writer.submit(write)
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda done: loop.call_soon_threadsafe(self._written, done))

    def _written(self, done: Any) -> None:
        self._writing = False
        error = done.exception()
        if error is not None:
            self._unwritten.clear()
            # The queue moved on but the store did not: start again from the stored cursors.
            log.error("writing fires failed (%s); reloading schedules", type(error).__name__)
            self._reload = True
            self._schedules_changed.set()
            return
        self._flush()
        written, claimed = done.result()
        self.fires_written += written
        self._dispatch(claimed)
        if written:
            self.last_fire_at = time.time()
            if len(claimed) >= CLAIM_LIMIT:
                self._fires_waiting.set()

    # -- trigger_now ----------------------------------------------------------------------------

    @staticmethod
    def trigger_job(
        ref: str, now: float, idempotency_key: str | None
    ) -> Callable[[Store], tuple[dict[str, Any], bool, sched.ScheduleRow]]:
        """A write job: a fire of the schedule now, with its own fire id (the slot is the
        trigger's instant). With an idempotency key already used, the earlier fire is returned
        and nothing is written; the bool says whether a fire was created."""
        from z4j_core.scheduling import fire_id

        def job(store: Store) -> tuple[dict[str, Any], bool, sched.ScheduleRow]:
            row = sched.get(store, ref)
            if idempotency_key is not None:
                earlier = sched.fire_by_key(store, idempotency_key)
                if earlier is not None:
                    return earlier, False, row
            instant = datetime.fromtimestamp(now, _UTC)
            while True:
                fid = fire_id(row.schedule_id, instant)
                if sched.fire(store, fid) is None:
                    break
                instant += timedelta(microseconds=1)
            schedule = row.schedule()
            grace = max(schedule.misfire_grace.total_seconds(), MIN_DELIVERY_SECONDS)
            new = sched.NewFire(fid, row.schedule_id, "trigger", now, now, now + grace)
            sched.insert_fires(store, row, [new], now, idempotency_key)
            notify(store, FIRES_CHANNEL)
            created = sched.fire(store, fid)
            assert created is not None
            return created, True, row

        return job

    # -- delivery (every brain) ---------------------------------------------------------------

    def _agents(self) -> list[sched.Agent]:
        agents = []
        for connection in list(self.brain.connections.values()):
            hello = connection.hello
            if hello is None or not connection.is_open:
                continue
            fire_engines = frozenset(
                e.name for e in hello.engines if Capability.FIRE in e.capabilities
            )
            if not fire_engines:
                continue
            dedup = frozenset(
                e.name for e in hello.engines if Capability.NATIVE_DEDUP in e.capabilities
            )
            agents.append(
                sched.Agent(
                    agent_instance=hello.agent_instance,
                    session=connection.session.session_id or "",
                    app=hello.app,
                    engines=fire_engines,
                    dedup_engines=dedup,
                    labels=dict(connection.labels),
                )
            )
        return agents

    async def _deliver_loop(self) -> None:
        last_expire = 0.0
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._fires_waiting.wait(), POLL_SECONDS)
            self._fires_waiting.clear()
            try:
                if self.leading and time.monotonic() - last_expire >= POLL_SECONDS:
                    last_expire = time.monotonic()
                    missed, unknown = await self.brain.write(lambda s: sched.expire(s, time.time()))
                    if missed or unknown:
                        log.warning("fires past their deadline: %d missed, %d unknown",
                                    missed, unknown)  # fmt: skip
                await self._deliver_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("delivery round failed: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(0.5)

    async def _deliver_once(self) -> None:
        agents = self._agents()
        if not agents:
            return
        brain_id = self.brain.brain_id
        # Fires bound to an agent that reconnected are looked for after a connection, and now
        # and then (they are rare: only a brain or agent that died mid-delivery leaves them).
        reoffer = self._reoffer or time.monotonic() - self._last_reoffer > REOFFER_SECONDS
        if reoffer:
            self._reoffer = False
            self._last_reoffer = time.monotonic()
        while True:
            claimed = await self.brain.write(
                lambda s: claim_and_store(
                    s, agents, brain_id, time.time(), CLAIM_LIMIT, reoffer=reoffer
                )
            )
            self._dispatch(claimed)
            if len(claimed) < CLAIM_LIMIT:
                return

    def _dispatch(self, claimed: list[tuple[sched.Claimed, Command]]) -> None:
        for fire, command in claimed:
            task = asyncio.create_task(self._send(fire, command))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, fire: sched.Claimed, command: Command) -> None:
        """Send one claimed fire; its answer is recorded on the fire with the command's."""

        def record(store: Store, outcome: Any) -> None:
            if outcome.status == "unknown":
                sched.release_unanswered(
                    store, fire.fire_id, fire.agent_instance, command.command_id
                )
                return
            sched.record_answer(
                store,
                fire.fire_id,
                fire.agent_instance,
                status=outcome.status,
                command_id=outcome.command_id,
                native_id=outcome.native_id,
                reason=outcome.reason,
                now=outcome.answered_at or time.time(),
            )

        try:
            outcome = await self.brain.commands.deliver(command, fire.agent_instance, record)
        except LookupError as exc:
            # The agent went away before the command left: the fire stays bound to it and is
            # re-offered when it reconnects (or to any agent, for a deduplicating engine).
            log.warning("fire %s not sent: %s", fire.fire_id, exc)
            await self.brain.write(
                lambda s: sched.release_unanswered(
                    s, fire.fire_id, fire.agent_instance, command.command_id
                )
            )
            return
        if outcome.status == "failed":
            self._fires_waiting.set()

    def status(self) -> dict[str, Any]:
        return {
            "brain_id": self.brain.brain_id,
            "leader": self.leading,
            "election": "postgres-advisory-lock" if self.brain.config.is_postgres else "sqlite",
            "schedules_held": len(self.rows) if self.leading else None,
            "fires_written": self.fires_written,
            "delivering": len(self._sending),
        }
