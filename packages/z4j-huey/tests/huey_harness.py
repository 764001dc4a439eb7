"""Starting real Huey consumers for the conformance suite and the demo-style tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from z4j_core.testing.conformance import (
    EngineHarness,
    ExpectedSchedule,
    WorkerContext,
)

HERE = Path(__file__).parent
APP = "z4j-conformance"
WORKERS = 2


class ConsumerProcess:
    """One `huey_consumer` process (and the worker processes it forks)."""

    def __init__(self, worker_type: str, storage: str, context: WorkerContext) -> None:
        self.log_path = context.workdir / f"consumer-{worker_type}.log"
        entry = (
            [str(HERE / "huey_gevent_consumer.py")]
            if worker_type == "greenlet"
            else ["-m", "huey.bin.huey_consumer"]
        )
        env = {
            **os.environ,
            **context.env,
            "HUEY_CONFORMANCE_STORAGE": storage,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 -- handed to the child
        self.process = subprocess.Popen(
            [
                sys.executable,
                *entry,
                "huey_conformance_app.huey",
                "--workers",
                str(WORKERS),
                "--worker-type",
                worker_type,
                "--delay",
                "0.05",
                "--max-delay",
                "0.2",
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
            self.process.send_signal(signal.SIGINT)  # Huey's graceful stop
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        # Nothing the consumer forked may outlive it.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


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
        start_worker=lambda context: ConsumerProcess(worker_type, storage, context),
        concurrency=WORKERS,
        schedules=SCHEDULES,
    )
