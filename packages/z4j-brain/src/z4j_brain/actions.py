"""Actions on tasks and queues (retry, cancel, purge; docs/actions.md), one at a time or in bulk.

Owns the rules of an action: which task states each acts on, which agent takes it (one that
advertises the action for the task's engine and app; for a retry, first the agent that saw the
task fail, then one of its host, since a retry may need the original message kept there), its
deadline, its row and audit row (who and from where), and the agent's answer. A bulk action
matches tasks by filter, counts first on a dry run, and sends its actions paced, at most a few
at once, under one audit row; each task's answer is its own action row. Never sends or stores a
task's arguments: the agent retries from the engine's record or its own host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from z4j_brain.audit import Actor
from z4j_brain.mutations import ApiError, BadRequest, Change, audited
from z4j_brain.routing import may_take
from z4j_core.wire.frames import (
    ACTION_CAPABILITY,
    Action,
    ActionKind,
    Capability,
    CommandResult,
    CommandStatus,
)

if TYPE_CHECKING:
    from starlette.requests import Request

    from z4j_brain.brain import Brain
    from z4j_brain.gateway import AgentConnection
    from z4j_brain.store import Store

log = logging.getLogger("z4j.brain.actions")

#: States a retry acts on without `force`.
RETRYABLE: Final = frozenset({"failed", "dead_lettered"})
#: States of a finished task (a forced retry acts on any of these).
FINISHED: Final = frozenset(
    {
        "succeeded",
        "failed",
        "revoked",
        "cancelled",
        "expired",
        "rejected",
        "skipped",
        "locked",
        "dead_lettered",
    }
)
#: Default and longest deadline of one action, in seconds.
DEFAULT_DEADLINE: Final = 30.0
MAX_DEADLINE: Final = 300.0
#: Seconds past the deadline the brain still waits for an answer (transit both ways).
ANSWER_GRACE: Final = 2.0
#: Most tasks one bulk action may match; a filter matching more is refused (narrow it).
MAX_BULK_TASKS: Final = 100_000
#: Default and largest pace of a bulk action (actions sent per second), and how many may wait
#: for their answers at once: the broker and the agents are never flooded.
DEFAULT_BULK_PER_SECOND: Final = 100.0
MAX_BULK_PER_SECOND: Final = 1000.0
BULK_IN_FLIGHT: Final = 16


@dataclass(frozen=True)
class Target:
    """What an action acts on, as the brain knows it (``state`` None: a task it never saw)."""

    engine: str
    app: str
    task_id: str | None = None
    task: str | None = None
    queue: str | None = None
    state: str | None = None
    reported_by: str | None = None  # the agent instance that reported the latest state
    reported_host: str | None = None


def describe(kind: ActionKind, terminate: bool = False) -> list[Capability]:
    """The capabilities an agent must advertise for this action."""
    needed = [ACTION_CAPABILITY[kind]]
    if kind is ActionKind.CANCEL and terminate:
        needed.append(Capability.TERMINATE)
    return needed


def precondition(kind: ActionKind, target: Target, *, force: bool, terminate: bool) -> str:
    """Why the task's state rules the action out (empty when it may go ahead)."""
    state = target.state
    if state is None:
        return ""
    if kind is ActionKind.RETRY:
        if state in RETRYABLE:
            return ""
        if state not in FINISHED:
            return f"task {target.task_id} is still {state}: only a finished task is retried"
        if not force:
            return (
                f"task {target.task_id} is {state}, not failed: pass force to retry a finished "
                "task that did not fail"
            )
        return ""
    if kind is ActionKind.CANCEL and state in FINISHED:
        return f"task {target.task_id} already finished ({state}): nothing to cancel"
    if kind is ActionKind.CANCEL and state == "started" and not terminate:
        return f"task {target.task_id} is running: pass terminate to stop it"
    return ""


