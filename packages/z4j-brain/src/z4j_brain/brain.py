"""The brain's running parts, wired together: store writer and readers, the token registry,
live agent connections, command dispatch and the periodic jobs (token refresh, retention).

Owns the brain's lifecycle (``start``/``stop``) and the Python API the HTTP routes, the CLI and
tests use: ``Brain.send_command`` and ``Brain.read``. Never touches SQLite on the event loop:
writes go through ``StoreWriter``, reads through a small pool of reader threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

from z4j_brain.audit import AuditLog, load_key
from z4j_brain.config import BrainConfig
from z4j_brain.election import SingleBrainLock
from z4j_brain.gateway import AgentConnection
from z4j_brain.health import ReadinessCache
from z4j_brain.metrics import BrainMetrics
from z4j_brain.ratelimit import AuthFailureLimiter
from z4j_brain.scheduler import Scheduler
from z4j_brain.store import Store, TokenRow
from z4j_brain.store.events import PURGE_CHUNK
from z4j_brain.store.schedules import UNANSWERED, FireAnswer
from z4j_brain.tokens import AdminCheck, ensure_admin_token, find_token
from z4j_brain.writer import StoreWriter, why
from z4j_core.wire.errors import CloseCode
from z4j_core.wire.frames import (
    Command,
    CommandKind,
    CommandOptions,
    CommandResult,
    CommandStatus,
)

log = logging.getLogger("z4j.brain")

T = TypeVar("T")

#: Seconds past a command's deadline the brain still waits for its answer (transit both ways).
ANSWER_GRACE_SECONDS: Final = 2.0
#: Status recorded when no answer came before the deadline: the brain cannot know whether the
#: agent enqueued it.
UNKNOWN: Final = "unknown"
PENDING: Final = "pending"
#: How often a brain records that it is alive in the ``brains`` table, and how old that record
#: may get before its agents count as disconnected (a brain killed without a clean stop).
BRAIN_HEARTBEAT_SECONDS: Final = 5.0
BRAIN_STALE_SECONDS: Final = 30.0


class NoAgentError(LookupError):
    """No connected agent serves the requested engine, app and labels."""


@dataclass(frozen=True)
class CommandOutcome:
    """How a command ended, as the API returns it."""

    command_id: str
    agent_instance: str
    status: str
    native_id: str | None = None
    reason: str = ""
    #: When the answer arrived (epoch seconds); 0 when none did.
    answered_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "command_id": self.command_id,
            "agent_instance": self.agent_instance,
            "status": self.status,
            "native_id": self.native_id,
            "reason": self.reason,
        }


class TokenRegistry:
    """Agent tokens as last read from the store, refreshed often enough to cut off a revoked
    or expired token's connections within a second."""

    def __init__(self, brain: Brain) -> None:
        self._brain = brain
        self._rows: list[TokenRow] = []

    async def refresh(self) -> None:
        self._rows, admin_hash = await self._brain.read(
            lambda s: (s.token_rows(), s.admin_token_hash())
        )
        # The admin token may have been rotated by `z4j brain admin-token --rotate`, run by
        # another process on the same database: the new one works here within a refresh.
        if admin_hash is not None and (
            self._brain.admin is None or self._brain.admin.stored_hash_hex != admin_hash
        ):
            self._brain.admin = AdminCheck(admin_hash)

    async def verify(self, presented: str) -> TokenRow | None:
        """The usable token matching ``presented``; reloads once on a miss, so a token created
        a moment ago (by the CLI, on the same database) works at once."""
        found = find_token(self._rows, presented, time.time())
        if found is None:
            await self.refresh()
            found = find_token(self._rows, presented, time.time())
        return found

    def cut_off_unusable(self) -> None:
        now = time.time()
        usable = {(r.name, r.token_hash) for r in self._rows if r.usable(now)}
        for connection in list(self._brain.connections.values()):
            token = connection.token
            if (token.name, token.token_hash) not in usable:
                log.warning(
                    "cutting off agent %s: its token is revoked or expired",
                    connection.agent_instance,
                )
                connection.close(CloseCode.AUTH_REFUSED, "token revoked or expired")


