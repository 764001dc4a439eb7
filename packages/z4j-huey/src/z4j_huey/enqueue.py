"""Enqueueing the brain's commands natively into Huey, by task name.

Owns turning a `wire.Command` into a Huey task message: the registered task class for the name,
args and kwargs, a delay (Huey's eta), an expiry, a priority where the storage orders by it, and
the fire id as the Huey message id. Answers `rejected` (never enqueues) for an unknown name or an
option this instance cannot honour, so nothing lands in a queue where it would be dropped.
Runs on the agent's command threads, never on a host thread; may block on the broker.
"""

from __future__ import annotations

import datetime
from typing import Any

from z4j_core.wire import Command, CommandResult, CommandStatus
from z4j_huey.adapter import HueyAdapter, storage_supports_priority


def _result(command: Command, status: CommandStatus, **fields: Any) -> CommandResult:
    return CommandResult(command_id=command.command_id, status=status, **fields)


def registered_names(huey: Any) -> list[str]:
    return sorted(huey._registry._registry)


def enqueue(adapter: HueyAdapter, command: Command) -> CommandResult:
    huey = adapter.huey
    registry: dict[str, Any] = huey._registry._registry
    task_class = registry.get(command.task)
    if task_class is None:
        known = ", ".join(registered_names(huey)[:10]) or "none"
        return _result(
            command,
            CommandStatus.REJECTED,
            reason=f"unknown task {command.task!r} for Huey {adapter.app_name!r} "
            f"(registered: {known})"[:200],
        )
    options = command.options
    if options.queue not in (None, "", adapter.queue):
        return _result(
            command,
            CommandStatus.REJECTED,
            reason=f"Huey {adapter.app_name!r} has one queue, {adapter.queue!r}, "
            f"not {options.queue!r}",
        )
    priority = options.priority
    if priority and not storage_supports_priority(huey):
        storage = type(huey.storage).__name__
        return _result(
            command,
            CommandStatus.REJECTED,
            reason=f"{storage} does not order by priority (use PriorityRedisHuey or SqliteHuey)",
        )
    eta = None
    if options.delay_seconds:
        eta = _now(huey) + datetime.timedelta(seconds=options.delay_seconds)
    task = task_class(
        tuple(command.args),
        dict(command.kwargs),
        id=command.fire_id or None,
        eta=eta,
        priority=priority,
        expires=options.expires_seconds or None,
    )
    capture = adapter.capture
    if capture is not None and command.fire_id:
        capture.set_fire_id(command.fire_id)
    try:
        huey.enqueue(task)
    finally:
        if capture is not None and command.fire_id:
            capture.set_fire_id(None)
    return _result(command, CommandStatus.ENQUEUED, native_id=task.id)


def _now(huey: Any) -> datetime.datetime:
    """Huey's own clock: naive UTC when `utc=True` (its default), naive local time otherwise."""
    if getattr(huey, "utc", True):
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return datetime.datetime.now()