def rank(connection: AgentConnection, target: Target) -> tuple[int, int]:
    """Order of preference among able agents: the one that reported the task's state, then
    one of its host, then any; fewer commands in flight first."""
    hello = connection.hello
    if target.reported_by and connection.agent_instance == target.reported_by:
        place = 0
    elif hello is not None and target.reported_host and hello.host == target.reported_host:
        place = 1
    else:
        place = 2
    return place, connection.in_flight_commands


def able_agents(brain: Brain, target: Target, needed: list[Capability]) -> list[AgentConnection]:
    """Connected agents of the target's app advertising every `needed` capability for its
    engine, best first."""
    able = []
    for connection in brain.connections.values():
        hello = connection.hello
        if not connection.is_open or hello is None:
            continue
        engines = [e.name for e in hello.engines if all(c in e.advertised for c in needed)]
        if may_take(
            agent_app=hello.app,
            agent_labels=connection.labels,
            able_engines=engines,
            app=target.app,
            engine=target.engine,
            labels={},
        ):
            able.append(connection)
    return sorted(able, key=lambda c: rank(c, target))


def no_agent_reason(brain: Brain, target: Target, needed: list[Capability]) -> str:
    names = " and ".join(repr(c.value) for c in needed)
    serving = [
        c
        for c in brain.connections.values()
        if c.is_open
        and c.hello is not None
        and c.hello.app == target.app
        and any(e.name == target.engine for e in c.hello.engines)
    ]
    if not serving:
        return f"no connected agent serves {target.engine}/{target.app}, so none can {names}"
    return f"no connected agent of {target.engine}/{target.app} advertises {names}"


async def resolve_task(brain: Brain, task_id: str, engine: str | None, app: str | None) -> Target:
    """The task a retry or cancel acts on; a task the brain never saw needs engine and app."""
    rows = await brain.read(lambda s: s.task_row(task_id, engine))
    if app is not None:
        rows = [r for r in rows if r["app"] in (app, None)]
    if len(rows) > 1:
        engines = ", ".join(sorted(r["engine"] for r in rows))
        raise BadRequest(f"task {task_id} exists in engines {engines}: say which with engine")
    if not rows:
        if engine is None or app is None:
            raise ApiError(
                404,
                f"no task {task_id!r} is known to the brain; pass engine and app to act on it "
                "anyway",
            )
        return Target(engine=engine, app=app, task_id=task_id)
    row = rows[0]
    return Target(
        engine=row["engine"],
        app=row["app"] or app or "",
        task_id=task_id,
        task=row["name"],
        queue=row["queue"],
        state=row["state"],
        reported_by=row["state_agent"],
        reported_host=row.get("state_host"),
    )


@dataclass(frozen=True)
class Requested:
    """Who asked, and for which bulk action (if any). With `request`, the action's row is
    written through `mutations.audited` (its audit row in the same transaction); a bulk
    action's own actions have none (the bulk has one audit row)."""

    actor: Actor
    request: Request | None = None
    bulk_id: str | None = None


