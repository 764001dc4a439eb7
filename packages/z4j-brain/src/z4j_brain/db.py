"""The store's connections: SQLite (the embedded default) and Postgres (several brains), behind
one small interface.

Owns every difference between the two drivers that is not SQL: placeholders (the store writes
``?``; Postgres gets ``%s``), rows (both give rows readable by index and by column name),
explicit transactions, integrity errors, and the cross-process locks (migrations, event
positions). ``psycopg`` is imported only when a ``postgresql://`` URL is opened. Never logs a
database URL: it may hold a password.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit, urlunsplit

SQLITE: Final = "sqlite"
POSTGRES: Final = "postgres"
POSTGRES_SCHEMES: Final = ("postgresql://", "postgres://")

#: Advisory-lock keys (per database: Postgres scopes advisory locks to one database).
MIGRATION_LOCK: Final = 0x7A346A01
#: Held for the rest of a transaction that assigns event positions, so positions grow in
#: commit order across brains and a reader paging by ``position`` never skips a row.
EVENT_POSITION_LOCK: Final = 0x7A346A02
#: Held by the scheduler leader on its own connection for as long as it leads
#: (``Z4J_LEADER_LOCK_KEY`` may replace it, for brains that share a database but not schedules).
LEADER_LOCK: Final = 0x7A346A03
#: Serialises audit appends across brains (sequence numbers and the previous HMAC).
AUDIT_LOCK: Final = 0x7A346A04
#: Serialises forgetting agents across brains (each brain runs retention): the dropped events
#: of an agent are added to the kept total once, by the brain that deletes it.
FORGET_AGENTS_LOCK: Final = 0x7A346A05
#: Serialises making the events table's day partitions across brains.
EVENT_PARTITIONS_LOCK: Final = 0x7A346A06


class IntegrityError(Exception):
    """A uniqueness or other constraint refused a write (either driver)."""


class DatabaseError(Exception):
    """The database cannot be reached or refused the connection; the message is for users."""


def is_postgres(target: str | Path) -> bool:
    return str(target).startswith(POSTGRES_SCHEMES)


def redact_url(target: str | Path) -> str:
    """``target`` fit to print: a Postgres URL without its password."""
    text = str(target)
    if not is_postgres(text):
        return text
    parts = urlsplit(text)
    if parts.password is None:
        return text
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    @property
    def in_transaction(self) -> bool: ...

    def migration_lock(self) -> Any: ...

    def table_exists(self, name: str) -> bool: ...

    def lock_event_positions(self) -> None: ...

    def close(self) -> None: ...


def connect(target: str | Path, *, shared: bool = False) -> Connection:
    """A connection to a SQLite file or a ``postgresql://`` URL, in autocommit mode
    (transactions are explicit). ``shared`` lets another thread close a SQLite connection."""
    if is_postgres(target):
        return PostgresConnection(str(target))
    return SqliteConnection(Path(target), shared=shared)


class SqliteConnection:
    dialect = SQLITE

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=not shared)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        # WAL with synchronous=NORMAL survives a killed process without losing a commit; only
        # a power loss may lose the last transactions.
        conn.execute("PRAGMA synchronous = NORMAL")
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.raw.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from None

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        before = self.raw.total_changes
        try:
            self.raw.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from None
        return self.raw.total_changes - before

    def begin(self) -> None:
        # IMMEDIATE takes the write lock now, so two processes never both read-then-write.
        self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self.raw.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        # Each migration runs under BEGIN IMMEDIATE, which already excludes other writers.
        yield

    def table_exists(self, name: str) -> bool:
        row = self.raw.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    def lock_event_positions(self) -> None:
        """Nothing to do: one SQLite writer at a time holds the database's write lock."""

    def close(self) -> None:
        self.raw.close()


