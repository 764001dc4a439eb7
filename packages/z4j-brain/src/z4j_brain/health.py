"""``/health/live`` and ``/health/ready``: what an orchestrator asks before it sends traffic.

Owns what "ready" means: the store answers a read, takes a write through the brain's one writer
(the same path events take), its schema is the one this brain was built for, and a scheduler
leader is known (this brain, or on Postgres another session holding the leader's lock). Each
check has a deadline, so a hung database gives 503 rather than a hung probe. One answer serves
every probe for ``CACHE_SECONDS`` and concurrent probes share one check in flight, so a flood of
unauthenticated probes costs the one writer at most one job a second. Never exposes a token or a
database URL (a failed check shows the driver's one-line message).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Final

from z4j_brain import __version__
from z4j_brain.db import LEADER_LOCK
from z4j_brain.migrations import LATEST_VERSION
from z4j_brain.writer import why

if TYPE_CHECKING:
    from z4j_brain.brain import Brain

#: Longest each readiness check may take before it counts as failed.
CHECK_SECONDS: Final = 5.0


#: How long one readiness answer serves every probe (seconds).
CACHE_SECONDS: Final = 1.0

Answer = tuple[int, dict[str, Any]]


class ReadinessCache:
    """The brain's last readiness answer, reused for ``seconds``, and the one check in flight
    that every probe arriving meanwhile awaits."""

    def __init__(self, seconds: float = CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._answer: Answer | None = None
        self._answered_at = 0.0
        self._running: asyncio.Task[Answer] | None = None

    async def answer(self, brain: Brain) -> Answer:
        if self._answer is not None and time.monotonic() - self._answered_at < self.seconds:
            return self._answer
        if self._running is None:
            self._running = asyncio.create_task(self._check(brain))
        # Shielded: a probe that hangs up does not cancel the check the others await.
        return await asyncio.shield(self._running)

    async def _check(self, brain: Brain) -> Answer:
        try:
            answer = await check_readiness(brain)
            self._answer, self._answered_at = answer, time.monotonic()
            return answer
        finally:
            self._running = None


def liveness(brain: Brain) -> dict[str, Any]:
    return {"status": "ok", "agents_connected": len(brain.connections), "version": __version__}


async def readiness(brain: Brain) -> Answer:
    """(HTTP status, body): 200 when every check passed, else 503 naming each failure; at most
    ``CACHE_SECONDS`` old."""
    return await brain.readiness.answer(brain)


async def check_readiness(brain: Brain) -> Answer:
    """Run every readiness check now (one read and one write through the store's writer)."""
    problems: list[str] = []
    config = brain.config
    key = config.leader_lock_key if config.leader_lock_key is not None else LEADER_LOCK
    schema: int | None = None
    lock_held: bool | None = None
    reachable = writable = False
    try:
        schema, lock_held = await asyncio.wait_for(
            brain.read(lambda s: (s.schema_version(), s.advisory_lock_held(key))), CHECK_SECONDS
        )
        reachable = True
    except Exception as exc:
        problems.append(f"store not reachable: {_reason(exc)}")
    brain_id, host, pid = brain.brain_id, socket.gethostname(), os.getpid()
    try:
        await asyncio.wait_for(
            brain.write(lambda s: s.brain_alive(brain_id, host, pid, time.time())), CHECK_SECONDS
        )
        writable = True
    except Exception as exc:
        problems.append(f"store not writable: {_reason(exc)}")
    current = schema == LATEST_VERSION
    if reachable and not current:
        problems.append(
            f"database schema is version {schema}, this brain needs {LATEST_VERSION}"
            + (": upgrade z4j-brain" if (schema or 0) > LATEST_VERSION else "")
        )
    leading = brain.scheduler.leading
    leader_known = leading or bool(lock_held)
    if not leader_known:
        problems.append("no scheduler leader is known (no brain holds the leader's lock yet)")
    ready = reachable and writable and current and leader_known
    body = {
        "status": "ready" if ready else "not_ready",
        "version": __version__,
        "brain_id": brain.brain_id,
        "leader": leading,
        "schema_version": schema,
        "schema_expected": LATEST_VERSION,
        "checks": {
            "store_reachable": reachable,
            "store_writable": writable,
            "migrations_current": reachable and current,
            "leader_known": leader_known,
        },
        "problems": problems,
    }
    return (200 if ready else 503), body


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no answer within {CHECK_SECONDS:g} s"
    return why(exc)
