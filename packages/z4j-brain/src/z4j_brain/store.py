"""The brain's store: what agents reported (events, latest task states, inventories), the
agents themselves, tokens and commands, in SQLite or Postgres.

Owns every SQL statement the brain runs besides the schema (see ``migrations``). A ``Store`` wraps
one connection and is used by one thread: the gateway's writes go through ``StoreWriter`` (one
thread, one connection, group commit); reads open their own ``Store`` on their own thread. Write
methods never commit: the caller wraps them in ``transaction()``. Never logs event contents or
token hashes. SQL is portable between SQLite and Postgres (``ON CONFLICT``, no dialect-only
functions), except the Postgres fast path for event batches (``unnest``); driver differences live
in ``db``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from z4j_brain.db import POSTGRES, Connection, IntegrityError, connect
from z4j_brain.migrations import LATEST_VERSION, MIGRATIONS
from z4j_core.wire.frames import Event, Hello, Inventory, LifecycleKind

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

_FINISHED_KINDS: Final = frozenset(k for k, rank in STATE_RANK.items() if rank >= _TERMINAL)

_EVENT_COLUMNS: Final = (
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


_TASK_COLUMNS: Final = (
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
    f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES ({', '.join('?' * 21)}) {_TASK_ON_CONFLICT}"
)
_EVENT_INSERT: Final = (
    f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * 22)}) "
    "ON CONFLICT (agent_instance, seq) DO NOTHING"
)

# Postgres stores a whole batch in one statement per table: the rows travel as one array per
# column and ``unnest`` turns them back into rows (one round trip, one plan, however many rows).
_TEXT, _BIGINT, _INT, _FLOAT = "text[]", "bigint[]", "integer[]", "double precision[]"
# Column types in the order of _EVENT_COLUMNS and _TASK_COLUMNS.
_EVENT_TYPES: Final = (
    *(_TEXT, _BIGINT, _BIGINT, _FLOAT, _TEXT, _TEXT, _FLOAT),
    *[_TEXT] * 8,
    *(_FLOAT, _INT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT),
)
_TASK_TYPES: Final = (
    *(_TEXT, _TEXT, _TEXT, _TEXT, _INT, _TEXT, _BIGINT, _TEXT, _TEXT, _TEXT),
    *[_FLOAT] * 5,
    *(_INT, _TEXT, _TEXT, _TEXT, _TEXT, _FLOAT),
)


def _unnest(types: Sequence[str]) -> str:
    return "SELECT * FROM unnest(" + ", ".join(f"%b::{t}" for t in types) + ")"


_PG_EVENT_INSERT: Final = (
    f"INSERT INTO events ({_EVENT_COLUMNS}) {_unnest(_EVENT_TYPES)} "
    "ON CONFLICT (agent_instance, seq) DO NOTHING"
)
_PG_TASK_UPSERT: Final = (
    f"INSERT INTO tasks ({_TASK_COLUMNS}) {_unnest(_TASK_TYPES)} {_TASK_ON_CONFLICT}"
)
# The state columns come last: SQLite and Postgres both evaluate every SET expression against
# the row as it was before the update, so their order does not change the result; keeping them
# last only makes that easy to see.


class StoreError(Exception):
    """The store cannot do what was asked (for example a token name that already exists)."""


@dataclass(frozen=True)
class TokenRow:
    name: str
    token_hash: str
    labels: dict[str, str]
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class Store:
    """One connection's view of the store. Not thread-safe: one thread per ``Store``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect

    @classmethod
    def open(cls, target: str | Path, *, migrate: bool = True, shared: bool = False) -> Store:
        """Open a SQLite file or a ``postgresql://`` URL (and migrate it, unless told not to)."""
        store = cls(connect(target, shared=shared))
        if migrate:
            try:
                store.migrate()
            except BaseException:
                store.close()
                raise
        return store

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.begin()
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.rollback()
            raise
        self.conn.commit()

    # -- schema --------------------------------------------------------------------------------

    def schema_version(self) -> int:
        if not self.conn.table_exists("schema_version"):
            return 0
        row = self.conn.execute("SELECT version FROM schema_version").fetchone()
        return 0 if row is None else int(row[0])

    def migrate(self) -> list[int]:
        """Apply every migration above the current version, each in its own transaction.

        Returns the versions applied (empty when the schema is current). Refuses a database
        whose schema is newer than this brain knows.
        """
        applied: list[int] = []
        with self.conn.migration_lock():
            with self.transaction():
                self.conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                )
                if self.conn.execute("SELECT version FROM schema_version").fetchone() is None:
                    self.conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            current = self.schema_version()
            if current > LATEST_VERSION:
                raise StoreError(
                    f"the database schema is version {current}, newer than this brain knows "
                    f"({LATEST_VERSION}): upgrade z4j-brain"
                )
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                with self.transaction():
                    # Re-read inside the write lock: another process may have migrated meanwhile.
                    if self.schema_version() >= version:
                        continue
                    for statement in statements:
                        self.conn.execute(statement)
                    self.conn.execute("UPDATE schema_version SET version = ?", (version,))
                applied.append(version)
            return applied

    # -- events and tasks ----------------------------------------------------------------------

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

    def purge(self, cutoff: float) -> tuple[int, int]:
        """Delete events stored before ``cutoff`` and tasks not updated since; return counts."""
        events = self.conn.execute("DELETE FROM events WHERE stored_at < ?", (cutoff,)).rowcount
        tasks = self.conn.execute("DELETE FROM tasks WHERE updated_at < ?", (cutoff,)).rowcount
        return events, tasks

    def task_events(self, task_id: str, engine: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE task_id = ?"
        params: list[Any] = [task_id]
        if engine is not None:
            sql += " AND engine = ?"
            params.append(engine)
        rows = self.conn.execute(sql + " ORDER BY position", params).fetchall()
        return [_event_dict(r) for r in rows]

    def events_after(self, position: int, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
            (position, limit),
        ).fetchall()
        return [_event_dict(r) for r in rows]

    def latest_position(self) -> int:
        """The position of the newest stored event (0 when there is none)."""
        row = self.conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return int(row[0])

    def count_events(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def tasks(
        self,
        *,
        state: str | None = None,
        name: str | None = None,
        engine: str | None = None,
        app: str | None = None,
        task_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("state", state),
            ("name", name),
            ("engine", engine),
            ("app", app),
            ("task_id", task_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(
            "SELECT engine, task_id, name, state, app, queue, worker, enqueued_at, received_at, "
            "started_at, finished_at, runtime, retries, exception, message, traceback, fire_id, "
            f"updated_at FROM tasks{where} ORDER BY updated_at DESC, task_id LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [dict(r) for r in rows]

    # -- agents and inventory ------------------------------------------------------------------

    def agent_connected(
        self,
        hello: Hello,
        labels: dict[str, str],
        token_name: str,
        session_id: str,
        now: float,
        *,
        brain_id: str | None = None,
    ) -> None:
        engines = json.dumps(
            [
                {
                    "name": e.name,
                    "version": e.version,
                    "capabilities": [c.value for c in e.capabilities],
                }
                for e in hello.engines
            ]
        )
        self.conn.execute(
            "INSERT INTO agents (agent_instance, token_name, app, host, pid, engines, labels, "
            "agent_version, session_id, connected, connected_at, last_seen_at, brain_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?) "
            "ON CONFLICT (agent_instance) DO UPDATE SET token_name = excluded.token_name, "
            "app = excluded.app, host = excluded.host, pid = excluded.pid, "
            "engines = excluded.engines, labels = excluded.labels, "
            "agent_version = excluded.agent_version, session_id = excluded.session_id, "
            "connected = 1, connected_at = excluded.connected_at, "
            "last_seen_at = excluded.last_seen_at, brain_id = excluded.brain_id",
            (
                hello.agent_instance,
                token_name,
                hello.app,
                hello.host,
                hello.pid,
                engines,
                json.dumps(labels, sort_keys=True),
                hello.agent_version,
                session_id,
                now,
                now,
                brain_id,
            ),
        )

    def agent_disconnected(self, agent_instance: str, session_id: str, now: float) -> None:
        """Mark the agent gone, unless a newer session of it has connected meanwhile."""
        self.conn.execute(
            "UPDATE agents SET connected = 0, last_seen_at = ? "
            "WHERE agent_instance = ? AND session_id = ?",
            (now, agent_instance, session_id),
        )

    def brain_alive(self, brain_id: str, host: str, pid: int, now: float) -> None:
        """Record that brain ``brain_id`` runs (at start, then every few seconds)."""
        self.conn.execute(
            "INSERT INTO brains (brain_id, host, pid, started_at, seen_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (brain_id) DO UPDATE SET seen_at = excluded.seen_at",
            (brain_id, host, pid, now, now),
        )

    def disconnect_orphans(self, stale_before: float, now: float) -> int:
        """Forget brains not seen since ``stale_before`` (killed ones) and mark the agents that
        were connected to no live brain disconnected; returns how many agents."""
        self.conn.execute("DELETE FROM brains WHERE seen_at < ?", (stale_before,))
        return int(
            self.conn.execute(
                "UPDATE agents SET connected = 0, last_seen_at = ? WHERE connected = 1 AND "
                "(brain_id IS NULL OR brain_id NOT IN (SELECT brain_id FROM brains))",
                (now,),
            ).rowcount
        )

    def brain_gone(self, brain_id: str, now: float) -> None:
        """A clean stop: the brain's row goes, its agents are disconnected."""
        self.conn.execute("DELETE FROM brains WHERE brain_id = ?", (brain_id,))
        self.conn.execute(
            "UPDATE agents SET connected = 0, last_seen_at = ? "
            "WHERE brain_id = ? AND connected = 1",
            (now, brain_id),
        )

    def agent_dropped(self, agent_instance: str, total: int, reason: str, now: float) -> None:
        # Reports are cumulative per agent instance: never let a late one lower the count.
        self.conn.execute(
            "UPDATE agents SET dropped_total = CASE WHEN ? > dropped_total THEN ? "
            "ELSE dropped_total END, dropped_reason = ?, last_seen_at = ? "
            "WHERE agent_instance = ?",
            (total, total, reason, now, agent_instance),
        )

    def agent_seen(self, agent_instance: str, now: float) -> None:
        self.conn.execute(
            "UPDATE agents SET last_seen_at = ? WHERE agent_instance = ?", (now, agent_instance)
        )

    def agents(
        self, connected_only: bool = False, seen_since: float | None = None
    ) -> list[dict[str, Any]]:
        """Agents, most recently seen first; ``seen_since`` keeps those connected or seen at or
        after that time."""
        where, params = "", []
        if connected_only:
            where = " WHERE connected = 1"
        elif seen_since is not None:
            where, params = " WHERE connected = 1 OR last_seen_at >= ?", [seen_since]
        rows = self.conn.execute(
            "SELECT agent_instance, token_name, app, host, pid, engines, labels, agent_version, "
            "session_id, connected, connected_at, last_seen_at, dropped_total, dropped_reason "
            f"FROM agents{where} ORDER BY last_seen_at DESC, agent_instance",
            params,
        ).fetchall()
        result = []
        for r in rows:
            item = dict(r)
            item["engines"] = json.loads(item["engines"])
            item["labels"] = json.loads(item["labels"])
            item["connected"] = bool(item["connected"])
            result.append(item)
        return result

    def dropped_events_total(self) -> int:
        """Events the agents reported dropping, summed over every agent instance known."""
        row = self.conn.execute("SELECT COALESCE(SUM(dropped_total), 0) FROM agents").fetchone()
        return int(row[0])

    def replace_inventory(self, agent_instance: str, inventory: Inventory, now: float) -> None:
        self.conn.execute(
            "INSERT INTO inventory (agent_instance, engine, app, tasks, schedules, queues, "
            "workers, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (agent_instance, engine, app) DO UPDATE SET tasks = excluded.tasks, "
            "schedules = excluded.schedules, queues = excluded.queues, "
            "workers = excluded.workers, updated_at = excluded.updated_at",
            (
                agent_instance,
                inventory.engine,
                inventory.app,
                _json(inventory.tasks),
                _json(inventory.schedules),
                json.dumps(inventory.queues),
                json.dumps(inventory.workers),
                now,
            ),
        )

    def inventory(self, agent_instance: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT agent_instance, engine, app, tasks, schedules, queues, workers, updated_at "
            "FROM inventory"
        )
        params: list[Any] = []
        if agent_instance is not None:
            sql += " WHERE agent_instance = ?"
            params.append(agent_instance)
        rows = self.conn.execute(sql + " ORDER BY agent_instance, engine, app", params)
        result = []
        for r in rows.fetchall():
            item = dict(r)
            for key in ("tasks", "schedules", "queues", "workers"):
                item[key] = json.loads(item[key])
            result.append(item)
        return result

    # -- commands ------------------------------------------------------------------------------

    def insert_command(
        self,
        *,
        command_id: str,
        agent_instance: str,
        kind: str,
        engine: str,
        app: str,
        task: str,
        payload: dict[str, Any],
        fire_id: str | None,
        created_at: float,
        deadline_at: float,
    ) -> None:
        self.conn.execute(
            "INSERT INTO commands (command_id, agent_instance, kind, engine, app, task, payload, "
            "fire_id, status, created_at, deadline_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (
                command_id,
                agent_instance,
                kind,
                engine,
                app,
                task,
                json.dumps(payload, sort_keys=True),
                fire_id,
                created_at,
                deadline_at,
            ),
        )

    def answer_command(
        self, command_id: str, status: str, native_id: str | None, reason: str, now: float
    ) -> bool:
        """Record how a command ended; False if it was already answered. A late real answer
        replaces ``unknown`` (recorded when the deadline passed without one)."""
        cursor = self.conn.execute(
            "UPDATE commands SET status = ?, native_id = ?, reason = ?, answered_at = ? "
            "WHERE command_id = ? AND status IN ('pending', 'unknown')",
            (status, native_id, reason, now, command_id),
        )
        return cursor.rowcount == 1

    def command(self, command_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT command_id, agent_instance, kind, engine, app, task, payload, fire_id, "
            "status, native_id, reason, created_at, deadline_at, answered_at "
            "FROM commands WHERE command_id = ?",
            (command_id,),
        ).fetchone()
        if row is None:
            return None
        item = dict(row)
        item["payload"] = json.loads(item["payload"])
        return item

    # -- tokens --------------------------------------------------------------------------------

    def create_token(
        self,
        name: str,
        token_hash_hex: str,
        labels: dict[str, str],
        now: float,
        expires_at: float | None,
    ) -> None:
        try:
            self.conn.execute(
                "INSERT INTO tokens (name, token_hash, labels, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, token_hash_hex, json.dumps(labels, sort_keys=True), now, expires_at),
            )
        except IntegrityError:
            raise StoreError(
                f"a token named {name!r} already exists (names stay taken after revoke)"
            ) from None

    def revoke_token(self, name: str, now: float) -> bool:
        """Revoke ``name``; False if there is no such token. Revoking twice keeps the first time."""
        cursor = self.conn.execute(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ?", (now, name)
        )
        return cursor.rowcount == 1

    def token_rows(self) -> list[TokenRow]:
        rows = self.conn.execute(
            "SELECT name, token_hash, labels, created_at, expires_at, revoked_at FROM tokens "
            "ORDER BY name"
        ).fetchall()
        return [
            TokenRow(
                name=r["name"],
                token_hash=r["token_hash"],
                labels=json.loads(r["labels"]),
                created_at=r["created_at"],
                expires_at=r["expires_at"],
                revoked_at=r["revoked_at"],
            )
            for r in rows
        ]

    def admin_token_hash(self) -> str | None:
        row = self.conn.execute(
            "SELECT token_hash FROM admin_tokens WHERE name = 'admin'"
        ).fetchone()
        return None if row is None else str(row[0])

    def set_admin_token_hash(self, token_hash_hex: str, now: float) -> None:
        self.conn.execute(
            "INSERT INTO admin_tokens (name, token_hash, created_at) VALUES ('admin', ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, "
            "created_at = excluded.created_at",
            (token_hash_hex, now),
        )


def _pg_store_events(
    conn: Connection, event_rows: list[tuple[Any, ...]], task_rows: list[tuple[Any, ...]]
) -> int:
    from z4j_brain.db import PostgresConnection

    assert isinstance(conn, PostgresConnection)
    if not event_rows:
        return 0
    events = _without_nul(_columns(event_rows), _EVENT_TYPES)
    stored = conn.execute_native(_PG_EVENT_INSERT, events).rowcount
    # One statement cannot update a row twice, so a task seen several times in the batch is
    # upserted in rounds: its first event in the first round, its second in the next...
    for round_rows in _rounds(task_rows):
        conn.execute_native(_PG_TASK_UPSERT, _without_nul(_columns(round_rows), _TASK_TYPES))
    return max(int(stored), 0)


def _without_nul(columns: list[list[Any]], types: Sequence[str]) -> list[list[Any]]:
    """Postgres text cannot hold NUL characters (SQLite can): they become U+FFFD."""
    for column, kind in zip(columns, types, strict=True):
        if kind == _TEXT and any(v is not None and "\x00" in v for v in column):
            column[:] = [v.replace("\x00", "\ufffd") if v is not None else None for v in column]
    return columns


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


def _rounds(rows: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    seen: dict[tuple[Any, Any], int] = {}
    rounds: list[list[tuple[Any, ...]]] = []
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
        e.at if kind in _FINISHED_KINDS else None,
        e.runtime,
        e.retries,
        e.exception,
        e.message,
        e.traceback,
        e.fire_id,
        now,
    )


def _event_dict(row: Any) -> dict[str, Any]:
    item = dict(row)
    item["extra"] = json.loads(item["extra"]) if item["extra"] else {}
    return item


def _json(value: Any) -> str:
    import msgspec

    return msgspec.json.encode(value).decode("utf-8")
