"""The fire-latency benchmark's arq settings with the agent (`arq fire_arq.WorkerSettings`)."""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings
from fire_sink import REDIS_URL, record

import z4j_arq


async def tick(ctx: dict[str, Any]) -> None:
    record(ctx["job_id"])


@z4j_arq.instrument
class WorkerSettings:
    functions = [tick]
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    max_jobs = 100
    poll_delay = 0.01
    keep_result = 0
