"""The fleet's taskiq broker and tasks: `taskiq worker fleet_taskiq:broker` runs them. The task's
`schedule` label is a native schedule (what taskiq's LabelScheduleSource serves), observed by
the agent; the fleet starts no `taskiq scheduler`."""

from __future__ import annotations

from fleet_runs import record_async, redis_url
from redis.asyncio import Redis
from taskiq import Context, TaskiqDepends
from taskiq_redis import ListQueueBroker

import z4j_taskiq

# redis-py 8 reads with a 5 s socket timeout by default, which kills a worker blocked in BRPOP
# on an idle queue (docs/engines/taskiq.md).
broker = z4j_taskiq.instrument(
    ListQueueBroker(redis_url(), queue_name="fleet-taskiq", socket_timeout=None)
)
runs = Redis.from_url(redis_url())


@broker.task(task_name="fleet_taskiq.record")
async def record(schedule: str, context: Context = TaskiqDepends()) -> str:  # noqa: B008
    await record_async(runs, "taskiq", context.message.task_id)
    return schedule


@broker.task(
    task_name="fleet_taskiq.nightly_report",
    schedule=[{"cron": "0 3 * * *", "schedule_id": "nightly-report"}],
)
async def nightly_report() -> None:
    pass
