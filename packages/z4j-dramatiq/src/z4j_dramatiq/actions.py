"""The operator's actions on Dramatiq: retry, purge and queue depth (Dramatiq cannot cancel). What
each reads and counts on Redis and on RabbitMQ: docs/engines/dramatiq.md.

A retry reads a Redis dead letter back by message id (`<ns>:<queue>.XQ.msgs`, kept for the
broker's `dead_message_ttl`) and removes it; a RabbitMQ dead-letter queue cannot be read by id, so
there (and for a failure Dramatiq acks) the capture keeps the original on this host. Purge removes
ready messages only. Runs on the agent's command threads and report loop; blocks on the broker.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from dramatiq import Message
from dramatiq.common import q_name

from z4j_core.adapter import ActionOutcome, RetryRequest, done, failed, instance_of, unavailable
from z4j_core.wire import QueueDepth

if TYPE_CHECKING:
    from z4j_dramatiq.adapter import DramatiqAdapter

#: Message options that belong to one delivery, never copied into a retry.
DELIVERY_OPTIONS = frozenset(
    {"redis_message_id", "eta", "retries", "traceback", "requeue_timestamp", "dead_message"}
)
#: How many dead-letter entries one HSCAN step reads.
SCAN_COUNT = 500

#: Removes a queue's ready messages (their ids and their bodies), never in-flight ones.
PURGE_SCRIPT = """
local ids = redis.call('lrange', KEYS[1], 0, -1)
redis.call('del', KEYS[1])
for _, id in ipairs(ids) do redis.call('hdel', KEYS[2], id) end
return #ids
"""


def is_redis(broker: Any) -> bool:
    """Whether `broker` is Redis's: the one whose dead letters a retry can read by id."""
    return instance_of(broker, "dramatiq.brokers.redis", "RedisBroker")


def queue_names(broker: Any) -> list[str]:
    """The broker's declared queues, without their delay (`.DQ`) and dead-letter (`.XQ`) ones."""
    return sorted(q for q in broker.get_declared_queues() if q_name(q) == q)


def _drop_channel(broker: Any) -> None:
    """Forget this thread's RabbitMQ channel after an error closed it (as Dramatiq does); a
    no-op on Redis, which has no channel."""
    with contextlib.suppress(Exception):
        del broker.channel


def dead_letter(broker: Any, task_id: str, queues: list[str]) -> tuple[Any, str, str] | None:
    """The dead message `task_id` in a Redis broker's dead-letter queues: (message, its
    dead-letter key, its Redis id), or None."""
    needle = task_id.encode()
    for queue in queues:
        key = f"{broker.namespace}:{queue}.XQ"
        for redis_id, data in broker.client.hscan_iter(f"{key}.msgs", count=SCAN_COUNT):
            if needle in data:  # cheap filter before decoding
                message = Message.decode(data)
                if message.message_id == task_id:
                    return message, key, redis_id.decode()
    return None


def again(message: Any, new_id: str | None) -> Any:
    """A new message for `message`'s actor and arguments, without its delivery's options."""
    options = {k: v for k, v in message.options.items() if k not in DELIVERY_OPTIONS}
    fields: dict[str, Any] = {"message_id": new_id} if new_id else {}
    return Message(
        queue_name=q_name(message.queue_name), actor_name=message.actor_name,
        args=tuple(message.args), kwargs=dict(message.kwargs), options=options, **fields,
    )  # fmt: skip


def retry(adapter: DramatiqAdapter, request: RetryRequest) -> ActionOutcome:
    broker = adapter.broker
    found = None
    if is_redis(broker):
        queues = sorted(queue_names(broker), key=lambda q: q != request.queue)  # the hint first
        found = dead_letter(broker, request.task_id, queues)
        missing = "not in its dead-letter queue (expired, or never dead-lettered)"
    else:
        missing = f"{type(broker).__name__}'s dead-letter queue cannot be read by message id"
    if found is not None:
        message, key, redis_id = found
        with broker.client.pipeline(transaction=True) as tx:
            tx.zrem(key, redis_id).hdel(f"{key}.msgs", redis_id)
            removed = tx.execute()[1]
        if not removed:
            return unavailable("another retry took this message from the dead-letter queue")
    elif request.original is not None:
        message = Message.decode(request.original.payload)
    else:
        return unavailable(f"no original message: {missing}, and this host kept none")
    try:
        sent = broker.enqueue(again(message, request.new_task_id))
    except Exception as exc:
        if found is not None:  # put it back, so the dead letter is not lost
            broker.client.hset(f"{key}.msgs", redis_id, message.encode())
            broker.client.zadd(key, {redis_id: message.message_timestamp})
        return failed(f"Dramatiq could not enqueue the retry: {type(exc).__name__}: {exc}")
    return done(str(sent.message_id))


def queue_depths(adapter: DramatiqAdapter) -> list[QueueDepth]:
    broker = adapter.broker
    queues = queue_names(broker)
    if not is_redis(broker):  # no `scheduled`: the workers hold delayed messages, unacked
        try:
            counts = [broker.get_queue_message_counts(queue) for queue in queues]
        except Exception:
            _drop_channel(broker)
            raise
        return [
            QueueDepth(name=queue, ready=ready, failed=dead)
            for queue, (ready, _, dead) in zip(queues, counts, strict=True)
        ]
    key = f"{broker.namespace}:"
    with broker.client.pipeline(transaction=False) as tx:
        for queue in queues:
            tx.llen(key + queue).hlen(f"{key}{queue}.msgs")
            tx.hlen(f"{key}{queue}.DQ.msgs").zcard(f"{key}{queue}.XQ")
        counts = tx.execute()
    rows = (counts[4 * n : 4 * n + 4] for n in range(len(queues)))  # held: ready and running
    return [
        QueueDepth(name=q, ready=ready, running=max(held - ready, 0), scheduled=later, failed=dead)
        for q, (ready, held, later, dead) in zip(queues, rows, strict=True)
    ]


def purge(adapter: DramatiqAdapter, queue: str) -> ActionOutcome:
    broker = adapter.broker
    known = queue_names(broker)
    if queue not in known:
        return unavailable(f"{queue!r} is not a declared queue ({', '.join(known)})")
    try:
        if is_redis(broker):
            key = f"{broker.namespace}:{queue}"
            removed = broker.client.eval(PURGE_SCRIPT, 2, key, f"{key}.msgs")
        else:
            removed = broker.channel.queue_purge(queue).method.message_count
    except Exception as exc:
        _drop_channel(broker)
        return failed(f"Dramatiq could not purge {queue!r}: {type(exc).__name__}: {exc}")
    return done(count=int(removed))
