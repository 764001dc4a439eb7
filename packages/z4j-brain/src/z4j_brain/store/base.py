"""The store's base: one connection, transactions, the schema, and the cross-brain primitives
(advisory locks, notifications) every part of the store shares."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from z4j_brain.db import POSTGRES, Connection, PostgresConnection, connect, without_nul_text
from z4j_brain.migrations import LATEST_VERSION, MIGRATIONS, OnPostgres

S = TypeVar("S", bound="StoreBase")


class Arrays(NamedTuple):
    """A batch statement's Postgres form over arrays (see ``StoreBase.many``): ``sql`` reads
    the rows from ``{rows}`` (``FROM {rows} AS v(a, b, ...)``), one array of ``types[i]`` (an
    array type: ``text[]``) per column; ``key`` is the column an ``UPDATE ... FROM`` joins on,
    which must not repeat in one statement (Postgres applies one source row per target row),
    or None."""

    sql: str
    types: tuple[str, ...]
    key: int | None = None


class StoreError(Exception):
    """The store cannot do what was asked (for example a token name that already exists)."""


class StoreBase:
    """One connection's view of the store. Not thread-safe: one thread per ``Store``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect

    @classmethod
    def open(cls: type[S], target: str | Path, *, migrate: bool = True, shared: bool = False) -> S:
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

    def _rows_by_id(self, columns: str, table: str, key: str, ids: Sequence[str]) -> list[Any]:
        """The rows of ``table`` whose ``key`` is one of ``ids`` (``columns`` of each), read
        500 ids a statement."""
        rows: list[Any] = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            rows += self.conn.execute(
                f"SELECT {columns} FROM {table} WHERE {key} IN ({marks})", chunk
            ).fetchall()
        return rows

    def many(self, sql: str, rows: Sequence[Sequence[Any]], arrays: Arrays) -> int:
        """Run ``sql`` for each of ``rows`` in order (one ``executemany``); on Postgres, as
        ``arrays``'s one statement over the rows as column arrays instead, which psycopg sends
        in one message (its ``executemany`` spends 10 to 30 µs of Python per row, the largest
        cost of a fire on Postgres). Returns the rows written."""
        if not rows:
            return 0
        conn = self.conn
        if not isinstance(conn, PostgresConnection):
            return conn.executemany(sql, rows)
        statement = arrays.sql.replace("{rows}", unnest(arrays.types))
        text = [i for i, kind in enumerate(arrays.types) if kind == "text[]"]
        written = 0
        for run in _key_runs(without_nul(rows, text), arrays.key):
            written += max(conn.execute_native(statement, columns(run)).rowcount, 0)
        return written

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

    # -- across brains ------------------------------------------------------------------------

    def lock_for_transaction(self, key: int) -> None:
        """Serialise this transaction with every other one that takes ``key`` (Postgres: an
        advisory lock held until commit; SQLite: its write lock already does)."""
        if self.dialect == POSTGRES:
            self.conn.execute("SELECT pg_advisory_xact_lock(?)", (key,))

    def notify(self, channel: str, payload: str = "") -> None:
        """Inside a transaction: wake the other brains when it commits (Postgres only)."""
        if self.dialect == POSTGRES:
            self.conn.execute("SELECT pg_notify(?, ?)", (channel, payload))

    def table_dump(self) -> dict[str, list[tuple[object, ...]]]:
        """Every row of every table, as tuples (hostile tests search the whole store for a
        secret that must not be there)."""
        if self.dialect == POSTGRES:
            names = [
                str(r[0])
                for r in self.conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                ).fetchall()
            ]
        else:
            names = [
                str(r[0])
                for r in self.conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                ).fetchall()
            ]
        return {
            name: [tuple(r) for r in self.conn.execute(f'SELECT * FROM "{name}"').fetchall()]
            for name in sorted(names)
        }

    def advisory_lock_held(self, key: int) -> bool | None:
        """Whether some session holds the session advisory lock ``key`` in this database
        (Postgres: whether a scheduler leader exists); None on SQLite, where the one brain
        leads."""
        if self.dialect != POSTGRES:
            return None
        # A bigint key shows in pg_locks as classid (high 32 bits), objid (low), objsubid 1.
        row = self.conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 1 AND classid::bigint = ? AND objid::bigint = ? AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
        ).fetchone()
        return bool(row[0])

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
                        if self.dialect == POSTGRES or not isinstance(statement, OnPostgres):
                            self.conn.execute(statement)
                    self.conn.execute("UPDATE schema_version SET version = ?", (version,))
                applied.append(version)
            return applied


def keyset(
    columns: Sequence[str], key: Sequence[Any], *, descending: bool
) -> tuple[str, list[Any]]:
    """``(sql, params)``: the rows strictly after ``key`` in the order of ``columns`` (all
    descending or all ascending). The first column is also bounded on its own (``<=``/``>=``)
    so that an index led by it (after the equality filters) gives a range, and only the rows
    tied with the key on it are compared further."""
    op = "<" if descending else ">"
    first = columns[0]
    if len(columns) == 1:
        return f"{first} {op} ?", [key[0]]

    def strictly(i: int) -> tuple[str, list[Any]]:
        if i == len(columns) - 1:
            return f"{columns[i]} {op} ?", [key[i]]
        rest, params = strictly(i + 1)
        return (
            f"({columns[i]} {op} ? OR ({columns[i]} = ? AND {rest}))",
            [key[i], key[i], *params],
        )

    compare, params = strictly(0)
    return f"{first} {op}= ? AND {compare}", [key[0], *params]


def unnest(types: Sequence[str]) -> str:
    """Postgres's ``unnest`` of one binary parameter per column, of these array types: rows
    sent as one array per column (see ``columns``), one statement for a whole batch."""
    return "unnest(" + ", ".join(f"%b::{kind}" for kind in types) + ")"


def columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """``rows`` as one list per column, the parameters of an ``unnest``."""
    return [list(column) for column in zip(*rows, strict=True)]


def without_nul(rows: Sequence[Sequence[Any]], text: Sequence[int]) -> Sequence[Sequence[Any]]:
    """``rows`` with the NUL characters of their ``text`` columns made U+FFFD: Postgres text
    cannot hold one (SQLite can), and a statement that sends one fails whole. The check runs in
    C (one join, one search); only rows sent with a NUL are rewritten."""
    if not text:
        return rows
    get = operator.itemgetter(*text)
    values = map(get, rows) if len(text) == 1 else itertools.chain.from_iterable(map(get, rows))
    if "\x00" not in "".join(filter(None, values)):
        return rows
    return [without_nul_text(tuple(row)) for row in rows]


def _key_runs(rows: Sequence[Sequence[Any]], key: int | None) -> list[Sequence[Sequence[Any]]]:
    """``rows`` cut, in order, where a row's ``key`` column repeats one before it in the same
    piece: each piece applied at once does what the rows applied one by one would."""
    if key is None:
        return [rows]
    runs: list[Sequence[Sequence[Any]]] = []
    seen: set[Any] = set()
    start = 0
    for index, row in enumerate(rows):
        if row[key] in seen:
            runs.append(rows[start:index])
            seen.clear()
            start = index
        seen.add(row[key])
    runs.append(rows[start:])
    return runs