async def perform(
    brain: Brain,
    kind: ActionKind,
    target: Target,
    requested: Requested,
    *,
    force: bool = False,
    terminate: bool = False,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Run one action to its end and return its row (`shapes.ActionResult`)."""
    deadline = min(deadline or DEFAULT_DEADLINE, MAX_DEADLINE)
    needed = describe(kind, terminate)
    action_id = uuid.uuid4().hex
    options: dict[str, Any] = {}
    if kind is ActionKind.RETRY:
        options["force"] = force
    if kind is ActionKind.CANCEL:
        options["terminate"] = terminate
    # What the engine cannot do is said before what the task's state rules out.
    agents = able_agents(brain, target, needed)
    why = "" if agents else no_agent_reason(brain, target, needed)
    why = why or precondition(kind, target, force=force, terminate=terminate)
    connection = agents[0] if agents and not why else None
    status = "unavailable" if why else "pending"
    agent_instance = connection.agent_instance if connection is not None else None
    now = time.time()

    def record(store: Store, at: float) -> tuple[None, Change]:
        store.insert_action(
            action_id=action_id,
            kind=kind.value,
            engine=target.engine,
            app=target.app,
            task_id=target.task_id,
            task=target.task,
            queue=target.queue,
            options=options,
            status=status,
            reason=why,
            agent_instance=agent_instance,
            bulk_id=requested.bulk_id,
            requested_by=requested.actor.name,
            requested_from=requested.actor.source,
            requested_at=at,
        )
        subject = target.task_id if kind is not ActionKind.PURGE else target.queue
        return None, Change(
            action=f"{'queue' if kind is ActionKind.PURGE else 'task'}.{kind.value}",
            target=f"{target.engine}/{target.app}/{subject}",
            before=None,
            after={"action_id": action_id, **options, "status": status, "reason": why},
        )

    if requested.request is not None:
        await audited(requested.request, record, now=now)
    elif requested.bulk_id is None:  # the brain's own action (the scheduler's): audited here
        actor = requested.actor
        await brain.write(lambda store: _audited_by_brain(brain, actor, store, record, now))
    else:
        await brain.write(lambda store: record(store, now))
    if connection is None:
        return await _row(brain, action_id)
    new_task_id = str(uuid.uuid4()) if kind is ActionKind.RETRY else None
    frame = Action(
        command_id=action_id,
        action=kind,
        deadline_seconds=deadline,
        engine=target.engine,
        app=target.app,
        task_id=target.task_id,
        task=target.task,
        queue=target.queue,
        terminate=terminate,
        force=force,
        new_task_id=new_task_id,
    )
    result = await exchange(brain, connection, frame, deadline)
    if result is None:
        status, reason, native_id, count = (
            "unknown",
            "no answer from the agent before the deadline",
            None,
            None,
        )
    else:
        status, reason = result.status.value, result.reason
        native_id, count = result.native_id, result.count
    finished = time.time()
    await brain.write(
        lambda s: s.answer_action(
            action_id,
            status=status,
            reason=reason,
            new_task_id=native_id,
            count=count,
            now=finished,
        )
    )
    counts = brain.actions_by_status
    counts[status] = counts.get(status, 0) + 1
    return await _row(brain, action_id)


def _audited_by_brain(
    brain: Brain,
    actor: Actor,
    store: Store,
    record: Callable[[Store, float], tuple[None, Change]],
    now: float,
) -> None:
    """Write an action the brain asked for itself, with its audit row."""
    _, change = record(store, now)
    log_ = brain.audit
    assert log_ is not None, "the brain was not prepared"
    log_.append(store, actor=actor, action=change.action, target=change.target,
                before=change.before, after=change.after, now=now)  # fmt: skip


async def exchange(
    brain: Brain, connection: AgentConnection, frame: Action, deadline: float
) -> CommandResult | None:
    """Send `frame` and wait for its answer (None past the deadline)."""
    router = brain.commands
    waiter = router.expect(frame.command_id, connection.agent_instance)
    connection.in_flight_commands += 1
    try:
        if not connection.send_frame(frame):
            return CommandResult(
                command_id=frame.command_id,
                status=CommandStatus.FAILED,
                reason="the agent's connection closed before the action was sent",
            )
        return await router.answer_within(waiter, deadline + ANSWER_GRACE)
    finally:
        connection.in_flight_commands -= 1
        router.pending.pop(frame.command_id, None)


async def _row(brain: Brain, action_id: str) -> dict[str, Any]:
    row = await brain.read(lambda s: s.action(action_id))
    assert row is not None
    return row


# -- bulk ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkFilter:
    """Which tasks a bulk action acts on."""

    states: tuple[str, ...]
    task: str | None = None
    engine: str | None = None
    app: str | None = None
    since_seconds: float | None = None  # updated within this many seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "states": list(self.states),
            "task": self.task,
            "engine": self.engine,
            "app": self.app,
            "since_seconds": self.since_seconds,
        }

    def query(self, now: float) -> dict[str, Any]:
        since = None if self.since_seconds is None else now - self.since_seconds
        return {
            "states": self.states,
            "name": self.task,
            "engine": self.engine,
            "app": self.app,
            "updated_since": since,
        }


async def start_bulk(
    brain: Brain,
    kind: ActionKind,
    criteria: BulkFilter,
    actor: Actor,
    request: Request,
    *,
    dry_run: bool,
    force: bool = False,
    terminate: bool = False,
    per_second: float = DEFAULT_BULK_PER_SECOND,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Count the matching tasks; unless `dry_run`, record the bulk action (one audit row) and
    start acting on each in the background. Returns the bulk's summary."""
    now = time.time()
    query = criteria.query(now)
    matched = await brain.read(lambda s: s.count_tasks_matching(**query))
    summary: dict[str, Any] = {
        "bulk_id": None,
        "action": kind.value,
        "filter": criteria.as_dict(),
        "matched": matched,
        "dry_run": dry_run,
        "counts": {},
        "finished": dry_run,
        "requested_by": actor.name,
        "requested_from": actor.source,
        "requested_at": now,
        "finished_at": None,
    }
    if dry_run:
        return summary
    if matched > MAX_BULK_TASKS:
        raise BadRequest(
            f"the filter matches {matched} tasks, more than {MAX_BULK_TASKS}: narrow it "
            "(task, engine, app, since)"
        )
    bulk_id = uuid.uuid4().hex
    options = {"force": force} if kind is ActionKind.RETRY else {"terminate": terminate}

    def record(store: Store, at: float) -> tuple[None, Change]:
        store.insert_bulk(
            bulk_id=bulk_id,
            kind=kind.value,
            criteria=criteria.as_dict(),
            matched=matched,
            requested_by=actor.name,
            requested_from=actor.source,
            requested_at=at,
        )
        return None, Change(
            action=f"tasks.bulk_{kind.value}",
            target=bulk_id,
            before=None,
            after={"filter": criteria.as_dict(), "matched": matched, **options},
        )

    await audited(request, record, now=now)
    rows = await brain.read(lambda s: s.tasks_matching(**query, limit=MAX_BULK_TASKS))
    task = asyncio.create_task(
        _run_bulk(
            brain,
            kind,
            bulk_id,
            rows,
            actor,
            force=force,
            terminate=terminate,
            per_second=min(max(per_second, 0.1), MAX_BULK_PER_SECOND),
            deadline=deadline,
        )
    )
    brain.bulk_tasks.add(task)
    task.add_done_callback(brain.bulk_tasks.discard)
    summary["bulk_id"] = bulk_id
    summary["finished"] = False
    return summary


async def _run_bulk(
    brain: Brain,
    kind: ActionKind,
    bulk_id: str,
    rows: list[dict[str, Any]],
    actor: Actor,
    *,
    force: bool,
    terminate: bool,
    per_second: float,
    deadline: float | None,
) -> None:
    slots = asyncio.Semaphore(BULK_IN_FLIGHT)
    requested = Requested(actor=actor, bulk_id=bulk_id)
    running: set[asyncio.Task[Any]] = set()
    interval = 1.0 / per_second
    started = time.monotonic()

    async def one(row: dict[str, Any]) -> None:
        try:
            target = Target(
                engine=row["engine"],
                app=row["app"] or "",
                task_id=row["task_id"],
                task=row["name"],
                queue=row["queue"],
                state=row["state"],
                reported_by=row["state_agent"],
                reported_host=row.get("state_host"),
            )
            await perform(brain, kind, target, requested, force=force, terminate=terminate,
                          deadline=deadline)  # fmt: skip
        except Exception:
            log.exception("bulk %s: the %s of %s failed", bulk_id, kind.value, row["task_id"])
        finally:
            slots.release()

    try:
        for index, row in enumerate(rows):
            # Paced from the start, so a slow answer does not make the next ones burst.
            delay = started + index * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            task = asyncio.create_task(one(row))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    finally:
        for task in running:
            task.cancel()
        with contextlib.suppress(Exception):
            finished = time.time()
            await brain.write(lambda s: s.finish_bulk(bulk_id, finished))
