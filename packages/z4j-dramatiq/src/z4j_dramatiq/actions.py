"""The operator's actions on Dramatiq: retry, purge, and queue depth.

Owns the dead-letter queue as a retry's source: on Redis, a dead message is kept (for the
broker's `dead_message_ttl`, a week by default) in `<ns>:<queue>.XQ.msgs` under its own Redis id,
so a retry finds it by its message id, enqueues a copy as a new message and removes it from the
dead-letter queue. A RabbitMQ dead-letter queue is a plain queue that cannot be read by message
id, so there (and for a failure Dramatiq acks: no Retries middleware) this host keeps the
original message when the task fails (`Adapter.keep_original`, written by the capture).

Depth, per declared queue: Redis counts ready ids, fetched but unacked messages (`running`:
taken by a worker, prefetched ones included), delayed messages and dead letters; RabbitMQ counts
ready and dead-lettered messages (its delayed messages sit unacked in the workers that prefetched
them, so no count sees them: `scheduled` is not reported there). Purge removes ready messages
only (Dramatiq's own `broker.flush` also drops delayed, in-flight and dead ones).

Cancel is not here: Dramatiq has no way to cancel a message. Runs on the agent's command
threads and report loop; blocks on the broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from z4j_core.adapter import ActionOutcome, RetryRequest, done, failed, unavailable
from z4j_core.wire import QueueDepth
from z4j_dramatiq.capture import canonical_queue

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
    from dramatiq.brokers.redis import RedisBroker

    return isinstance(broker, RedisBroker)


def queue_names(broker: Any) -> list[str]:
    """The broker's declared queues, without their delay (`.DQ`) and dead-letter (`.XQ`) ones."""
    return sorted(q for q in broker.get_declared_queues() if canonical_queue(q) == q)


# -- retry ----------------------------------------------------------------------------------


def dead_letter(broker: Any, task_id: str, queues: list[str]) -> tuple[Any, str, str] | None:
    """The dead message `task_id` in a Redis broker's dead-letter queues: (message, its
    dead-letter key, its Redis id), or None."""
    from dramatiq import Message

    client, namespace = broker.client, broker.namespace
    needle = task_id.encode()
    for queue in queues:
        key = f"{namespace}:{queue}.XQ"
        for redis_id, data in client.hscan_iter(f"{key}.msgs", count=SCAN_COUNT):
            if needle in data:  # cheap filter before decoding
                message = Message.decode(data)
                if message.message_id == task_id:
                    return message, key, redis_id.decode()
    return None


def again(message: Any, new_id: str | None) -> Any:
    """A new message for `message`'s actor and arguments, without its delivery's options."""
    from dramatiq import Message

    options = {k: v for k, v in message.options.items() if k not in DELIVERY_OPTIONS}
    fields: dict[str, Any] = {"message_id": new_id} if new_id else {}
    return Message(
        queue_name=canonical_queue(message.queue_name), actor_name=message.actor_name,
        args=tuple(message.args), kwargs=dict(message.kwargs), options=options, **fields,
    )  # fmt: skip


def retry(adapter: DramatiqAdapter, request: RetryRequest) -> ActionOutcome:
    from dramatiq import Message

    broker = adapter.broker
    found = None
    if is_redis(broker):
        queues = queue_names(broker)
        if request.queue in queues:  # the hint first
            queues.remove(request.queue)
            queues.insert(0, request.queue)
        found = dead_letter(broker, request.task_id, queues)
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
        where = (
            "not in its dead-letter queue (expired, or never dead-lettered)"
            if is_redis(broker)
            else f"{type(broker).__name__}'s dead-letter queue cannot be read by message id"
        )
        return unavailable(f"no original message: {where}, and this host kept none")
    try:
        sent = broker.enqueue(again(message, request.new_task_id))
    except Exception as exc:
        if found is not None:  # put it back, so the dead letter is not lost
            _, key, redis_id = found
            broker.client.hset(f"{key}.msgs", redis_id, message.encode())
            broker.client.zadd(key, {redis_id: message.message_timestamp})
        return failed(f"Dramatiq could not enqueue the retry: {type(exc).__name__}: {exc}")
    return done(str(sent.message_id))


def keeps_dead_letters(broker: Any) -> bool:
    """Whether a retry can read a dead message back from the broker by its id."""
    return is_redis(broker)


# -- queues ---------------------------------------------------------------------------------


def queue_depths(adapter: DramatiqAdapter) -> list[QueueDepth]:
    broker = adapter.broker
    queues = queue_names(broker)
    if not is_redis(broker):
        depths = []
        try:
            for queue in queues:
                ready, _, dead = broker.get_queue_message_counts(queue)
                depths.append(QueueDepth(name=queue, ready=ready, failed=dead))
        except Exception:
            _drop_channel(broker)
            raise
        return depths
    key = f"{broker.namespace}:"
    with broker.client.pipeline(transaction=False) as tx:
        for queue in queues:
            tx.llen(key + queue).hlen(f"{key}{queue}.msgs")
            tx.hlen(f"{key}{queue}.DQ.msgs").zcard(f"{key}{queue}.XQ")
        counts = tx.execute()
    depths = []
    for n, queue in enumerate(queues):
        ready, held, delayed, dead = counts[4 * n : 4 * n + 4]
        running = max(held - ready, 0)
        depths.append(
            QueueDepth(name=queue, ready=ready, running=running, scheduled=delayed, failed=dead)
        )
    return depths


def _drop_channel(broker: Any) -> None:
    """Forget this thread's RabbitMQ channel after an error closed it (as Dramatiq does)."""
    try:
        del broker.channel
    except Exception:
        pass


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
        if not is_redis(broker):
            _drop_channel(broker)
        return failed(f"Dramatiq could not purge {queue!r}: {type(exc).__name__}: {exc}")
    return done(count=int(removed))
