"""The fleet's Huey app: `huey_consumer fleet_huey.huey` runs it; one periodic task (native)."""

from __future__ import annotations

from fleet_runs import record as record_run
from fleet_runs import redis_url
from huey import RedisHuey, crontab
from huey.api import Task

import z4j_huey

huey = z4j_huey.instrument(RedisHuey("fleet", url=redis_url()))


@huey.task(context=True)
def record(schedule: str, task: Task | None = None) -> str:
    record_run("huey", task.id if task is not None else "?")
    return schedule


@huey.periodic_task(crontab(minute="0", hour="3"))
def nightly_report() -> None:
    pass
