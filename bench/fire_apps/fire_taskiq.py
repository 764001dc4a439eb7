"""The fire-latency benchmark's taskiq broker (taskiq-redis's list queue) with the agent's
middleware (`taskiq worker fire_taskiq:broker`)."""

from __future__ import annotations

from fire_sink import QUEUE, REDIS_URL, record
from taskiq import Context, TaskiqDepends
from taskiq_redis import ListQueueBroker

import z4j_taskiq

# No socket timeout: redis-py 8 defaults to 5 s, which ends a BRPOP on an idle queue.
broker = ListQueueBroker(REDIS_URL, queue_name=QUEUE, socket_timeout=None)
broker.add_middlewares(z4j_taskiq.Z4JMiddleware())


@broker.task(task_name="fire.tick")
async def tick(context: Context = TaskiqDepends()) -> None:  # noqa: B008 -- taskiq's injection
    record(context.message.task_id)
