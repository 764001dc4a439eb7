"""Enqueueing the brain's commands natively into taskiq, by task name, through its kicker.

Owns turning a `wire.Command` into a kick: the registered task for the name, args, kwargs, the
command's headers as taskiq labels, a queue as taskiq-redis's `queue_name` label, and the fire id
as the task id. Answers `rejected` (never kicks) for a name this process's broker does not know
(a taskiq worker acknowledges and drops a message for a task it cannot find) and for options
taskiq cannot honour (a delay, an expiry, a priority). taskiq runs a repeated task id again, so
the agent's fire-id memory is what refuses a repeated fire.

Runs on the agent's command threads, never on a host thread: the kick itself runs on the loop
the broker started on in this process, and this thread waits for it within the command's
deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

from z4j_core.wire import Command, CommandResult, CommandStatus
from z4j_taskiq.adapter import TaskiqAdapter
from z4j_taskiq.capture import current_fire_id


def _result(command: Command, status: CommandStatus, **fields: Any) -> CommandResult:
    return CommandResult(command_id=command.command_id, status=status, **fields)


def _rejected(command: Command, reason: str) -> CommandResult:
    return _result(command, CommandStatus.REJECTED, reason=reason[:200])


def registered_names(broker: Any) -> list[str]:
    return sorted(broker.get_all_tasks())


def enqueue(adapter: TaskiqAdapter, command: Command) -> CommandResult:
    broker = adapter.broker
    task = broker.find_task(command.task)
    if task is None:
        known = ", ".join(registered_names(broker)[:10]) or "none"
        return _rejected(
            command,
            f"unknown task {command.task!r} for taskiq {adapter.app_name!r} "
            f"(registered here: {known})",
        )
    options = command.options
    labels: dict[str, Any] = dict(options.headers)
    if options.queue:
        if adapter.queue is None:
            return _rejected(command, f"{type(broker).__name__} has no queue to choose")
        labels["queue_name"] = options.queue
    for value, what in (
        (options.delay_seconds, "a delay"),
        (options.expires_seconds, "an expiry"),
        (options.priority, "a priority"),
    ):
        if value:
            return _rejected(command, f"taskiq's {type(broker).__name__} cannot honour {what}")
    loop = adapter.running_loop()
    if loop is None:
        return _result(
            command,
            CommandStatus.FAILED,
            reason="the taskiq broker is not started in this process (await broker.startup())",
        )
    kicker = task.kicker().with_task_id(command.fire_id or None)
    if labels:
        kicker = kicker.with_labels(**labels)
    future = asyncio.run_coroutine_threadsafe(
        _kick(kicker, list(command.args), dict(command.kwargs), command.fire_id or None), loop
    )
    try:
        sent = future.result(max(1.0, float(command.deadline_seconds)))
    except concurrent.futures.TimeoutError:
        future.cancel()
        return _result(command, CommandStatus.FAILED, reason="the kick did not finish in time")
    except Exception as exc:
        reason = f"the kick failed: {type(exc).__name__}: {exc}"
        return _result(command, CommandStatus.FAILED, reason=reason[:200])
    return _result(command, CommandStatus.ENQUEUED, native_id=sent.task_id)


async def _kick(kicker: Any, args: list[Any], kwargs: dict[str, Any], fire_id: str | None) -> Any:
    current_fire_id.set(fire_id)  # this coroutine runs in its own task: its own context
    return await kicker.kiq(*args, **kwargs)