#: An answer to record: the outcome, the fire its command delivers (if any), and who waits.
_Answer = tuple[CommandOutcome, "str | None", "asyncio.Future[None]"]


def _no_answer(waiter: asyncio.Future[CommandResult | None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def write_answers(store: Store, answers: Sequence[tuple[CommandOutcome, str | None]]) -> None:
    """Commands' outcomes, and each on its fire (if any), in the writer's transaction: one
    statement per table for a whole round of answers, not a job per fire."""
    now = time.time()
    store.answer_commands(
        [(o.command_id, o.status, o.native_id, o.reason, now) for o, _ in answers]
    )
    store.record_fire_answers([fire_answer(fire, o, now) for o, fire in answers if fire])


def fire_answer(fire_id: str, outcome: CommandOutcome, now: float) -> FireAnswer:
    """What a fire's command's outcome records on the fire: without an answer, or when the
    agent could not tell whether the engine took it, the fire is released (re-offered or left
    to expire, by its engine), not marked."""
    if outcome.status == UNKNOWN:
        said = outcome.reason if outcome.answered_at else ""
        return FireAnswer(fire_id, outcome.agent_instance, outcome.command_id, UNANSWERED,
                          None, said, now)  # fmt: skip
    return FireAnswer(fire_id, outcome.agent_instance, outcome.command_id, outcome.status,
                      outcome.native_id, outcome.reason, outcome.answered_at or now)  # fmt: skip


@dataclass
class CommandRouter:
    """Sends commands to agents and matches their results to the waiting callers."""

    brain: Brain
    #: command id -> (the agent it went to, the caller's future): only that agent may answer.
    pending: dict[str, tuple[str, asyncio.Future[CommandResult | None]]] = field(
        default_factory=dict
    )
    #: Answers to record, and whether a write of answers is in flight: answers that arrive
    #: meanwhile go together in the next one (one writer job and one statement per table for
    #: a whole tick's answers, not a job per fire).
    _answers: list[_Answer] = field(default_factory=list)
    _answers_writing: bool = False
    #: The answers of a write that failed, each to be written again on its own (first).
    _alone: list[_Answer] = field(default_factory=list)

    def expect(self, command_id: str, agent_instance: str) -> asyncio.Future[CommandResult | None]:
        """A future for the answer to ``command_id``, which only ``agent_instance`` may give
        (None: none came by the deadline)."""
        waiter: asyncio.Future[CommandResult | None] = asyncio.get_running_loop().create_future()
        self.pending[command_id] = (agent_instance, waiter)
        return waiter

    @staticmethod
    async def answer_within(
        waiter: asyncio.Future[CommandResult | None], timeout: float
    ) -> CommandResult | None:
        """The answer ``waiter`` gets within ``timeout`` seconds, else None. The deadline
        resolves the waiter itself: one timer, no task or future wrapped around it (``wait_for``
        and ``shield`` make one of each per command, a thousand a second at a thousand fires)."""
        timer = asyncio.get_running_loop().call_later(timeout, _no_answer, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def pick_agent(
        self,
        engine: str,
        app: str,
        kind: CommandKind,
        labels: dict[str, str],
        agent_instance: str | None = None,
    ) -> AgentConnection:
        candidates = [
            c
            for c in self.brain.connections.values()
            if c.serves(engine, app, kind, labels)
            and (agent_instance is None or c.agent_instance == agent_instance)
        ]
        if not candidates:
            wanted = f"engine {engine!r}, app {app!r}"
            if labels:
                wanted += f", labels {labels}"
            raise NoAgentError(f"no connected agent can {kind.value} for {wanted}")
        return min(candidates, key=lambda c: c.in_flight_commands)

    async def send(
        self,
        *,
        kind: CommandKind,
        engine: str,
        app: str,
        task: str,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        options: CommandOptions | None = None,
        fire_id: str | None = None,
        schedule_id: str | None = None,
        slot: str | None = None,
        labels: dict[str, str] | None = None,
        deadline_seconds: float | None = None,
        agent_instance: str | None = None,
    ) -> CommandOutcome:
        """Send to one agent serving engine, app and labels (``agent_instance``: that one
        only) and wait for its answer, or record ``unknown`` at the deadline."""
        deadline = deadline_seconds or self.brain.config_command_deadline
        command = Command(
            command_id=uuid.uuid4().hex,
            kind=kind,
            deadline_seconds=deadline,
            engine=engine,
            app=app,
            task=task,
            args=list(args or []),
            kwargs=dict(kwargs or {}),
            options=options or CommandOptions(),
            fire_id=fire_id,
            schedule_id=schedule_id,
            slot=slot,
        )
        connection = self.pick_agent(engine, app, kind, labels or {}, agent_instance)
        agent_instance = connection.agent_instance
        now = time.time()
        payload = {
            "args": command.args,
            "kwargs": command.kwargs,
            "options": _options_dict(command.options),
            "schedule_id": schedule_id,
            "slot": slot,
        }
        await self.brain.write(
            lambda s: s.insert_command(
                command_id=command.command_id,
                agent_instance=agent_instance,
                kind=kind.value,
                engine=engine,
                app=app,
                task=task,
                payload=payload,
                fire_id=fire_id,
                created_at=now,
                deadline_at=now + deadline,
            ),
            urgent=True,
        )
        return await self._exchange(command, connection, deadline)

    async def deliver(self, command: Command, agent_instance: str, fire_id: str) -> CommandOutcome:
        """Send a fire's command, whose row is already stored (the scheduler stores it with
        the fire's claim), to that one agent; its answer is recorded on the command and the
        fire in one transaction (see ``FireStore.record_fire_answers``)."""
        connection = self.brain.connections.get(agent_instance)
        if connection is None or not connection.is_open:
            raise NoAgentError(f"agent {agent_instance} is not connected here")
        return await self._exchange(command, connection, command.deadline_seconds, fire_id)

    async def _exchange(
        self,
        command: Command,
        connection: AgentConnection,
        deadline: float,
        fire_id: str | None = None,
    ) -> CommandOutcome:
        agent_instance = connection.agent_instance
        waiter = self.expect(command.command_id, agent_instance)
        connection.in_flight_commands += 1
        try:
            if not connection.send_frame(command):
                result = CommandResult(
                    command_id=command.command_id,
                    status=CommandStatus.FAILED,
                    reason="the agent's connection closed before the command was sent",
                )
            else:
                answer = await self.answer_within(waiter, deadline + ANSWER_GRACE_SECONDS)
                if answer is None:
                    outcome = CommandOutcome(
                        command.command_id,
                        agent_instance,
                        UNKNOWN,
                        reason="no answer from the agent before the deadline",
                    )
                    await self._record(outcome, fire_id)
                    return outcome
                result = answer
        finally:
            connection.in_flight_commands -= 1
            self.pending.pop(command.command_id, None)
        outcome = CommandOutcome(
            command.command_id,
            agent_instance,
            result.status.value,
            result.native_id,
            result.reason,
            answered_at=time.time(),
        )
        await self._record(outcome, fire_id)
        return outcome

    def resolve(self, result: CommandResult, agent_instance: str) -> None:
        """A result arrived from ``agent_instance``. An answer to a command that went to another
        agent is dropped (logged): ids are random, so only a faulty or hostile agent sends one."""
        expected = self.pending.get(result.command_id)
        if expected is not None:
            sent_to, waiter = expected
            if sent_to != agent_instance:
                log.warning(
                    "dropped agent %s's answer to command %s, which went to agent %s",
                    agent_instance, result.command_id[:64], sent_to,
                )  # fmt: skip
                return
            if not waiter.done():
                waiter.set_result(result)
                return
        # A late answer (after ``unknown`` was recorded) still tells the truth: record it.
        outcome = CommandOutcome(
            result.command_id, agent_instance, result.status.value, result.native_id, result.reason
        )

        def record(store: Store) -> None:
            now = time.time()
            store.answer_command(
                outcome.command_id,
                outcome.status,
                outcome.native_id,
                outcome.reason,
                now,
                agent_instance=agent_instance,
            )
            # An action's late answer (its command id is the action's id).
            store.answer_action(
                outcome.command_id,
                agent_instance=agent_instance,
                status=outcome.status,
                reason=outcome.reason,
                new_task_id=outcome.native_id,
                count=result.count,
                now=now,
            )
            row = store.command(outcome.command_id)
            if row is not None and row["fire_id"]:
                store.record_fire_answer(
                    row["fire_id"],
                    agent_instance,
                    status=outcome.status,
                    command_id=outcome.command_id,
                    native_id=outcome.native_id,
                    reason=outcome.reason,
                    now=now,
                )

        self.brain.writer.submit(record, urgent=True)

    async def _record(self, outcome: CommandOutcome, fire_id: str | None = None) -> None:
        """Record ``outcome`` (and on ``fire_id``'s fire, in the same transaction); returns
        once it committed."""
        counts = self.brain.commands_by_status
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._answers.append((outcome, fire_id, written))
        self._write_answers()
        await written

    def _write_answers(self) -> None:
        if self._answers_writing:
            return
        if self._alone:
            answers = [self._alone.pop(0)]
        elif self._answers:
            answers, self._answers = self._answers, []
        else:
            return

        job = partial(write_answers, answers=[(outcome, fire) for outcome, fire, _ in answers])
        loop = asyncio.get_running_loop()
        try:
            future = self.brain.writer.submit(job, urgent=True)
        except Exception as exc:  # the writer closed: the brain is stopping, nothing is written
            waiting, self._alone, self._answers = [*answers, *self._alone, *self._answers], [], []
            for _, _, written in waiting:
                if not written.done():
                    written.set_exception(exc)
            return
        self._answers_writing = True
        future.add_done_callback(
            lambda done: loop.call_soon_threadsafe(self._answers_written, answers, done.exception())
        )

    def _answers_written(self, answers: list[_Answer], failure: BaseException | None) -> None:
        self._answers_writing = False
        if failure is not None and len(answers) > 1:
            # One transaction: one answer that cannot be written (its fire's record refused)
            # failed them all, and none was kept. Each goes again alone, so only that one fails.
            self._alone.extend(answers)
            answers = []
        for _, _, written in answers:
            if written.done():
                continue
            if failure is None:
                written.set_result(None)
            else:
                written.set_exception(failure)
        self._write_answers()


def _options_dict(options: CommandOptions) -> dict[str, Any]:
    import msgspec

    result: dict[str, Any] = msgspec.to_builtins(options)
    return result


class Brain:
    """The running brain. ``await start()`` before serving, ``await stop()`` after."""

    def __init__(self, config: BrainConfig, command_deadline_seconds: float = 30.0) -> None:
        self.config = config
        self.config_command_deadline = command_deadline_seconds
        #: This brain process among those sharing the database.
        self.brain_id = uuid.uuid4().hex
        self.writer = StoreWriter(config.database)
        self.writer_closed = False
        self.tokens = TokenRegistry(self)
        self.commands = CommandRouter(self)
        self.connections: dict[str, AgentConnection] = {}
        self.events_stored = 0
        #: Set (then cleared) each time a batch is stored here: wakes long-polling readers.
        self.events_changed = asyncio.Event()
        #: Set once the HTTP server was told to exit: long-lived answers (the console's live
        #: stream, a long poll) end then, so the server does not wait for them.
        self.stopping = asyncio.Event()
        self.commands_by_status: dict[str, int] = {}
        self.actions_by_status: dict[str, int] = {}
        #: Bulk actions running in the background (docs/actions.md).
        self.bulk_tasks: set[asyncio.Task[None]] = set()
        self.auth_refused = 0
        #: /health/ready's last answer (health.py).
        self.readiness = ReadinessCache()
        self.auth_limiter = AuthFailureLimiter(
            config.auth_failure_limit, config.auth_failure_window_seconds
        )
        self.started_at = time.time()
        self.admin: AdminCheck | None = None
        #: The admin token created by this start (to print once), else None.
        self.new_admin_token: str | None = None
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="z4j-brain-reader")
        self._reader_local = threading.local()
        self._reader_stores: list[Store] = []
        self._reader_lock = threading.Lock()
        self._background: list[asyncio.Task[None]] = []
        self.scheduler = Scheduler(self)
        self.metrics = BrainMetrics(self, config.metrics_task_names, config.metrics_task_top_n)
        self.audit: AuditLog | None = None
        self._single_lock: SingleBrainLock | None = None

    def prepare(self) -> None:
        """Synchronous start-up work: create and migrate the database, the admin token.

        Call before the event loop serves (the CLI does it before uvicorn starts).
        """
        if not self.config.is_postgres and self._single_lock is None:
            assert isinstance(self.config.database, Path)
            lock = SingleBrainLock(self.config.database)
            lock.acquire()
            self._single_lock = lock
        try:
            self._prepare_store()
        except BaseException:
            if self._single_lock is not None:
                self._single_lock.release()
                self._single_lock = None
            raise

    def _prepare_store(self) -> None:
        self.audit = AuditLog(load_key(self.config.audit_key, self.config.audit_key_file))
        store = Store.open(self.config.database)
        try:
            now = time.time()
            with store.transaction():
                store.brain_alive(self.brain_id, socket.gethostname(), os.getpid(), now)
                # Agents of brains that are gone (this one before a restart, a killed one on
                # the same Postgres) are not connected; other live brains' agents stay.
                store.disconnect_orphans(now - BRAIN_STALE_SECONDS, now)
            self._ensure_event_partitions(store, now)
            self.new_admin_token = ensure_admin_token(store, now, self.config.admin_token)
            stored = store.admin_token_hash()
            assert stored is not None
            self.admin = AdminCheck(stored)
        finally:
            store.close()

    @staticmethod
    def _ensure_event_partitions(store: Store, now: float) -> None:
        """Make today's and the next days' event partitions (Postgres) before serving; if that
        cannot be done now, events wait in the default partition, and retention tries again."""
        try:
            with store.transaction():
                made = store.ensure_event_partitions(now)
        except Exception as exc:
            log.warning("could not make the events' day partitions yet: %s", why(exc))
            return
        _log_partitions(made)

    async def start(self) -> None:
        if self.admin is None:
            await asyncio.to_thread(self.prepare)
        self.writer.start()
        await self.tokens.refresh()
        self._background = [
            asyncio.create_task(
                self._every(self.config.token_refresh_seconds, self._refresh_tokens)
            ),
            asyncio.create_task(self._every(self.config.purge_interval_seconds, self.purge)),
            asyncio.create_task(self._every(BRAIN_HEARTBEAT_SECONDS, self._heartbeat)),
        ]
        await self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        for bulk in list(self.bulk_tasks):
            bulk.cancel()
        await asyncio.gather(*self.bulk_tasks, return_exceptions=True)
        for task in self._background:
            task.cancel()
        for task in self._background:
            try:
                await task
            except asyncio.CancelledError:
                pass
        for connection in list(self.connections.values()):
            connection.close(CloseCode.GOING_AWAY, "brain shutting down")
        await asyncio.sleep(0)
        brain_id = self.brain_id
        try:
            await asyncio.wait_for(self.write(lambda s: s.brain_gone(brain_id, time.time())), 5)
        except Exception as exc:
            log.warning("could not record this brain's stop: %s", type(exc).__name__)
        self.writer_closed = True
        await asyncio.to_thread(self.writer.close)
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            for store in self._reader_stores:
                store.close()
            self._reader_stores.clear()
        if self._single_lock is not None:
            self._single_lock.release()
            self._single_lock = None

    async def read(self, query: Callable[[Store], T]) -> T:
        """Run ``query`` on a reader thread with that thread's own connection."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, query)

    async def write(self, job: Callable[[Store], T], *, urgent: bool = False) -> T:
        """Run ``job`` on the writer thread; returns once it committed. ``urgent``: a small
        write of the fire path, run before the event batches queued with it."""
        return await asyncio.wrap_future(self.writer.submit(job, urgent=urgent))

    async def send_command(self, **kwargs: Any) -> CommandOutcome:
        """See ``CommandRouter.send``: pick an agent, send, await the answer or the deadline."""
        return await self.commands.send(**kwargs)

    async def purge(self) -> tuple[int, int]:
        now = time.time()
        cutoff = now - self.config.retention_seconds
        events, tasks = await self._upkeep_event_partitions(now, cutoff), 0
        while True:  # in chunks, each its own short write: inserts go on in between
            chunk_events, chunk_tasks = await self.write(lambda s: s.purge(cutoff))
            events, tasks = events + chunk_events, tasks + chunk_tasks
            if max(chunk_events, chunk_tasks) < PURGE_CHUNK:
                break
        if events or tasks:
            log.info("retention: purged %d events and %d tasks", events, tasks)
        # Schedules that keep fewer results (result_log failures or none): their fires'
        # finished tasks go now, whatever their age; each fire keeps its task's outcome.
        dropped = await self.write(lambda s: s.purge_by_result_log())
        if dropped:
            log.info("retention: dropped %d scheduled tasks by their result log policy", dropped)
        commands = await self._purge_chunks(lambda s: s.purge_commands(cutoff, PURGE_CHUNK))
        fire_cutoff = time.time() - self.config.fire_retention_seconds
        fires = await self._purge_chunks(lambda s: s.purge_fires(fire_cutoff, PURGE_CHUNK))
        agents = await self.write(lambda s: s.forget_agents(cutoff))
        if commands or fires or agents:
            log.info(
                "retention: purged %d commands, %d settled fires and %d agents long gone",
                commands, fires, agents,
            )  # fmt: skip
        return events, tasks + dropped

    async def _upkeep_event_partitions(self, now: float, cutoff: float) -> int:
        """Postgres: make the coming days' event partitions and drop those of the days past
        the retention; about how many events went. A failure (a lock not granted in time) is
        logged and left to the next pass: rows are purged either way."""
        try:
            made = await self.write(lambda s: s.ensure_event_partitions(now))
            dropped, events = await self.write(lambda s: s.drop_event_partitions(cutoff))
        except Exception as exc:
            log.warning(
                "retention: the events' day partitions wait for the next pass: %s", why(exc)
            )
            return 0
        _log_partitions(made, dropped, events)
        return events

    async def _purge_chunks(self, chunk: Callable[[Store], int]) -> int:
        """Repeat a purge of up to ``PURGE_CHUNK`` rows, each its own short write, until one
        takes fewer; how many rows went."""
        total = 0
        while True:
            went = await self.write(chunk)
            total += went
            if went < PURGE_CHUNK:
                return total

    def _run_read(self, query: Callable[[Store], T]) -> T:
        store = self._reader_store()
        try:
            return query(store)
        except Exception:
            if not getattr(store.conn, "broken", False):
                raise
        # The connection broke (a Postgres restart or failover): once more on a fresh one.
        self._drop_reader_store(store)
        return query(self._reader_store())

    def _reader_store(self) -> Store:
        store: Store | None = getattr(self._reader_local, "store", None)
        if store is None:
            store = Store.open(self.config.database, migrate=False, shared=True)
            self._reader_local.store = store
            with self._reader_lock:
                self._reader_stores.append(store)
        return store

    def _drop_reader_store(self, store: Store) -> None:
        self._reader_local.store = None
        with self._reader_lock:
            if store in self._reader_stores:
                self._reader_stores.remove(store)
        try:
            store.close()
        except Exception:
            pass

    def note_events_stored(self, count: int) -> None:
        self.events_stored += count
        self.events_changed.set()
        self.events_changed.clear()

    async def _heartbeat(self) -> None:
        brain_id, host, pid = self.brain_id, socket.gethostname(), os.getpid()

        def beat(store: Store) -> int:
            now = time.time()
            store.brain_alive(brain_id, host, pid, now)
            return store.disconnect_orphans(now - BRAIN_STALE_SECONDS, now)

        orphans = await self.write(beat)
        if orphans:
            log.info("marked %d agents of a stopped brain disconnected", orphans)

    async def _refresh_tokens(self) -> None:
        await self.tokens.refresh()
        self.tokens.cut_off_unusable()

    async def _every(self, seconds: float, job: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("periodic %s failed: %s", getattr(job, "__name__", "job"), exc)


def _log_partitions(made: list[str], dropped: Sequence[str] = (), events: int = 0) -> None:
    """One line for the event partitions a brain made, one for those retention dropped."""
    if made:
        log.info("made the events' day partitions %s", ", ".join(made))
    if dropped:
        log.info(
            "retention: dropped the events' day partitions %s (about %d events)",
            ", ".join(dropped), events,
        )  # fmt: skip
