"""The operator's actions on taskiq: retry, and purge and queue depth on taskiq-redis lists.

Owns retrying from this host's kept original: taskiq keeps no record of a task's arguments
(result backends store only the result), so the capture keeps each failed task's message, in
the broker's own format, and a retry kicks it again under a new task id. Owns the depth and the
purge of a taskiq-redis `ListQueueBroker`'s queues: each queue is one Redis list of ready
messages (a worker pops a message as it takes it), so `LLEN` is its depth and deleting the list
removes exactly its ready messages. Other brokers (Redis streams, RabbitMQ, NATS...) report no
depth and cannot purge here. taskiq has no way to cancel a task: cancel is not advertised.

Runs on the agent's command threads and report loop; the Redis and kick calls run on the loop
the broker started on in this process, and the agent's thread waits for them.
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
    names = {adapter.queue} if adapter.queue else set()
    for task in adapter.broker.get_all_tasks().values():
        queue = (getattr(task, "labels", {}) or {}).get("queue_name")
        if isinstance(queue, str) and queue:
            names.add(queue)
    return sorted(names)


def _with_redis(adapter: TaskiqAdapter, work: Any, what: str) -> Any:
    """`await work(redis)` on the broker's loop, with a client on the broker's own pool."""

    async def with_redis() -> Any:
        from redis.asyncio import Redis

        async with Redis(connection_pool=adapter.broker.connection_pool) as redis:
            return await work(redis)

    result, error = on_loop(adapter, with_redis, ACTION_TIMEOUT, what)
    if error:
        raise RuntimeError(error)
    return result


def queue_depths(adapter: TaskiqAdapter) -> list[QueueDepth]:
    if not is_list_broker(adapter.broker) or adapter.running_loop() is None:
        return []  # a process whose broker has not started (or has stopped) reports nothing
    names = queue_names(adapter)

    async def count(redis: Any) -> list[int]:
        async with redis.pipeline(transaction=False) as tx:
            for name in names:
                tx.llen(name)
            return list(await tx.execute())

    counts = _with_redis(adapter, count, "counting the queues")
    return [QueueDepth(name=name, ready=int(n)) for name, n in zip(names, counts, strict=True)]


def purge(adapter: TaskiqAdapter, queue: str) -> ActionOutcome:
    known = queue_names(adapter)
    if queue not in known:
        return unavailable(f"{queue!r} is not a queue of this broker ({', '.join(known)})")

    async def empty(redis: Any) -> int:
        async with redis.pipeline(transaction=True) as tx:
            tx.llen(queue).delete(queue)
            removed, _ = await tx.execute()
            return int(removed)

    try:
        removed = _with_redis(adapter, empty, f"purging {queue!r}")
    except Exception as exc:
        return failed(f"taskiq could not purge {queue!r}: {exc}")
    return done(count=removed)
