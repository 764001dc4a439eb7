"""The fire-latency benchmark's RQ task module; the agent attaches to the worker's connection
(`rq worker -w z4j_rq.Worker -c fire_rq_settings`), which declares the task up front."""

from __future__ import annotations

import os

from fire_sink import REDIS_URL, record
from redis import Redis
from rq import get_current_job


def tick() -> None:
    job = get_current_job()
    record(job.id if job is not None else "")


if not os.environ.get("FIRE_NO_AGENT"):
    import z4j_rq

    z4j_rq.instrument(Redis.from_url(REDIS_URL), tasks=[tick])
