"""Starting real `arq` worker processes for the conformance suite and the lifecycle tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from z4j_core.testing.conformance import EngineHarness, ExpectedSchedule, WorkerContext
from z4j_core.testing.engines import ENGINES, WorkerProcess, WorkerRun, worker_env

HERE = Path(__file__).parent
APP = "z4j-conformance"
CONCURRENCY = 2  # WorkerSettings.max_jobs


def arq_worker(
    redis_url: str,
    context: WorkerContext,
    settings: str = "arq_conformance_app.WorkerSettings",
    env: dict[str, str] | None = None,
) -> WorkerProcess:
    """One `arq <settings>` process in its own session; SIGTERM stops it (on_shutdown runs)."""
    extra = {**context.env, **(env or {}), "ARQ_CONFORMANCE_URL": redis_url}
    return WorkerProcess.start(
        ENGINES["arq"],
        WorkerRun(sys.executable, settings),
        worker_env(HERE, app=APP, extra=extra, tz=None),
        context.workdir / f"worker-{settings.rpartition('.')[2]}.log",
        cwd=HERE,
    )


SCHEDULES = [
    ExpectedSchedule(
        task="cron:office_hours",
        kind="cron",
        expression="*/15 9-17 * * 1-5",
        day_and_weekday=True,
    ),
    ExpectedSchedule(
        task="cron:monthly", kind="cron", expression="30 3 1 * *", day_and_weekday=True
    ),
]


def flush(redis_url: str) -> None:
    from redis import Redis

    Redis.from_url(redis_url).flushdb()


def in_process_adapter(redis_url: str) -> Any:
    """A producer's adapter in the test process (an ArqRedis pool, no worker here)."""
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool

    from z4j_arq.adapter import ArqAdapter

    adapter = ArqAdapter.create(ArqRedis(ConnectionPool.from_url(redis_url)), {"app_name": APP})
    assert adapter is not None
    return adapter


def harness(redis_url: str) -> EngineHarness:
    flush(redis_url)  # each class starts from an empty database
    return EngineHarness(
        engine="arq",
        app=APP,
        succeed="succeed",
        fail="fail",
        fail_exception="ConformanceError",
        retry="retry",
        slow="slow",
        flaky="flaky",
        queue="arq:queue",
        start_worker=lambda context: arq_worker(redis_url, context),
        concurrency=CONCURRENCY,
        schedules=SCHEDULES,
        in_process_adapter=lambda: in_process_adapter(redis_url),
    )
