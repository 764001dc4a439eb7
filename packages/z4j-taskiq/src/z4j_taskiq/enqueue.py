"""Enqueueing the brain's commands natively into taskiq, by task name, through its kicker.

A command becomes a kick: its headers as labels, a queue as taskiq-redis's `queue_name` label,
its fire id as the task id. Answers `rejected` (never kicks) for a name this process's broker
does not know (a taskiq worker drops a message for a task it cannot find) and for a delay, an
expiry or a priority. taskiq runs a repeated task id again: the agent's fire-id memory refuses
a repeated fire. Runs on the agent's command threads, never a host's: the kick runs on the loop
the broker started on in this process, and the thread waits for it within the deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import answer, rejected, unknown_task
from z4j_core.wire import Command, CommandResult, CommandStatus

if TYPE_CHECKING:
    from z4j_taskiq.adapter import TaskiqAdapter

#: The fire id of the kick z4j is running now, set in the kick's own coroutine (it runs on the
#: broker's loop, so the thread-local `z4j_core.adapter.enqueueing` would not reach it).
current_fire_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "z4j_taskiq_fire_id", default=None
)


def enqueue(adapter: TaskiqAdapter, command: Command) -> CommandResult:
    broker, options = adapter.broker, command.options
    task = broker.find_task(command.task)
    if task is None:
        where = f"taskiq {adapter.app_name!r}"
        return rejected(command, unknown_task(command.task, where, broker.get_all_tasks()))
    labels: dict[str, Any] = dict(options.headers)
    if options.queue:
        if adapter.queue is None:
            return rejected(command, f"{type(broker).__name__} has no queue to choose")
        labels["queue_name"] = options.queue
    for value, what in (
        (options.delay_seconds, "a delay"),
        (options.expires_seconds, "an expiry"),
        (options.priority, "a priority"),
    ):
        if value:
            return rejected(command, f"taskiq's {type(broker).__name__} cannot honour {what}")
    kicker = task.kicker().with_task_id(command.fire_id or None).with_labels(**labels)

    async def kick() -> Any:
        current_fire_id.set(command.fire_id or None)  # this runs in its own task: its own context
        return await kicker.kiq(*command.args, **command.kwargs)

    sent, error = on_loop(adapter, kick, max(1.0, float(command.deadline_seconds)), "the kick")
    if error:
        return answer(command, CommandStatus.FAILED, reason=error)
    return answer(command, CommandStatus.ENQUEUED, native_id=sent.task_id)


def on_loop(
    adapter: TaskiqAdapter, work: Callable[[], Coroutine[Any, Any, Any]], timeout: float, what: str
) -> tuple[Any, str]:
    """Run `work()` on the broker's loop and wait for it here: (its result, "") or (None, why
    not). The coroutine is made only once the loop is known to run (never left unawaited)."""
    loop = adapter.running_loop()
    if loop is None:
        return None, "the taskiq broker is not started in this process (await broker.startup())"
    future = asyncio.run_coroutine_threadsafe(work(), loop)
    try:
        return future.result(timeout), ""
    except concurrent.futures.TimeoutError:
        future.cancel()
        return None, f"{what} did not finish in time"
    except Exception as exc:
        return None, f"{what} failed: {type(exc).__name__}: {exc}"
