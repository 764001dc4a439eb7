"""Throwaway Postgres databases for tests and benchmarks of a Postgres-backed brain.

Owns their names (this run's ``postgres_database_name()`` plus a counter, so concurrent runs and
tests never share one) and their lifetime: created on entry, dropped on exit even when the
brain still holds connections. Imports ``psycopg`` only when called: core never depends on a
database driver.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager

from z4j_core.testing.services import SERVICES, postgres_database_name

_counter = itertools.count(1)


def server_url(database: str | None = None) -> str:
    """The test server's URL (trust auth), for ``database`` (default: the maintenance one)."""
    service = SERVICES["postgres"]
    user = os.environ.get("Z4J_TEST_PG_USER", "postgres")
    name = database or os.environ.get("Z4J_TEST_PG_DATABASE", "postgres")
    return f"postgresql://{user}@{service.host}:{service.port}/{name}"


@contextmanager
def temporary_database(prefix: str = "") -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    import psycopg

    name = f"{postgres_database_name()}_{prefix}{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url(name)
    finally:
        with psycopg.connect(server_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
