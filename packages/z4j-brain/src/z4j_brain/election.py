"""Who leads the scheduler.

On SQLite the brain is alone (``SingleBrainLock`` holds an OS lock beside the database file), so
it always leads. On Postgres ``PostgresElection`` holds a session advisory lock (``LEADER_LOCK``,
or ``Z4J_LEADER_LOCK_KEY``) on a dedicated connection with short TCP keepalives; followers try
again every half second, and a leader whose connection fails is demoted at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final

from z4j_brain.db import LEADER_LOCK, DatabaseError, PostgresConnection

__all__ = ["ELECTION_SECONDS", "LEADER_LOCK", "PostgresElection", "SingleBrainLock"]

log = logging.getLogger("z4j.brain.scheduler")

#: How often a follower tries to take the lead, and a leader checks its lock's connection.
ELECTION_SECONDS: Final = 0.5


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
                    conn.ping()
                elif conn.try_session_lock(self.key):
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
