"""The brain's scheduler: one object that starts and stops its parts and answers for them.

- ``election``: who leads (an OS lock on SQLite, an advisory lock on Postgres);
- ``leader``: the leader's tick (due slots written as fires, broken schedules set aside);
- ``delivery``: fires claimed, sent to this brain's agents, answers recorded (every brain);
- ``notifications``: ``NOTIFY``/``LISTEN`` between brains sharing Postgres.

This module only wires them: leadership changes reach the leader, notifications wake the leader
or delivery, and the API's wake-ups go to the right one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Any

from z4j_brain.db import LEADER_LOCK
from z4j_brain.delivery import Delivery
from z4j_brain.election import PostgresElection, SingleBrainLock
from z4j_brain.leader import Leader, trigger_job
from z4j_brain.notifications import FIRES_CHANNEL, SCHEDULES_CHANNEL, PostgresListener, notify

if TYPE_CHECKING:
    from z4j_brain.brain import Brain

__all__ = [
    "FIRES_CHANNEL",
    "LEADER_LOCK",
    "SCHEDULES_CHANNEL",
    "Scheduler",
    "SingleBrainLock",
    "notify",
]


class Scheduler:
    """The scheduler of one brain: elected or not, it always delivers to its own agents."""

    trigger_job = staticmethod(trigger_job)

    def __init__(self, brain: Brain) -> None:
        self.brain = brain
        self.delivery = Delivery(brain)
        self.leader = Leader(brain, self.delivery)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._election: PostgresElection | None = None
        self._listener: PostgresListener | None = None

    @property
    def leading(self) -> bool:
        return self.leader.leading

    @property
    def broken_found(self) -> int:
        return self.leader.broken_found

    @property
    def fires_written(self) -> int:
        return self.leader.fires_written

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        config = self.brain.config
        self._tasks = [
            asyncio.create_task(self.leader.run()),
            asyncio.create_task(
                self.delivery.run(lambda: self.leader.leading, self.leader.housekeeping)
            ),
        ]
        if config.is_postgres:
            url = str(config.database)
            key = config.leader_lock_key if config.leader_lock_key is not None else LEADER_LOCK
            self._election = PostgresElection(url, key, self._leadership_changed, self._stop)
            self._listener = PostgresListener(url, self._notified, self._stop)
            self._election.thread.start()
            self._listener.thread.start()
        else:
            self.leader.set_leading(True)

    async def stop(self) -> None:
        self._stop.set()
        tasks = [*self._tasks, *self.delivery.sending]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for thread in (self._election, self._listener):
            if thread is not None:
                await asyncio.to_thread(thread.thread.join, 5)

    def _call_soon(self, callback: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback, *args)

    def _leadership_changed(self, leading: bool) -> None:
        self._call_soon(self.leader.set_leading, leading)

    def _notified(self, channel: str, payload: str) -> None:
        if channel == FIRES_CHANNEL:
            self._call_soon(self.delivery.fires_waiting.set)
        else:
            self._call_soon(self.leader.schedules_changed.set)

    def schedules_changed(self) -> None:
        """A schedule was edited through this brain (its transaction committed)."""
        self.leader.schedules_changed.set()

    def fires_waiting(self) -> None:
        """Fires were written here, or an agent connected: look for work now."""
        self.delivery.fires_waiting.set()

    def agent_connected(self) -> None:
        """An agent (re)connected here: fires bound to its earlier session are offered again."""
        self.delivery.agent_connected()

    async def applied(self, schedule_id: str, version: int, timeout: float) -> bool:
        """Wait until this brain's leader holds ``version`` of a schedule (or a later one, or
        has dropped it); False when not leading here or on timeout. For tests and benchmarks
        that measure how fast an edit takes effect."""
        return await self.leader.applied(schedule_id, version, timeout)

    def status(self) -> dict[str, Any]:
        leader = self.leader
        return {
            "brain_id": self.brain.brain_id,
            "leader": leader.leading,
            "election": "postgres-advisory-lock" if self.brain.config.is_postgres else "sqlite",
            "schedules_held": leader.schedules_held if leader.leading else None,
            "fires_written": leader.fires_written,
            "broken_found": leader.broken_found,
            "delivering": len(self.delivery.sending),
        }
