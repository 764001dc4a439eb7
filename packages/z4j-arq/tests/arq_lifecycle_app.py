"""Worker settings for the lifecycle tests: abort allowed, three tries, and a cron job every two
seconds that keeps no result (arq's default for cron jobs)."""

from __future__ import annotations

import datetime

from arq import cron
from arq_conformance_app import REDIS, _log_hook, always_retry, fail, retry, slow, succeed, tick

import z4j_arq


@z4j_arq.instrument
class LifecycleSettings:
    functions = [succeed, fail, retry, slow, always_retry]
    cron_jobs = [cron(tick, second=set(range(0, 60, 2)))]  # keep_result=0: arq's default
    redis_settings = REDIS
    max_jobs = 4
    max_tries = 3
    poll_delay = 0.05
    allow_abort_jobs = True
    timezone = datetime.timezone.utc
    on_job_start = _log_hook("user_on_job_start")
    after_job_end = _log_hook("user_after_job_end")
