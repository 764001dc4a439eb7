"""The fire-latency benchmark's Dramatiq broker module: Redis, the agent's middleware (one
agent per worker process), and CurrentMessage so the actor can record its message id."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage
from fire_sink import QUEUE, REDIS_URL, record

import z4j_dramatiq

broker = RedisBroker(url=REDIS_URL)
broker.add_middleware(CurrentMessage())
broker.add_middleware(z4j_dramatiq.Z4JMiddleware())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def tick() -> None:
    message = CurrentMessage.get_current_message()
    record(message.message_id if message is not None else "")
