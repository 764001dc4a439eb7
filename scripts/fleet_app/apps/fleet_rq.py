"""The fleet's RQ functions. The worker preloads this module (`-c fleet_rq_settings`) and `rq cron
fleet_rq_cron.py` registers the native schedule; the agent reads the Z4J_* variables."""

from __future__ import annotations

from fleet_runs import record as record_run
from fleet_runs import redis_url
from redis import Redis
from rq import Queue, get_current_job

import z4j_rq


def record(schedule: str) -> str:
    job = get_current_job()
    record_run("rq", job.id if job is not None else "?")
    return schedule


def nightly_report() -> None:
    """Registered with `rq cron` (fleet_rq_cron.py)."""


QUEUE = z4j_rq.instrument(Queue("default", connection=Redis.from_url(redis_url())), tasks=[record])