class Row:
    """A Postgres row readable like ``sqlite3.Row``: by index, by column name, and ``dict()``."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __len__(self) -> int:
        return len(self._values)


def _row_factory(cursor: Any) -> Any:
    names = [column.name for column in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}

    def make(values: Sequence[Any]) -> Row:
        return Row(index, values)

    return make


_PG_SQL: dict[str, str] = {}


def _pg_sql(sql: str) -> str:
    """The store's ``?`` placeholders as psycopg's ``%s`` (the store's SQL has no ``%`` and no
    ``?`` inside literals)."""
    converted = _PG_SQL.get(sql)
    if converted is None:
        converted = sql.replace("?", "%s")
        if len(_PG_SQL) < 1024:
            _PG_SQL[sql] = converted
    return converted


class PostgresConnection:
    dialect = POSTGRES

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ModuleNotFoundError:
            raise DatabaseError(
                "a postgresql:// database needs psycopg: pip install 'z4j-brain[postgres]'"
            ) from None
        self._psycopg = psycopg
        try:
            self.raw = psycopg.connect(
                url,
                autocommit=True,
                row_factory=_row_factory,
                connect_timeout=10,
                # A dead peer is noticed in seconds, not after the kernel's two hours.
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
                application_name="z4j-brain",
            )
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot connect to {redact_url(url)}: {_first_line(exc)}"
            ) from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute_native(_pg_sql(sql), params)

    def execute_native(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run Postgres-only SQL written with ``%s`` placeholders (the store's fast paths)."""
        try:
            try:
                return self.raw.execute(sql, params)
            except self._psycopg.DataError as exc:
                if not _is_nul(exc):
                    raise
                return self.raw.execute(sql, without_nul_text(params))
        except self._psycopg.errors.IntegrityError as exc:
            raise IntegrityError(_first_line(exc)) from None

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        try:
            with self.raw.cursor() as cursor:
                # Not retried like execute: rows before the one that failed may have gone.
                cursor.executemany(_pg_sql(sql), without_nul_text(rows))
                return max(cursor.rowcount, 0)
        except self._psycopg.errors.IntegrityError as exc:
            raise IntegrityError(_first_line(exc)) from None

    def copy_in(
        self, table: str, columns: str, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> int:
        """COPY ``rows`` into ``table`` in Postgres's binary format (each value dumped in C, no
        per-row statement); returns how many rows went. The store's bulk path: ``COPY`` cannot
        skip a conflicting row, so callers only use it where no row can conflict."""
        try:
            with (
                self.raw.cursor() as cursor,
                cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        except self._psycopg.errors.IntegrityError as exc:
            raise IntegrityError(_first_line(exc)) from None
        return len(rows)

    def begin(self) -> None:
        self.raw.execute("BEGIN")

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self.raw.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    @property
    def broken(self) -> bool:
        return bool(self.raw.broken or self.raw.closed)

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        """A session advisory lock, so brains starting together migrate one at a time."""
        self.raw.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            yield
        finally:
            if not self.broken:
                self.raw.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

    def table_exists(self, name: str) -> bool:
        row = self.raw.execute("SELECT to_regclass(%s)", (name,)).fetchone()
        return row is not None and row[0] is not None

    def lock_event_positions(self) -> None:
        self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_POSITION_LOCK,))

    def try_session_lock(self, key: int) -> bool:
        """Take advisory lock ``key`` for this connection's life, if no one holds it."""
        row = self.raw.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        return bool(row is not None and row[0])

    def ping(self) -> None:
        """Raise if the connection is gone (a leader checks the one that holds its lock)."""
        self.raw.execute("SELECT 1")

    def listen(self, *channels: str) -> None:
        for channel in channels:
            self.raw.execute(f"LISTEN {channel}")

    def notifications(self, timeout: float, limit: int) -> Iterator[tuple[str, str]]:
        """(channel, payload) of each notification that arrives within ``timeout``."""
        for note in self.raw.notifies(timeout=timeout, stop_after=limit):
            yield note.channel, note.payload

    def close(self) -> None:
        self.raw.close()


def _is_nul(exc: BaseException) -> bool:
    """psycopg refused a parameter, before sending anything, for a NUL character in its text."""
    return "NUL" in str(exc)


def without_nul_text(value: Any) -> Any:
    """``value`` (a parameter, or a sequence of them, nested) with each NUL character of its
    text made U+FFFD: Postgres text cannot hold one (SQLite can), and agents' text (a job id,
    a reason, a task's name) comes from users' engines."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return list(map(without_nul_text, value))
    if isinstance(value, tuple):
        return tuple(map(without_nul_text, value))
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
