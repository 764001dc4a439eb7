"""Starting real `dramatiq` worker processes for the conformance suite and the lifecycle tests."""

from __future__ import annotations

import sys
from pathlib import Path

from z4j_core.testing import services
from z4j_core.testing.conformance import EngineHarness, ExpectedSchedule, WorkerContext
from z4j_core.testing.engines import ENGINES, WorkerProcess, WorkerRun, worker_env

HERE = Path(__file__).parent
APP = "z4j-conformance"
PROCESSES = 2
THREADS = 2
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def queue_for(label: str) -> str:
    """A queue of this test run's own, so runs sharing a RabbitMQ never meet."""
    return f"z4j-{services.run_id()}-{label}"


def start_dramatiq(broker_url: str, queue: str, context: WorkerContext) -> WorkerProcess:
    """One `dramatiq` supervisor and the worker processes it starts."""
    run = WorkerRun(
        sys.executable,
        "dramatiq_conformance_app",
        processes=PROCESSES,
        concurrency=THREADS,
        options=("--worker-shutdown-timeout", "5000", "--verbose"),
    )
    extra = {**context.env, "DRAMATIQ_CONFORMANCE_BROKER": broker_url,
             "DRAMATIQ_CONFORMANCE_QUEUE": queue}  # fmt: skip
    env = worker_env(HERE, extra=extra)
    log_path = context.workdir / f"dramatiq-{queue}.log"
    return WorkerProcess.start(ENGINES["dramatiq"], run, env, log_path, cwd=HERE)


SCHEDULES = [
    ExpectedSchedule(task="office_hours", kind="cron", expression="*/15 9-17 * * 1-5"),
    ExpectedSchedule(task="monthly", kind="cron", expression="30 3 1 * *"),
]


def harness(broker_url: str, queue: str) -> EngineHarness:
    return EngineHarness(
        engine="dramatiq",
        app=APP,
        succeed="succeed",
        fail="fail",
        fail_exception="ConformanceError",
        retry="retry",
        slow="slow",
        flaky="flaky",
        queue=queue,
        start_worker=lambda context: start_dramatiq(broker_url, queue, context),
        concurrency=PROCESSES * THREADS,
        # A busy worker process holds two messages per thread (its consumer's prefetch) and one
        # more that its consumer thread has fetched and is handing over (seen on Redis).
        prefetch=PROCESSES * (THREADS + 1),
        schedules=SCHEDULES,
    )


def delete_rabbitmq_queues(queue: str) -> None:
    """Remove a run's queue with its delay and dead-letter queues from the shared RabbitMQ."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
    finally:
        connection.close()
