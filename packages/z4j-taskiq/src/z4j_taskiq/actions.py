"""The operator's actions on taskiq: retry, and purge and queue depth on taskiq-redis lists.

taskiq keeps no record of a task's arguments (result backends store only the result), so the
capture keeps each failed task's message in the broker's own format, and a retry kicks it again
under a new task id. A taskiq-redis `ListQueueBroker`'s queue is one Redis list of ready messages
(a worker pops one as it takes it): `LLEN` is its depth, deleting it removes exactly those. Other
brokers report no depth and cannot purge; none can cancel a task. Runs on the agent's threads,
waiting for the Redis and kick calls, which run on the broker's loop in this process.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import ActionOutcome, RetryRequest, done, failed, instance_of, unavailable
from z4j_core.wire import QueueDepth
from z4j_taskiq.enqueue import on_loop

if TYPE_CHECKING:
    from z4j_taskiq.adapter import TaskiqAdapter

#: Labels that belong to one run, never copied into a retry (taskiq's retry counter, the
#: schedule that kicked it).
RUN_LABELS = frozenset({"_retries", "schedule_id"})
ACTION_TIMEOUT = 30.0


def is_list_broker(broker: Any) -> bool:
    return instance_of(broker, "taskiq_redis.redis_broker", "ListQueueBroker")


def pack(broker: Any, message: Any) -> bytes:
    """A failed task's message in the broker's own format (`broker.formatter`)."""
    return bytes(broker.formatter.dumps(message).message)


def retry(adapter: TaskiqAdapter, request: RetryRequest) -> ActionOutcome:
    if request.original is None:
        return unavailable(
            "no original message: taskiq keeps none, and this host kept none (only the host "
            "whose worker saw the task fail has it)"
        )
    broker = adapter.broker
    message = broker.formatter.loads(request.original.payload)
    task = broker.find_task(message.task_name)
    if task is None:
        return unavailable(f"this process's taskiq broker has no task {message.task_name!r}")
    labels = {k: v for k, v in message.labels.items() if k not in RUN_LABELS}
    kicker = task.kicker().with_task_id(request.new_task_id).with_labels(**labels)
    kick = functools.partial(kicker.kiq, *message.args, **message.kwargs)
    sent, error = on_loop(adapter, kick, ACTION_TIMEOUT, "the kick")
    return failed(error) if error else done(str(sent.task_id))


# -- queues (taskiq-redis ListQueueBroker) ---------------------------------------------------


def queue_names(adapter: TaskiqAdapter) -> list[str]:
    """The broker's queue and every queue a registered task names (`queue_name` label)."""
    tasks = adapter.broker.get_all_tasks().values()
    names = {adapter.queue, *((getattr(t, "labels", {}) or {}).get("queue_name") for t in tasks)}
    return sorted(name for name in names if isinstance(name, str) and name)


def _pipeline(adapter: TaskiqAdapter, commands: list[tuple[str, str]], what: str) -> list[Any]:
    """The results of `commands` (`(command, key)`, one transaction), on the broker's loop and
    its own connection pool."""

    async def run() -> list[Any]:
        from redis.asyncio import Redis

        pool = adapter.broker.connection_pool
        async with Redis(connection_pool=pool) as redis, redis.pipeline(transaction=True) as tx:
            for command, key in commands:
                getattr(tx, command)(key)
            return list(await tx.execute())

    result, error = on_loop(adapter, run, ACTION_TIMEOUT, what)
    if error:
        raise RuntimeError(error)
    return list(result)


def queue_depths(adapter: TaskiqAdapter) -> list[QueueDepth]:
    if not is_list_broker(adapter.broker) or adapter.running_loop() is None:
        return []  # a process whose broker has not started (or has stopped) reports nothing
    names = queue_names(adapter)
    counts = _pipeline(adapter, [("llen", name) for name in names], "counting the queues")
    return [QueueDepth(name=name, ready=int(n)) for name, n in zip(names, counts, strict=True)]


def purge(adapter: TaskiqAdapter, queue: str) -> ActionOutcome:
    known = queue_names(adapter)
    if queue not in known:
        return unavailable(f"{queue!r} is not a queue of this broker ({', '.join(known)})")
    try:
        removed, _ = _pipeline(adapter, [("llen", queue), ("delete", queue)], f"purging {queue!r}")
    except Exception as exc:
        return failed(f"taskiq could not purge {queue!r}: {exc}")
    return done(count=int(removed))
