"""Starting real Huey consumers for the conformance suite and the demo-style tests."""

from __future__ import annotations

import sys
from pathlib import Path

from z4j_core.testing.conformance import (
    EngineHarness,
    ExpectedSchedule,
    WorkerContext,
)
from z4j_core.testing.engines import ENGINES, WorkerProcess, WorkerRun, worker_env

HERE = Path(__file__).parent
APP = "z4j-conformance"
WORKERS = 2


def start_consumer(worker_type: str, storage: str, context: WorkerContext) -> WorkerProcess:
    """One `huey_consumer` process (and the worker processes it forks)."""
    run = WorkerRun(
        sys.executable,
        "huey_conformance_app.huey",
        concurrency=WORKERS,
        pool=worker_type,
        script=str(HERE / "huey_gevent_consumer.py") if worker_type == "greenlet" else None,
        options=("--delay", "0.05", "--max-delay", "0.2", "--verbose"),
    )
    env = worker_env(HERE, extra={**context.env, "HUEY_CONFORMANCE_STORAGE": storage}, tz=None)
    log_path = context.workdir / f"consumer-{worker_type}.log"
    return WorkerProcess.start(ENGINES["huey"], run, env, log_path, cwd=HERE)


SCHEDULES = [
    ExpectedSchedule(
        task="huey_conformance_app.office_hours",
        kind="cron",
        expression="*/15 9-17 * * 1-5",
        day_and_weekday=True,
    ),
    ExpectedSchedule(
        task="huey_conformance_app.monthly",
        kind="cron",
        expression="30 3 1 * *",
        day_and_weekday=True,
    ),
]


def harness(worker_type: str, storage: str) -> EngineHarness:
    return EngineHarness(
        engine="huey",
        app=APP,
        succeed="huey_conformance_app.succeed",
        fail="huey_conformance_app.fail",
        fail_exception="ConformanceError",
        retry="huey_conformance_app.retry",
        slow="huey_conformance_app.slow",
        start_worker=lambda context: start_consumer(worker_type, storage, context),
        concurrency=WORKERS,
        schedules=SCHEDULES,
        flaky="huey_conformance_app.flaky",
        queue=APP,
    )
