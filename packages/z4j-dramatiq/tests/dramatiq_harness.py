"""Starting real `dramatiq` worker processes for the conformance suite and the lifecycle tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from z4j_core.testing import services
from z4j_core.testing.conformance import EngineHarness, ExpectedSchedule, WorkerContext

HERE = Path(__file__).parent
APP = "z4j-conformance"
PROCESSES = 2
THREADS = 2
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def queue_for(label: str) -> str:
    """A queue of this test run's own, so runs sharing a RabbitMQ never meet."""
    return f"z4j-{services.run_id()}-{label}"


class DramatiqProcess:
    """One `dramatiq` supervisor and the worker processes it starts."""

    def __init__(
        self,
        broker_url: str,
        queue: str,
        context: WorkerContext,
        module: str = "dramatiq_conformance_app",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = context.workdir / f"dramatiq-{queue}.log"
        self.broker_url = broker_url
        self.queue = queue
        env = {
            **os.environ,
            **context.env,
            **(extra_env or {}),
            "TZ": "UTC",
            "DRAMATIQ_CONFORMANCE_BROKER": broker_url,
            "DRAMATIQ_CONFORMANCE_QUEUE": queue,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 -- handed to the child
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dramatiq",
                module,
                "--processes",
                str(PROCESSES),
                "--threads",
                str(THREADS),
                "--worker-shutdown-timeout",
                "5000",
                "--verbose",
            ],
            cwd=HERE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # Dramatiq's graceful stop
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        # Nothing the supervisor started may outlive it.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


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
        start_worker=lambda context: DramatiqProcess(broker_url, queue, context),
        concurrency=PROCESSES * THREADS,
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
