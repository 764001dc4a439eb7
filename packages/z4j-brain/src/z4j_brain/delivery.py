"""Delivery of fires to agents, on every brain (leader or not).

Open fires are claimed for this brain's own agents (``FOR UPDATE SKIP LOCKED`` on Postgres),
each with its command recorded in the same transaction, sent, and their answers recorded. A
fire whose agent did not answer is re-offered to another agent only when its engine refuses a
repeated job id; otherwise only to the same agent (which refuses a fire id it already enqueued)
until the fire's deadline, when it becomes ``unknown``. The leader's brain also runs the leader's
housekeeping here (fires past their deadline, buffered fires, pause after failures).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

import msgspec

from z4j_brain.routing import engines_able
from z4j_brain.store import Agent, Claimed, Store
from z4j_brain.store.access import NewCommand
from z4j_core.scheduling import format_instant
from z4j_core.wire.frames import Capability, Command, CommandKind, CommandOptions

if TYPE_CHECKING:
    from z4j_brain.brain import Brain

log = logging.getLogger("z4j.brain.scheduler")

#: How often delivery looks for open fires without a wake-up (this brain's writes, an agent
#: connecting and NOTIFY from the others wake it at once).
POLL_SECONDS: Final = 1.0
#: Fires claimed per delivery round; catch-up fires go after on-time ones.
CLAIM_LIMIT: Final = 500
#: Longest a fire command waits for its agent's answer.
MAX_COMMAND_SECONDS: Final = 30.0
#: How often delivery looks for fires bound to an agent that reconnected, besides at once
#: when an agent connects.
REOFFER_SECONDS: Final = 5.0
_UTC = timezone.utc


def command_for(fire: Claimed, now: float) -> Command:
    """The command that delivers a claimed fire (``trigger_now`` for a trigger)."""
    payload = fire.payload
    options = payload.get("options") or {}
    return Command(
        command_id=fire.command_id,
        kind=CommandKind.TRIGGER_NOW if fire.kind == "trigger" else CommandKind.FIRE,
        deadline_seconds=min(MAX_COMMAND_SECONDS, max(5.0, fire.deliver_by - now)),
        engine=fire.engine,
        app=fire.app,
        task=fire.task,
        args=list(payload.get("args") or []),
        kwargs=dict(payload.get("kwargs") or {}),
        options=CommandOptions(
            queue=options.get("queue"),
            priority=options.get("priority"),
            expires_seconds=options.get("expires_seconds"),
        ),
        fire_id=fire.fire_id,
        schedule_id=fire.schedule_id,
        slot=format_instant(datetime.fromtimestamp(fire.slot, _UTC)),
    )


def claim_and_store(
    store: Store,
    agents: list[Agent],
    brain_id: str,
    now: float,
    limit: int,
    *,
    reoffer: bool = False,
) -> list[tuple[Claimed, Command]]:
    """Claim open fires for ``agents`` and store the command of each, in the caller's
    transaction: a fire is never marked delivering without its command recorded."""
    if not agents:
        return []
    result = []
    commands = []
    for fire in store.claim_fires(agents, brain_id, now, limit, reoffer=reoffer):
        command = command_for(fire, now)
        payload = {
            "args": command.args,
            "kwargs": command.kwargs,
            "options": msgspec.to_builtins(command.options),
            "schedule_id": command.schedule_id,
            "slot": command.slot,
        }
        commands.append(
            NewCommand(command.command_id, fire.agent_instance, command.kind.value, fire.engine,
                       fire.app, fire.task, payload, fire.fire_id, now,
                       now + command.deadline_seconds)
        )  # fmt: skip
        result.append((fire, command))
    store.insert_commands(commands)
    return result


class Delivery:
    """Claims, sends and records fires for the agents connected to this brain."""

    def __init__(self, brain: Brain) -> None:
        self.brain = brain
        self.fires_waiting = asyncio.Event()
        #: Tasks in flight (sends, and the leader's broken-schedule writes).
        self.sending: set[asyncio.Task[None]] = set()
        self._reoffer = True
        self._last_reoffer = 0.0

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    def agent_connected(self) -> None:
        """An agent (re)connected here: fires bound to its earlier session are offered again."""
        self._reoffer = True
        self.fires_waiting.set()

    def agents(self) -> list[Agent]:
        """This brain's open connections that can take fires, as the store's claims see them."""
        agents = []
        for connection in list(self.brain.connections.values()):
            hello = connection.hello
            if hello is None or not connection.is_open:
                continue
            fire_engines = engines_able(hello.engines, Capability.FIRE)
            if not fire_engines:
                continue
            agents.append(
                Agent(
                    agent_instance=hello.agent_instance,
                    session=connection.session.session_id or "",
                    app=hello.app,
                    engines=fire_engines,
                    dedup_engines=engines_able(hello.engines, Capability.NATIVE_DEDUP),
                    labels=dict(connection.labels),
                )
            )
        return agents

    async def run(
        self, leading: Callable[[], bool], housekeeping: Callable[[], Awaitable[None]]
    ) -> None:
        """Deliver until cancelled; while this brain leads, also run the leader's
        ``housekeeping`` (expiry, buffered fires, pause after failures) once a second."""
        last_expire = 0.0
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.fires_waiting.wait(), POLL_SECONDS)
            self.fires_waiting.clear()
            try:
                if leading() and time.monotonic() - last_expire >= POLL_SECONDS:
                    last_expire = time.monotonic()
                    await housekeeping()
                await self.deliver_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("delivery round failed: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(0.5)

    async def deliver_once(self) -> None:
        agents = self.agents()
        if not agents:
            return
        brain_id = self.brain.brain_id
        # Fires bound to an agent that reconnected are looked for after a connection, and now
        # and then (they are rare: only a brain or agent that died mid-delivery leaves them).
        reoffer = self._reoffer or time.monotonic() - self._last_reoffer > REOFFER_SECONDS
        if reoffer:
            self._reoffer = False
            self._last_reoffer = time.monotonic()
        while True:
            claimed = await self.brain.write(
                lambda s: claim_and_store(
                    s, agents, brain_id, time.time(), CLAIM_LIMIT, reoffer=reoffer
                ),
                urgent=True,
            )
            self.dispatch(claimed)
            if len(claimed) < CLAIM_LIMIT:
                return

    def dispatch(self, claimed: list[tuple[Claimed, Command]]) -> None:
        for fire, command in claimed:
            self.spawn(self._send(fire, command))

    async def _send(self, fire: Claimed, command: Command) -> None:
        """Send one claimed fire; its answer is recorded on the fire with the command's."""
        try:
            outcome = await self.brain.commands.deliver(command, fire.agent_instance, fire.fire_id)
        except LookupError as exc:
            # The agent went away before the command left: the fire stays bound to it and is
            # re-offered when it reconnects (or to any agent, for a deduplicating engine).
            log.warning("fire %s not sent: %s", fire.fire_id, exc)
            await self.brain.write(
                lambda s: s.release_unanswered_fire(
                    fire.fire_id, fire.agent_instance, command.command_id
                ),
                urgent=True,
            )
            return
        if outcome.status != "unknown":  # not final: the fire is re-offered or expires
            answered = outcome.answered_at or time.time()
            self.brain.metrics.fire_answered(outcome.status, answered - fire.slot)
        if outcome.status == "failed":
            self.fires_waiting.set()
