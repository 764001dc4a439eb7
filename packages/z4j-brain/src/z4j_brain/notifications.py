"""How brains sharing Postgres wake each other: ``NOTIFY`` on two channels when a transaction
commits, and a thread per brain that ``LISTEN``s and calls back.

``FIRES_CHANNEL``: fires were written or released (delivery looks for work). ``SCHEDULES_CHANNEL``
(payload: the schedule's id): a schedule changed (the leader re-reads versions). On SQLite there
is one brain: nothing to notify, and the in-process wake-ups do it all. Whatever is notified
while a listener reconnects is picked up by the one-second polls.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Final

from z4j_brain.db import DatabaseError, PostgresConnection
from z4j_brain.store import Store

log = logging.getLogger("z4j.brain.scheduler")

FIRES_CHANNEL: Final = "z4j_fires"
SCHEDULES_CHANNEL: Final = "z4j_schedules"


def notify(store: Store, channel: str, payload: str = "") -> None:
    """Inside a transaction: wake the other brains when it commits (Postgres only)."""
    store.notify(channel, payload)


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
                conn.listen(FIRES_CHANNEL, SCHEDULES_CHANNEL)
                # Whatever was notified while not listening is picked up by the polls.
                self.on_notify(SCHEDULES_CHANNEL, "")
                self.on_notify(FIRES_CHANNEL, "")
                while not self.stop.is_set():
                    for channel, payload in conn.notifications(timeout=0.5, limit=64):
                        self.on_notify(channel, payload)
            except Exception as exc:
                if not self.stop.is_set():
                    log.warning("LISTEN connection lost (%s); reconnecting", type(exc).__name__)
                    self.stop.wait(0.5)
            finally:
                with contextlib.suppress(Exception):
                    conn.close()
