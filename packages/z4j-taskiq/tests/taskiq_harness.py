"""Starting real `taskiq worker` processes for the conformance suite and the other tests."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from z4j_core.testing.conformance import EngineHarness, ExpectedSchedule, WorkerContext
from z4j_core.testing.engines import ENGINES, WorkerProcess, WorkerRun, worker_env

HERE = Path(__file__).parent
APP = "z4j-conformance"
WORKERS = 2
ASYNC_TASKS = 4


def start_taskiq(broker: str, context: WorkerContext, *, workers: int = WORKERS) -> WorkerProcess:
    """One `taskiq worker` command (its main process and the worker processes it starts);
    `stop()` gives it 20 s, not the spec's shorter wait, as these tests always have."""
    run = WorkerRun(
        sys.executable,
        "taskiq_conformance_app:broker",
        processes=workers,
        concurrency=ASYNC_TASKS,
        options=("--shutdown-timeout", "5"),
    )
    env = worker_env(HERE, extra={**context.env, "TASKIQ_CONFORMANCE_BROKER": broker}, tz=None)
    log_path = context.workdir / f"worker-{os.getpid()}-{time.monotonic_ns()}.log"
    return WorkerProcess.start(ENGINES["taskiq"], run, env, log_path, cwd=HERE, stop_timeout=20)


SCHEDULES = [
    ExpectedSchedule(
        task="taskiq_conformance_app.succeed", kind="cron", expression="*/15 9-17 * * 1-5"
    ),
    ExpectedSchedule(task="taskiq_conformance_app.fail", kind="cron", expression="30 3 1 * *"),
]


def harness(broker: str) -> EngineHarness:
    return EngineHarness(
        engine="taskiq",
        app=APP,
        succeed="taskiq_conformance_app.succeed",
        fail="taskiq_conformance_app.fail",
        fail_exception="ConformanceError",
        retry="taskiq_conformance_app.retry",
        slow="taskiq_conformance_app.slow",
        flaky="taskiq_conformance_app.flaky",
        queue=f"z4j-conformance-{broker.partition(':')[0]}",  # taskiq_conformance_app's
        start_worker=lambda context: start_taskiq(broker, context),
        concurrency=WORKERS * ASYNC_TASKS,
        prefetch=WORKERS,  # a worker process's listener may hold one message it cannot run yet
        schedules=SCHEDULES,
    )
