"""Events and the latest state of each task: the gateway's batches, retention, and the reads
of ``GET /tasks``, ``/tasks/{id}/events`` and ``/events``.

SQL is portable between SQLite and Postgres, except the Postgres fast path for batches (rows in
``COPY``'s binary format, see ``_pg_store_events``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, NamedTuple

from z4j_brain.db import EVENT_PARTITIONS_LOCK, POSTGRES, Connection, PostgresConnection
from z4j_brain.paging import KEYS, decode_cursor
from z4j_brain.store.base import StoreBase, columns, keyset, unnest, without_nul
from z4j_core.wire.frames import Event, LifecycleKind

#: How far a task has got: a state only replaces one of a lower rank when the two events come
#: from different agents (their sequence numbers cannot be compared). ``retried`` may be
#: followed by a new attempt (ranks below it), never by a terminal state being undone.
_QUEUED, _RECEIVED, _STARTED, _RETRIED, _TERMINAL, _AFTERLIFE = 10, 20, 30, 40, 50, 60
STATE_RANK: Final[dict[LifecycleKind, int]] = {
    LifecycleKind.ENQUEUED: _QUEUED,
    LifecycleKind.SCHEDULED: _QUEUED,
    LifecycleKind.RECEIVED: _RECEIVED,
    LifecycleKind.STARTED: _STARTED,
    LifecycleKind.RETRIED: _RETRIED,
    LifecycleKind.SUCCEEDED: _TERMINAL,
    LifecycleKind.FAILED: _TERMINAL,
    LifecycleKind.REVOKED: _TERMINAL,
    LifecycleKind.CANCELLED: _TERMINAL,
    LifecycleKind.EXPIRED: _TERMINAL,
    LifecycleKind.REJECTED: _TERMINAL,
    LifecycleKind.SKIPPED: _TERMINAL,
    LifecycleKind.LOCKED: _TERMINAL,
    LifecycleKind.DEAD_LETTERED: _AFTERLIFE,
}

#: Task states after which a task no longer runs (dead-lettered included).
#: Most events (and most tasks) one retention write deletes.
PURGE_CHUNK: Final = 5000
FINISHED_KINDS: Final = frozenset(k for k, rank in STATE_RANK.items() if rank >= _TERMINAL)

#: Postgres keeps events in one partition per UTC day of ``stored_at`` (epoch seconds), made
#: this many days ahead of the clock so that a day's first event never waits for its partition.
DAY: Final = 86400
PARTITION_DAYS_AHEAD: Final = 2
#: How long partition upkeep waits for a lock on the events table before trying next time.
PARTITION_LOCK_TIMEOUT: Final = "2s"


def partition_name(day: int) -> str:
    """``events_20261207``: the partition of the UTC day ``day`` days after the epoch."""
    return f"events_{dt.datetime.fromtimestamp(day * DAY, dt.timezone.utc):%Y%m%d}"


def partition_day(name: str) -> int:
    """The day (since the epoch) of a partition named by ``partition_name``."""
    date = dt.datetime.strptime(name.removeprefix("events_"), "%Y%m%d").replace(
        tzinfo=dt.timezone.utc
    )
    return int(date.timestamp()) // DAY


#: The columns of the events and tasks tables, in the order the store writes them (benches that
#: measure raw inserts of the same rows use them too).
EVENT_COLUMNS: Final = (
    "agent_instance, seq, position, stored_at, app, kind, at, engine, task_id, task_name, "
    "queue, worker, args, kwargs, result, runtime, retries, exception, message, traceback, "
    "fire_id, extra"
)

# Whether the incoming event's state replaces the stored one. From one agent, its sequence
# numbers order its events exactly; across agents, the rank decides (a late ``started`` never
# overwrites ``succeeded``), and after ``retried`` a new attempt may begin.
_WINS: Final = f"""(CASE WHEN excluded.state_agent = tasks.state_agent
        THEN excluded.state_seq > tasks.state_seq
        ELSE (excluded.state_rank > tasks.state_rank
              OR (tasks.state_rank = {_RETRIED} AND excluded.state_rank < {_RETRIED}))
    END)"""


def _latest(column: str) -> str:
    return (
        f"{column} = CASE WHEN {_WINS} THEN COALESCE(excluded.{column}, tasks.{column}) "
        f"ELSE COALESCE(tasks.{column}, excluded.{column}) END"
    )


def _state(column: str) -> str:
    return f"{column} = CASE WHEN {_WINS} THEN excluded.{column} ELSE tasks.{column} END"


TASK_COLUMNS: Final = (
    "engine, task_id, name, state, state_rank, state_agent, state_seq, app, queue, worker, "
    "enqueued_at, received_at, started_at, finished_at, runtime, retries, exception, message, "
    "traceback, fire_id, updated_at"
)
_TASK_ON_CONFLICT: Final = f"""
ON CONFLICT (engine, task_id) DO UPDATE SET
    {_latest("name")}, {_latest("app")}, {_latest("queue")}, {_latest("worker")},
    {_latest("enqueued_at")}, {_latest("received_at")}, {_latest("started_at")},
    {_latest("finished_at")}, {_latest("runtime")}, {_latest("retries")},
    {_latest("exception")}, {_latest("message")}, {_latest("traceback")}, {_latest("fire_id")},
    updated_at = excluded.updated_at,
    {_state("state")}, {_state("state_rank")}, {_state("state_agent")}, {_state("state_seq")}
