"""The one place tests and benchmarks read a brain's tables directly.

Everything else reads the brain through its HTTP API (brainapi.py). What stays here is what the
API cannot answer cheaply: counts and windows over every row for a loss check at scale, read
while the brain is busy or down (a read over HTTP would load the brain being measured, and a
killed leader answers nothing). Each query is a named method, so that the brain's store
interface can take them over one by one. Read-only: nothing here writes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

POSTGRES_SCHEMES = ("postgres://", "postgresql://")

FIRE_COLUMNS = (
    "fire_id, schedule_id, kind, slot, due_at, state, native_id, created_at, sent_at, answered_at"
)


class BrainStore:
    """Read-only queries on one brain's store: its SQLite file or its Postgres URL alike.

    `database` is `BrainProcess.database`. Queries use `?` marks (turned into `%s` for
    Postgres). Keeps one connection when `keep_open` (a soak polls for minutes), else opens one
    per query.
    """

    def __init__(self, database: str, keep_open: bool = False) -> None:
        self.database = str(database)
        self.postgres = self.database.startswith(POSTGRES_SCHEMES)
        self._conn: Any = self._connect() if keep_open else None

    def _connect(self) -> Any:
        if self.postgres:
            import psycopg

            return psycopg.connect(self.database, autocommit=True)
        return sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.postgres:
            sql = sql.replace("?", "%s")
        if self._conn is not None:
            return [tuple(row) for row in self._conn.execute(sql, params).fetchall()]
        with contextlib.closing(self._connect()) as conn:
            return [tuple(row) for row in conn.execute(sql, params).fetchall()]

    def dicts(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        if self.postgres:
            sql = sql.replace("?", "%s")
        conn = self._conn if self._conn is not None else self._connect()
        try:
            cursor = conn.execute(sql, params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            if conn is not self._conn:
                conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- events ----------------------------------------------------------------------------------

    def count_events(self, task_prefix: str = "") -> int:
        """Events stored (whose task id starts with `task_prefix`)."""
        if not task_prefix:
            return int(self.rows("SELECT COUNT(*) FROM events")[0][0])
        sql = "SELECT COUNT(*) FROM events WHERE task_id LIKE ?"
        return int(self.rows(sql, (task_prefix + "%",))[0][0])

    def events_per_agent(self, app: str) -> dict[str, int]:
        """Events stored per agent instance of `app`."""
        sql = "SELECT agent_instance, COUNT(*) FROM events WHERE app = ? GROUP BY 1"
        return {str(agent): int(n) for agent, n in self.rows(sql, (app,))}

    def event_identities(self, engine: str) -> tuple[int, int]:
        """(rows, distinct task id and kind pairs) of `engine`'s events: a difference is an
        event stored twice."""
        sql = "SELECT COUNT(*), COUNT(DISTINCT task_id || '/' || kind) FROM events WHERE engine = ?"
        rows, distinct = self.rows(sql, (engine,))[0]
        return int(rows), int(distinct)

    def events_after(self, position: int, app: str, limit: int) -> list[tuple[Any, ...]]:
        """(position, task_id, kind) of `app`'s events stored after `position`, oldest first:
        read while it is kept, what a retention purge deletes later is still counted."""
        sql = (
            "SELECT position, task_id, kind FROM events WHERE position > ? AND app = ? "
            "ORDER BY position LIMIT ?"
        )
        return self.rows(sql, (position, app, limit))

    def disk_bytes(self) -> tuple[int, int]:
        """(the whole database, the events table with its indexes) on disk, in bytes."""
        if self.postgres:
            sql = "SELECT pg_database_size(current_database()), pg_total_relation_size('events')"
            database, events = self.rows(sql)[0]
            return int(database), int(events)
        size = Path(self.database).stat().st_size
        return size, size

    def task_event_counts(self, task_prefix: str) -> Counter[str]:
        """Rows stored per task id starting with `task_prefix` (a loss and double check)."""
        sql = "SELECT task_id FROM events WHERE task_id LIKE ?"
        return Counter(str(task) for (task,) in self.rows(sql, (task_prefix + "%",)))

    def event_times(self, task_prefix: str) -> list[tuple[str, float, float]]:
        """(task_id, at, stored_at) of every event whose task id starts with `task_prefix`."""
        sql = "SELECT task_id, at, stored_at FROM events WHERE task_id LIKE ?"
        return [(str(t), float(a), float(s)) for t, a, s in self.rows(sql, (task_prefix + "%",))]

    def events_of_tasks(self, name_prefix: str) -> list[tuple[Any, ...]]:
        """(kind, task_name, args, kwargs, message, traceback) as stored, of the tasks whose
        name starts with `name_prefix`: what redaction left in the store."""
        sql = (
            "SELECT kind, task_name, args, kwargs, message, traceback FROM events "
            "WHERE task_name LIKE ?"
        )
        return self.rows(sql, (name_prefix + "%",))

    def every_table(self) -> dict[str, str]:
        """Every table's rows, as text, by table name (SQLite): a search for what must never
        be stored (secrets, tokens) looks at all of it."""
        sql = "SELECT name FROM sqlite_master WHERE type='table'"
        tables = [str(name) for (name,) in self.rows(sql)]
        return {table: repr(self.rows(f'SELECT * FROM "{table}"')) for table in tables}

    # -- fires -----------------------------------------------------------------------------------

    def fires_of_app(self, app: str) -> list[dict[str, Any]]:
        """Every fire of `app` with its phase times (created, sent, answered)."""
        return self.dicts(f"SELECT {FIRE_COLUMNS} FROM fires WHERE app = ?", (app,))

    def all_fires(self) -> list[dict[str, Any]]:
        return self.dicts(f"SELECT {FIRE_COLUMNS} FROM fires")

    def settled_fires(self, app: str, began: float, ended: float) -> int:
        """Fires of `app` with a slot in [began, ended) that are answered or given up."""
        sql = (
            "SELECT COUNT(*) FROM fires WHERE app = ? AND slot >= ? AND slot < ? "
            "AND state NOT IN ('pending', 'delivering')"
        )
        return int(self.rows(sql, (app, began, ended))[0][0])

    def fires_answered_between(self, began: float, ended: float) -> list[tuple[Any, ...]]:
        """(fire_id, schedule_id, due_at, answered_at) of fires answered in (began, ended]."""
        sql = (
            "SELECT fire_id, schedule_id, due_at, answered_at FROM fires "
            "WHERE answered_at > ? AND answered_at <= ?"
        )
        return self.rows(sql, (began, ended))

    def fires_in_slots(self, began: float, ended: float, but_kind: str) -> list[tuple[Any, ...]]:
        """(fire_id, schedule_id) of fires with a slot in [began, ended), of any kind but one."""
        sql = "SELECT fire_id, schedule_id FROM fires WHERE slot >= ? AND slot < ? AND kind <> ?"
        return self.rows(sql, (began, ended, but_kind))

    def first_fire_created_after(self, instant: float) -> float | None:
        """When the first fire created after `instant` was created (a new leader's first)."""
        sql = "SELECT MIN(created_at) FROM fires WHERE created_at > ?"
        value = self.rows(sql, (instant,))[0][0]
        return None if value is None else float(value)
