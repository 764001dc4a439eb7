"""Starting real Celery workers for the conformance suite and the adapter's own tests."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from z4j_core.testing.conformance import EngineHarness, ExpectedSchedule, WorkerContext
from z4j_core.testing.engines import ENGINES, WorkerProcess, WorkerRun, worker_env
from z4j_core.testing.services import run_id

HERE = Path(__file__).parent
APP = "z4j-conformance"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def queue_name(label: str) -> str:
    """A queue of this test run alone (brokers are shared between runs)."""
    return f"z4j-{run_id()}-{label}"


def start_celery(
    *,
    pool: str,
    concurrency: int,
    broker: str,
    queue: str,
    context: WorkerContext,
    backend: str = "",
) -> WorkerProcess:
    """One `celery worker` process (and the pool children it forks); SIGTERM is its warm
    shutdown."""
    context.workdir.mkdir(parents=True, exist_ok=True)
    run = WorkerRun(
        sys.executable,
        "celery_conformance_app",
        concurrency=concurrency,
        queues=(queue,),
        pool=pool,
        options=("--hostname", f"{pool}-{os.getpid()}@%h", "--loglevel", "INFO"),
    )
    extra = {
        **context.env,
        "CELERY_CONFORMANCE_BROKER": broker,
        "CELERY_CONFORMANCE_BACKEND": backend,
        "CELERY_CONFORMANCE_QUEUE": queue,
    }
    log_path = context.workdir / f"worker-{pool}-{time.monotonic_ns()}.log"
    env = worker_env(HERE, extra=extra, tz=None)
    return WorkerProcess.start(ENGINES["celery"], run, env, log_path, cwd=HERE)


def wait_ready(worker: WorkerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in worker.output():
            return
        if not worker.alive():
            raise AssertionError(f"the worker exited early:\n{worker.output(3000)}")
        time.sleep(0.1)
    raise AssertionError(f"the worker was not ready within {timeout}s:\n{worker.output()}")


SCHEDULES = [
    ExpectedSchedule(
        task="celery_conformance_app.succeed",
        kind="cron",
        expression="*/15 9-17 * * 1-5",
        day_and_weekday=True,
    ),
    ExpectedSchedule(
        task="celery_conformance_app.fail",
        kind="cron",
        expression="30 3 1 * *",
        day_and_weekday=True,
    ),
]


def harness(
    pool: str, broker: str, label: str, backend: str = "", broker_proven_by: str | None = None
) -> EngineHarness:
    concurrency = 1 if pool == "solo" else 2
    queue = queue_name(label)

    def start(context: WorkerContext) -> WorkerProcess:
        worker = start_celery(
            pool=pool, concurrency=concurrency, broker=broker, queue=queue,
            context=context, backend=backend,
        )  # fmt: skip
        wait_ready(worker)
        return worker

    return EngineHarness(
        engine="celery",
        app=APP,
        succeed="celery_conformance_app.succeed",
        fail="celery_conformance_app.fail",
        fail_exception="ConformanceError",
        retry="celery_conformance_app.retry",
        slow="celery_conformance_app.slow",
        flaky="celery_conformance_app.flaky",
        start_worker=start,
        concurrency=concurrency,
        # A worker acks a task as it starts it (acks_late is off), then reserves as many more
        # as its prefetch allows: two per slot (celery_conformance_app: multiplier 2).
        prefetch=2 * concurrency,
        queue=queue,
        schedules=SCHEDULES,
        broker_proven_by=broker_proven_by,
    )