"""
_TASK_UPSERT: Final = (
    f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({', '.join('?' * 21)}) {_TASK_ON_CONFLICT}"
)
_EVENT_INSERT: Final = (
    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({', '.join('?' * 22)}) "
    "ON CONFLICT (agent_instance, seq) DO NOTHING"
)

# Postgres types of the columns, in the order of EVENT_COLUMNS and TASK_COLUMNS: as arrays for
# the task upserts and a resent batch's events (one statement: the rows travel as one array per
# column and ``unnest`` turns them back into rows), as scalars for COPY.
_TEXT, _BIGINT, _INT, _FLOAT = "text[]", "bigint[]", "integer[]", "double precision[]"
EVENT_TYPES: Final = (
    *(_TEXT, _BIGINT, _BIGINT, _FLOAT, _TEXT, _TEXT, _FLOAT),
    *[_TEXT] * 8,
    *(_FLOAT, _INT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT),
)
TASK_TYPES: Final = (
    *(_TEXT, _TEXT, _TEXT, _TEXT, _INT, _TEXT, _BIGINT, _TEXT, _TEXT, _TEXT),
    *[_FLOAT] * 5,
    *(_INT, _TEXT, _TEXT, _TEXT, _TEXT, _FLOAT),
)


# Postgres partitions events by day, so (agent_instance, seq) cannot be a unique key (a key
# must hold the partition's column); a resent batch skips the rows already stored instead, and
# the event-position lock its writer holds keeps another brain from storing them meanwhile.
_PG_EVENT_INSERT: Final = (
    f"INSERT INTO events ({EVENT_COLUMNS}) SELECT * FROM {unnest(EVENT_TYPES)} AS batch "
    f"({EVENT_COLUMNS}) WHERE NOT EXISTS (SELECT 1 FROM events stored WHERE "
    "stored.agent_instance = batch.agent_instance AND stored.seq = batch.seq)"
)
_PG_ANY_STORED: Final = (
    "SELECT 1 FROM events WHERE agent_instance = %s AND seq BETWEEN %s AND %s LIMIT 1"
)
_PG_TASK_UPSERT: Final = (
    f"INSERT INTO tasks ({TASK_COLUMNS}) SELECT * FROM {unnest(TASK_TYPES)} {_TASK_ON_CONFLICT}"
)
# A batch's folded task rows (``_folded``): each applied over a stored row only where its first
# row would replace the stored state (then every later one would), and inserted where no row is
# stored; each statement names the rows it wrote.
_RANK, _SEQ = 4, 6
_LATEST_COLUMNS: Final = (2, *range(7, 20))
_PG_TASK_FOLD_UPDATE: Final = (
    "UPDATE tasks SET "
    + ", ".join(
        f"{name} = COALESCE(v.{name}, tasks.{name})"
        for name in (TASK_COLUMNS.split(", ")[i] for i in _LATEST_COLUMNS)
    )
    + ", updated_at = v.updated_at, state = v.state, state_rank = v.state_rank, "
    "state_agent = v.state_agent, state_seq = v.state_seq "
    f"FROM {unnest((*TASK_TYPES, _INT, _BIGINT))} AS v({TASK_COLUMNS}, first_rank, first_seq) "
    "WHERE tasks.engine = v.engine AND tasks.task_id = v.task_id AND CASE WHEN "
    "v.state_agent = tasks.state_agent THEN v.first_seq > tasks.state_seq ELSE "
    f"(v.first_rank > tasks.state_rank OR (tasks.state_rank = {_RETRIED} "
    f"AND v.first_rank < {_RETRIED})) END RETURNING tasks.engine, tasks.task_id"
)
_PG_TASK_FOLD_INSERT: Final = (
    f"INSERT INTO tasks ({TASK_COLUMNS}) SELECT * FROM {unnest(TASK_TYPES)} "
    "ON CONFLICT (engine, task_id) DO NOTHING RETURNING engine, task_id"
)
_EVENT_COPY_TYPES: Final = tuple(t.removesuffix("[]") for t in EVENT_TYPES)
_EVENT_TEXT: Final = tuple(i for i, t in enumerate(EVENT_TYPES) if t == _TEXT)
_TASK_TEXT: Final = tuple(i for i, t in enumerate(TASK_TYPES) if t == _TEXT)
# The state columns come last: SQLite and Postgres both evaluate every SET expression against
# the row as it was before the update, so their order does not change the result; keeping them
# last only makes that easy to see.


class EventStore(StoreBase):
    def store_events(
        self, agent_instance: str, app: str, events: Sequence[Event], stored_at: float
    ) -> int:
        """Store a batch; events already stored (same agent instance and seq) are skipped.

        Returns how many were new. Also brings each task's latest state up to date.
        """
        self.conn.lock_event_positions()
        row = self.conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        position = int(row[0])
        event_rows = [
            (
                agent_instance,
                e.seq,
                position + i,
                stored_at,
                app,
                e.kind.value,
                e.at,
                e.engine,
                e.task_id,
                e.task_name,
                e.queue,
                e.worker,
                e.args,
                e.kwargs,
                e.result,
                e.runtime,
                e.retries,
                e.exception,
                e.message,
                e.traceback,
                e.fire_id,
                json.dumps(e.extra) if e.extra else None,
            )
            for i, e in enumerate(events, start=1)
        ]
        task_rows = [_task_row(agent_instance, app, e, stored_at) for e in events]
        if self.dialect == POSTGRES:
            return _pg_store_events(self.conn, event_rows, task_rows)
        stored = self.conn.executemany(_EVENT_INSERT, event_rows)
        self.conn.executemany(_TASK_UPSERT, task_rows)
        return stored

    def purge(self, cutoff: float, limit: int = PURGE_CHUNK) -> tuple[int, int]:
        """Delete up to ``limit`` events stored before ``cutoff`` and up to ``limit`` tasks not
        updated since; return how many of each went (the caller repeats while a count reaches
        ``limit``: each chunk is one short write, so event inserts never wait behind a whole
        purge). A fire keeps its task's final state first (``task_outcome``), so its history,
        its schedule's health and overlap decisions still know the task finished."""
        final = tuple(sorted(k.value for k in FINISHED_KINDS))
        finished = ", ".join("?" * len(final))
        chunk = (
            "SELECT engine, task_id, fire_id, state FROM tasks WHERE updated_at < ? "
            "ORDER BY updated_at, engine, task_id LIMIT ?"
        )
        self.conn.execute(
            "UPDATE fires SET task_outcome = (SELECT t.state FROM tasks t WHERE "
            "t.fire_id = fires.fire_id AND t.engine = fires.engine) WHERE task_outcome IS NULL "
            f"AND fire_id IN (SELECT c.fire_id FROM ({chunk}) c WHERE c.fire_id IS NOT NULL "
            f"AND c.state IN ({finished}))",
            (cutoff, limit, *final),
        )
        tasks = self.conn.execute(
            f"DELETE FROM tasks WHERE (engine, task_id) IN (SELECT c.engine, c.task_id FROM "
            f"({chunk}) c)",
            (cutoff, limit),
        ).rowcount
        # On Postgres, events in a day's partition go with it (``drop_event_partitions``);
        # only those in the default partition are deleted row by row.
        table = "events_default" if self.dialect == POSTGRES else "events"
        events = self.conn.execute(
            f"DELETE FROM {table} WHERE position IN (SELECT position FROM {table} "
            "WHERE stored_at < ? LIMIT ?)",
            (cutoff, limit),
        ).rowcount
        return max(events, 0), max(tasks, 0)

    def ensure_event_partitions(self, now: float) -> list[str]:
        """Postgres: make the events partition of each UTC day from today to
        ``PARTITION_DAYS_AHEAD`` days ahead, and of each day the default partition holds rows
        of (after the upgrade that partitioned the table, or from a brain whose clock was far
        off), moving those rows into it; return the partitions made. SQLite: nothing to do.

        A partition is made beside the table, filled, then attached: attaching takes a lock
        that lets other brains go on inserting, where ``CREATE TABLE ... PARTITION OF`` would
        stop them. Brains making partitions at once take turns (an advisory lock)."""
        if self.dialect != POSTGRES:
            return []
        self.lock_for_transaction(EVENT_PARTITIONS_LOCK)
        existing = set(self.event_partitions())
        stranded = self.conn.execute(
            "SELECT DISTINCT FLOOR(stored_at / ?) FROM events_default", (DAY,)
        ).fetchall()
        today = int(now // DAY)
        days = {*range(today, today + PARTITION_DAYS_AHEAD + 1), *(int(r[0]) for r in stranded)}
        made = []
        with self._lock_timeout():
            for day in sorted(days):
                name = partition_name(day)
                if name in existing:
                    continue
                low, high = day * DAY, (day + 1) * DAY
                self.conn.execute(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS)")
                self.conn.execute(
                    f"WITH moved AS (DELETE FROM events_default WHERE stored_at >= ? AND "
                    f"stored_at < ? RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                    (low, high),
                )
                self.conn.execute(
                    f"ALTER TABLE events ATTACH PARTITION {name} "
                    f"FOR VALUES FROM ({low!r}) TO ({high!r})"
                )
                made.append(name)
        return made

    def drop_event_partitions(self, cutoff: float) -> tuple[list[str], int]:
        """Postgres: drop the events partitions of the days that ended at or before
        ``cutoff``; return their names and about how many events they held (the planner's
        count, not a scan: exact counts of a day of events would stall the writer). SQLite:
        nothing to do, ``purge`` deletes rows."""
        if self.dialect != POSTGRES:
            return [], 0
        ended = [
            name for name in self.event_partitions() if (partition_day(name) + 1) * DAY <= cutoff
        ]
        if not ended:
            return [], 0
        marks = ", ".join("?" * len(ended))
        row = self.conn.execute(
            f"SELECT COALESCE(SUM(GREATEST(reltuples, 0)), 0) FROM pg_class WHERE relname IN "
            f"({marks})",
            ended,
        ).fetchone()
        with self._lock_timeout():
            for name in ended:
                self.conn.execute(f"DROP TABLE {name}")
        return ended, int(row[0])

    def event_partitions(self) -> list[str]:
        """The names of the events table's day partitions (Postgres), oldest first."""
        rows = self.conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'events'::regclass AND c.relname <> 'events_default'"
        ).fetchall()
        return sorted(str(r[0]) for r in rows)

    @contextmanager
    def _lock_timeout(self) -> Iterator[None]:
        """Give up on a table lock after ``PARTITION_LOCK_TIMEOUT`` (a long read of the events
        would otherwise hold every insert queued behind the waiting DDL); the next retention
        pass tries again. The setting is put back for the rest of the transaction (a failure
        rolls it back with the statement's transaction or savepoint)."""
        before = self.conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0]
        self.conn.execute("SELECT set_config('lock_timeout', ?, true)", (PARTITION_LOCK_TIMEOUT,))
        yield
        self.conn.execute("SELECT set_config('lock_timeout', ?, true)", (before,))

    def task_events(self, task_id: str, engine: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE task_id = ?"
        params: list[Any] = [task_id]
        if engine is not None:
            sql += " AND engine = ?"
            params.append(engine)
        rows = self.conn.execute(sql + " ORDER BY position", params).fetchall()
        return [_event_dict(r) for r in rows]

    def events_after(
        self,
        position: int,
        limit: int = 1000,
        apps: Sequence[str] | None = None,
        *,
        up_to: int | None = None,
    ) -> list[dict[str, Any]]:
        """Events after ``position`` (and at or before ``up_to``); ``apps`` (when given) keeps
        only those apps' events."""
        within, params = _apps_clause(apps)
        if up_to is not None:
            within += " AND position <= ?"
            params.append(up_to)
        rows = self.conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE position > ?{within} "
            "ORDER BY position LIMIT ?",
            (position, *params, limit),
        ).fetchall()
        return [_event_dict(r) for r in rows]

    def latest_position(self) -> int:
        """The position of the newest stored event (0 when there is none)."""
        row = self.conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return int(row[0])

    def count_events(
        self,
        *,
        task_id_prefix: str | None = None,
        app: str | None = None,
        engine: str | None = None,
    ) -> int:
        """How many events are stored (those matching every filter given)."""
        where, params = _event_filter(task_id_prefix, app, engine, None)
        return int(self.conn.execute(f"SELECT COUNT(*) FROM events{where}", params).fetchone()[0])

    def events(
        self,
        *,
        task_id_prefix: str | None = None,
        app: str | None = None,
        engine: str | None = None,
        kinds: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored events matching every filter given, by position (for tests, benchmarks and
        soak runs: what they read from the table directly before)."""
        where, params = _event_filter(task_id_prefix, app, engine, kinds)
        sql = f"SELECT {EVENT_COLUMNS} FROM events{where} ORDER BY position"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_event_dict(r) for r in self.conn.execute(sql, params).fetchall()]

    def events_by_agent(self, app: str | None = None) -> dict[str, int]:
        """How many events each agent instance stored (of ``app`` only, when given)."""
        where, params = _event_filter(None, app, None, None)
        rows = self.conn.execute(
            f"SELECT agent_instance, COUNT(*) FROM events{where} GROUP BY agent_instance", params
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def distinct_task_events(self, engine: str) -> int:
        """How many distinct (task id, kind) pairs ``engine``'s events hold (a soak run counts
        events stored twice with it)."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT task_id, kind FROM events WHERE engine = ?) d",
            (engine,),
        ).fetchone()
        return int(row[0])

    def tasks(
        self,
        *,
        state: str | None = None,
        name: str | None = None,
        engine: str | None = None,
        app: str | None = None,
        task_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        cursor: str | None = None,
        limit: int = 100,
        apps: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Latest state per task, most recently updated first (then by engine and task id,
        descending: a total order); ``since <= updated_at < until`` when given; ``cursor``
        (a ``next_cursor``) starts after that row; ``apps`` (when given) keeps only those
        apps' tasks. Raises ``CursorError`` for a malformed cursor."""
        if apps is not None and app is not None:
            if app not in apps:
                return []
            apps = None  # the app filter is narrower than the scope
        if apps is not None and not apps:
            return []
        clauses: list[str] = []
        params: list[Any] = []
        for sql, value in (
            ("state = ?", state),
            ("name = ?", name),
            ("engine = ?", engine),
            ("app = ?", app),
            ("task_id = ?", task_id),
            ("updated_at >= ?", since),
            ("updated_at < ?", until),
        ):
            if value is not None:
                clauses.append(sql)
                params.append(value)
        if cursor is not None:
            after, after_params = keyset(
                KEYS["tasks"], decode_cursor("tasks", cursor), descending=True
            )
            clauses.append(after)
            params += after_params
        if apps is not None and len(apps) > _MERGED_APPS:
            clauses.append(f"app IN ({', '.join('?' for _ in apps)})")
            params += apps
            apps = None
        if apps is None:
            sql = f"{_TASK_SELECT}{_where(clauses)}{_TASK_ORDER}"
            params.append(limit)
        else:
            # One index range per app, merged: ``app IN (...)`` would read every row of those
            # apps and sort them (SQLite has no statistics to choose otherwise).
            branch = f"{_TASK_SELECT}{_where([*clauses, 'app = ?'])}{_TASK_ORDER}"
            sql = " UNION ALL ".join(
                f"SELECT * FROM ({branch}) AS scope{i}" for i in range(len(apps))
            )
            sql += _TASK_ORDER
            params = [v for a in apps for v in (*params, a, limit)] + [limit]
        return [dict(r) for r in self.conn.execute(sql, params).fetchall()]


def _where(clauses: Sequence[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


#: A scope of up to this many apps reads one index range per app (then merges them).
_MERGED_APPS: Final = 50
_TASK_SELECT: Final = (
    "SELECT engine, task_id, name, state, app, queue, worker, enqueued_at, received_at, "
    "started_at, finished_at, runtime, retries, exception, message, traceback, fire_id, "
    "updated_at FROM tasks"
)
_TASK_ORDER: Final = " ORDER BY updated_at DESC, engine DESC, task_id DESC LIMIT ?"


def _pg_store_events(
    conn: Connection, event_rows: list[tuple[Any, ...]], task_rows: list[tuple[Any, ...]]
) -> int:
    """A batch's events in Postgres's binary COPY format (each value dumped by psycopg's C
    code, no statement per row), unless some were stored before (a resend after a reconnect,
    rare: then one ``INSERT ... ON CONFLICT DO NOTHING``); its tasks in one upsert per round,
    rows as ``unnest``ed arrays. The caller holds the event-position lock, so no other brain
    stores events between the check and the COPY. (Tasks need ``ON CONFLICT``, which COPY
    lacks; a temporary staging table for them was measured slower: its dead rows, never
    vacuumed, make each move cost more than the last.)"""
    assert isinstance(conn, PostgresConnection)
    if not event_rows:
        return 0
    rows = without_nul(event_rows, _EVENT_TEXT)
    seqs = [row[1] for row in rows]
    resent = conn.execute_native(_PG_ANY_STORED, (rows[0][0], min(seqs), max(seqs)))
    if resent.fetchone() is None:
        stored = conn.copy_in("events", EVENT_COLUMNS, _EVENT_COPY_TYPES, rows)
    else:
        stored = conn.execute_native(_PG_EVENT_INSERT, columns(rows)).rowcount
    folded, rest = _folded(without_nul(task_rows, _TASK_TEXT))
    if folded:
        rest += _apply_folded(conn, folded)
    # One statement cannot update a row twice, so a task seen several times in the batch (and
    # not folded) is upserted in rounds: its first event in the first round, its second in the
    # next...
    for round_rows in _rounds(rest):
        conn.execute_native(_PG_TASK_UPSERT, columns(round_rows))
    return max(int(stored), 0)


class _Folded(NamedTuple):
    """A task's rows of one batch as the one row that upserting them one by one would leave,
    when that can be known without reading the stored row (see ``_folded``)."""

    row: tuple[Any, ...]
    first_rank: int
    first_seq: int
    rows: list[Sequence[Any]]  # as given, for when the fold does not apply


def _folded(rows: Sequence[Sequence[Any]]) -> tuple[list[_Folded], list[Sequence[Any]]]:
    """The batch's task rows as (folds, the rest). A worker's batch usually holds a task's
    ``received``, ``started`` and ``succeeded``; upserted one by one, each is a new version of
    the row in every index of ``tasks`` (measured: half the batch's time). Folded, they are one.

    Whether the first row replaces the stored state decides it: if it does, the state is then
    the batch's agent's, and each later row, of the same agent with a higher sequence number,
    replaces it in turn; with no row stored, the first is inserted and the same follows. The
    fold holds each column's last value given and the last row's state, which is what the rows
    leave in both cases. ``_apply_folded`` applies a fold only there; where the stored state
    would keep its place against the first row, the rows go one by one, as before."""
    keys = list(map(operator.itemgetter(0, 1), rows))
    if len(set(keys)) == len(keys):  # each row a task of its own (checked in C): nothing folds
        return [], list(rows)
    by_task: dict[tuple[Any, Any], list[Sequence[Any]]] = {}
    for key, row in zip(keys, rows, strict=True):
        by_task.setdefault(key, []).append(row)
    folds: list[_Folded] = []
    rest: list[Sequence[Any]] = []
    for task_rows in by_task.values():
        if len(task_rows) == 1 or not _foldable(task_rows):
            rest += task_rows
            continue
        last = task_rows[-1]
        row = list(last)
        for i in _LATEST_COLUMNS:
            row[i] = next((r[i] for r in reversed(task_rows) if r[i] is not None), None)
        first = task_rows[0]
        folds.append(_Folded(tuple(row), first[_RANK], first[_SEQ], task_rows))
    return folds, rest


def _foldable(rows: Sequence[Sequence[Any]]) -> bool:
    """The rows in the order their agent numbered them (a batch off the wire always is; a
    batch is one agent's)."""
    return all(earlier[_SEQ] < later[_SEQ] for earlier, later in itertools.pairwise(rows))


def _apply_folded(conn: PostgresConnection, folds: list[_Folded]) -> list[Sequence[Any]]:
    """Apply each fold where it is exact: over a stored row its first row would replace (all
    its rows would), and where no row is stored. Returns the rows of the others (a stored
    state the first row would not replace), to upsert one by one. The event-position lock the
    caller holds keeps other brains' event writes out between the statements."""
    updated = conn.execute_native(
        _PG_TASK_FOLD_UPDATE,
        columns([(*fold.row, fold.first_rank, fold.first_seq) for fold in folds]),
    ).fetchall()
    done = {(row[0], row[1]) for row in updated}
    left = [fold for fold in folds if (fold.row[0], fold.row[1]) not in done]
    if not left:
        return []
    inserted = conn.execute_native(
        _PG_TASK_FOLD_INSERT, columns([fold.row for fold in left])
    ).fetchall()
    done = {(row[0], row[1]) for row in inserted}
    return [row for fold in left if (fold.row[0], fold.row[1]) not in done for row in fold.rows]


def _rounds(rows: Sequence[Sequence[Any]]) -> list[list[Sequence[Any]]]:
    seen: dict[tuple[Any, Any], int] = {}
    rounds: list[list[Sequence[Any]]] = []
    for row in rows:
        key = (row[0], row[1])
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(row)
    return rounds


def _task_row(agent_instance: str, app: str, e: Event, now: float) -> tuple[Any, ...]:
    kind = e.kind
    return (
        e.engine,
        e.task_id,
        e.task_name,
        kind.value,
        STATE_RANK[kind],
        agent_instance,
        e.seq,
        app,
        e.queue,
        e.worker,
        e.at if kind in (LifecycleKind.ENQUEUED, LifecycleKind.SCHEDULED) else None,
        e.at if kind is LifecycleKind.RECEIVED else None,
        e.at if kind is LifecycleKind.STARTED else None,
        e.at if kind in FINISHED_KINDS else None,
        e.runtime,
        e.retries,
        e.exception,
        e.message,
        e.traceback,
        e.fire_id,
        now,
    )


def _event_filter(
    task_id_prefix: str | None, app: str | None, engine: str | None, kinds: Sequence[str] | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if task_id_prefix is not None:
        # A range, not LIKE: a prefix may hold % or _.
        clauses.append("task_id >= ? AND task_id < ?")
        params += [task_id_prefix, task_id_prefix + "\U0010ffff"]
    for sql, value in (("app = ?", app), ("engine = ?", engine)):
        if value is not None:
            clauses.append(sql)
            params.append(value)
    if kinds is not None:
        clauses.append(f"kind IN ({', '.join('?' * len(kinds))})" if kinds else "1 = 0")
        params.extend(kinds)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _event_dict(row: Any) -> dict[str, Any]:
    item = dict(row)
    item["extra"] = json.loads(item["extra"]) if item["extra"] else {}
    return item


def _apps_clause(apps: Sequence[str] | None) -> tuple[str, list[Any]]:
    """``AND app IN (...)`` for a scope's apps (none: nothing matches), or nothing."""
    if apps is None:
        return "", []
    if not apps:
        return " AND 1 = 0", []
    return f" AND app IN ({', '.join('?' for _ in apps)})", list(apps)
