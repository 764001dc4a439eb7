"""The functions and worker settings the conformance suite and the lifecycle tests run in real
`arq` worker processes.

Redis comes from ARQ_CONFORMANCE_URL; the agent is configured from Z4J_* variables, as an app
would be. `WorkerSettings` is what the conformance suite runs (arq_lifecycle_app.py has the
lifecycle tests' settings: one instrumented settings class per worker module).
"""

from __future__ import annotations

import asyncio
import datetime
import os
from typing import Any

from arq import Retry, cron
from arq.connections import RedisSettings

import z4j_arq
from z4j_core.testing import conformance

if os.environ.get(conformance.FAULT_ENV):
    conformance.inject_capture_fault()

REDIS = RedisSettings.from_dsn(os.environ.get("ARQ_CONFORMANCE_URL", "redis://127.0.0.1:6379/15"))
HOOK_LOG = os.environ.get("ARQ_CONFORMANCE_HOOK_LOG", "")


class ConformanceError(Exception):
    """What the failing functions raise."""


async def succeed(ctx: dict[str, Any], mark: str, *args: object, **kwargs: object) -> str:
    conformance.mark(mark)
    return mark


async def fail(ctx: dict[str, Any]) -> None:
    raise ConformanceError("this task always fails")


async def retry(ctx: dict[str, Any]) -> None:
    if ctx["job_try"] < 2:
        raise Retry(defer=0.2)
    raise ConformanceError("this task fails on its second try")


async def slow(ctx: dict[str, Any], mark: str, seconds: float) -> None:
    conformance.mark(mark)
    await asyncio.sleep(seconds)


async def flaky(ctx: dict[str, Any], mark: str, **kwargs: object) -> None:
    conformance.flaky(mark, **kwargs)


async def always_retry(ctx: dict[str, Any]) -> None:
    raise Retry(defer=0.1)


async def office_hours(ctx: dict[str, Any]) -> None:
    pass


async def monthly(ctx: dict[str, Any]) -> None:
    pass


async def tick(ctx: dict[str, Any]) -> str:
    conformance.mark(f"tick-{ctx['job_id']}")
    return "tick"


def _log_hook(name: str) -> Any:
    """A user's own hook: appends its name to HOOK_LOG, so tests see it still runs."""

    async def hook(ctx: dict[str, Any]) -> None:
        if HOOK_LOG:
            with open(HOOK_LOG, "a") as log:
                log.write(f"{name} {ctx.get('job_id', '-')}\n")

    return hook


@z4j_arq.instrument
class WorkerSettings:
    functions = [succeed, fail, retry, slow, flaky]
    cron_jobs = [
        # whole seconds, so the suite's croniter oracle can compare next runs exactly
        cron(office_hours, minute={0, 15, 30, 45}, hour=set(range(9, 18)),
             weekday={0, 1, 2, 3, 4}, microsecond=0),
        cron(monthly, day=1, hour=3, minute=30, microsecond=0),
    ]  # fmt: skip
    redis_settings = REDIS
    max_jobs = 2
    poll_delay = 0.05
    allow_abort_jobs = True  # so the worker acts on Job.abort(): it advertises cancel
    timezone = datetime.timezone.utc
    on_startup = _log_hook("user_on_startup")
    on_shutdown = _log_hook("user_on_shutdown")
    on_job_start = _log_hook("user_on_job_start")
    after_job_end = _log_hook("user_after_job_end")
