"""Enqueueing the brain's commands natively into Huey, by task name.

Owns turning a `wire.Command` into a Huey task message: the registered task class for the name,
args and kwargs, a delay (Huey's eta), an expiry, a priority where the storage orders by it, and
the fire id as the Huey message id. Answers `rejected` (never enqueues) for an unknown name or an
option this instance cannot honour, so nothing lands in a queue where it would be dropped.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import answer, enqueueing, rejected, unknown_task
from z4j_core.wire import Command, CommandResult, CommandStatus

if TYPE_CHECKING:
    from z4j_huey.adapter import HueyAdapter


def storage_supports_priority(huey: Any) -> bool:
    """Huey's storages say so themselves: `RedisStorage.priority` is False, Sqlite's is True."""
    return bool(getattr(getattr(huey, "storage", None), "priority", False))


def huey_now(huey: Any) -> datetime.datetime:
    """Huey's own clock: naive UTC when `utc=True` (its default), naive local time otherwise."""
    zone = datetime.timezone.utc if getattr(huey, "utc", True) else None
    return datetime.datetime.now(zone).replace(tzinfo=None)


def enqueue(adapter: HueyAdapter, command: Command) -> CommandResult:
    huey = adapter.huey
    registry: dict[str, Any] = huey._registry._registry
    task_class = registry.get(command.task)
    if task_class is None:
        return rejected(command, unknown_task(command.task, f"Huey {adapter.app_name!r}", registry))
    options = command.options
    if options.queue not in (None, "", adapter.queue):
        reason = f"Huey {adapter.app_name!r} has one queue, {adapter.queue!r}"
        return rejected(command, f"{reason}, not {options.queue!r}")
    if options.priority and not storage_supports_priority(huey):
        reason = f"{type(huey.storage).__name__} does not order by priority"
        return rejected(command, f"{reason} (use PriorityRedisHuey or SqliteHuey)")
    delay = options.delay_seconds
    task = task_class(
        tuple(command.args),
        dict(command.kwargs),
        id=command.fire_id or None,
        eta=huey_now(huey) + datetime.timedelta(seconds=delay) if delay else None,
        priority=options.priority,
        expires=options.expires_seconds or None,
    )
    with enqueueing(command.fire_id):
        huey.enqueue(task)
    return answer(command, CommandStatus.ENQUEUED, native_id=task.id)
