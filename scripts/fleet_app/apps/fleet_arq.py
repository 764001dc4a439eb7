"""The fleet's arq worker settings: `arq fleet_arq.WorkerSettings` runs them, with one cron job
(native, observed by the agent; it runs at 03:00 UTC)."""

from __future__ import annotations

import datetime
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from fleet_runs import record_async, redis_url

import z4j_arq


async def record(ctx: dict[str, Any], schedule: str) -> str:
    await record_async(ctx["redis"], "arq", ctx["job_id"])
    return schedule


async def nightly_report(ctx: dict[str, Any]) -> None:
    pass


@z4j_arq.instrument
class WorkerSettings:
    functions = [record]
    cron_jobs = [cron(nightly_report, hour=3, minute=0)]
    redis_settings = RedisSettings.from_dsn(redis_url())
    max_jobs = 4
    poll_delay = 0.05
    timezone = datetime.timezone.utc
