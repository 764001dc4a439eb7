"""Enqueueing the brain's commands natively into Dramatiq, by actor name.

Owns turning a `wire.Command` into a Dramatiq `Message`: the actor's queue (or the command's, for
an actor this process has not imported), arguments, a delay, the message options the broker's
middleware declares (`CommandOptions.headers`, e.g. `max_retries`) and the fire id as message id.
Never enqueues what a worker would dead-letter: an unknown actor with no queue, or an option
Dramatiq cannot honour, is `rejected`. Runs on the agent's command threads; may block on the
broker. A message id sent twice runs twice: the agent refuses a repeated fire before this.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import dramatiq
from dramatiq.errors import ActorNotFound

from z4j_core.adapter import answer, enqueueing, rejected, unknown_task
from z4j_core.wire import Command, CommandResult, CommandStatus

if TYPE_CHECKING:
    from z4j_dramatiq.adapter import DramatiqAdapter

#: Dramatiq's largest delay (the Redis broker refuses more than 7 days).
MAX_DELAY_MS = 7 * 24 * 3600 * 1000


def _option_value(text: str) -> Any:
    """Headers travel as strings; `3` and `true` mean a number and a boolean to Dramatiq."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def enqueue(adapter: DramatiqAdapter, command: Command) -> CommandResult:
    broker = adapter.broker
    options = command.options
    try:
        actor = broker.get_actor(command.task)
    except ActorNotFound:
        actor = None
    if actor is None and not options.queue:
        where = f"Dramatiq {adapter.app_name!r}: give its queue to send it anyway"
        return rejected(command, unknown_task(command.task, where, broker.get_declared_actors()))
    if options.priority:
        return rejected(
            command,
            "Dramatiq has no per-message priority across workers (actor priority only orders "
            "one worker's prefetched messages)",
        )
    if options.expires_seconds:
        return rejected(
            command,
            "Dramatiq cannot expire a message (AgeLimit's max_age skips it instead: pass "
            "max_age in headers)",
        )
    delay_ms = round(options.delay_seconds * 1000) if options.delay_seconds else None
    if delay_ms and delay_ms > MAX_DELAY_MS:
        return rejected(command, f"Dramatiq delays at most 7 days, not {delay_ms} ms")
    allowed = set(broker.actor_options)
    if unknown := sorted(set(options.headers) - allowed):
        return rejected(
            command,
            f"option(s) {', '.join(unknown)} are not declared by this broker's middleware "
            f"(accepted: {', '.join(sorted(allowed))})",
        )
    queue = options.queue or actor.queue_name
    if actor is not None and queue != actor.queue_name:
        # Dramatiq's workers consume declared queues only; declaring it is what send does.
        broker.declare_queue(queue)
    message = dramatiq.Message(
        queue_name=queue,
        actor_name=command.task,
        args=tuple(command.args),
        kwargs=dict(command.kwargs),
        options={k: _option_value(v) for k, v in options.headers.items()},
        **({"message_id": command.fire_id} if command.fire_id else {}),
    )
    try:
        with enqueueing(command.fire_id):
            sent = broker.enqueue(message, delay=delay_ms)
    except Exception as exc:
        if adapter.capture is not None:
            # `enqueued` was reported just before the write (so it sorts before `started`).
            adapter.capture.enqueue_failed(message, exc)
        raise
    return answer(command, CommandStatus.ENQUEUED, native_id=sent.message_id)
