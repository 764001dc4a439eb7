"""Starting real Celery workers for the conformance suite and the adapter's own tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from z4j_core.testing.conformance import EngineHarness, ExpectedSchedule, WorkerContext
from z4j_core.testing.services import run_id

HERE = Path(__file__).parent
APP = "z4j-conformance"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


def queue_name(label: str) -> str:
    """A queue of this test run alone (brokers are shared between runs)."""
    return f"z4j-{run_id()}-{label}"


class WorkerProcess:
    """One `celery worker` process (and the pool children it forks)."""

    def __init__(
        self,
        *,
        pool: str,
        concurrency: int,
        broker: str,
        queue: str,
        context: WorkerContext,
        backend: str = "",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        context.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = context.workdir / f"worker-{pool}-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            **context.env,
            **(extra_env or {}),
            "CELERY_CONFORMANCE_BROKER": broker,
            "CELERY_CONFORMANCE_BACKEND": backend,
            "CELERY_CONFORMANCE_QUEUE": queue,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 -- handed to the child
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "celery_conformance_app", "worker",
                "--pool", pool, "--concurrency", str(concurrency), "--queues", queue,
                "--hostname", f"{pool}-{os.getpid()}@%h", "--loglevel", "INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=HERE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.output():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited early:\n{self.output()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"the worker was not ready within {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # Celery's warm shutdown
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        try:  # nothing the worker forked may outlive it
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


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


def harness(pool: str, broker: str, label: str, backend: str = "") -> EngineHarness:
    concurrency = 1 if pool == "solo" else 2
    queue = queue_name(label)

    def start(context: WorkerContext) -> WorkerProcess:
        worker = WorkerProcess(
            pool=pool, concurrency=concurrency, broker=broker, queue=queue,
            context=context, backend=backend,
        )  # fmt: skip
        worker.wait_ready()
        return worker

    return EngineHarness(
        engine="celery",
        app=APP,
        succeed="celery_conformance_app.succeed",
        fail="celery_conformance_app.fail",
        fail_exception="ConformanceError",
        retry="celery_conformance_app.retry",
        slow="celery_conformance_app.slow",
        start_worker=start,
        concurrency=concurrency,
        schedules=SCHEDULES,
    )
