"""Starting real `taskiq worker` processes for the conformance suite and the other tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from z4j_core.testing.conformance import EngineHarness, ExpectedSchedule, WorkerContext

HERE = Path(__file__).parent
APP = "z4j-conformance"
WORKERS = 2
ASYNC_TASKS = 4


class WorkerProcess:
    """One `taskiq worker` command (its main process and the worker processes it starts)."""

    def __init__(
        self,
        broker: str,
        context: WorkerContext,
        *,
        module: str = "taskiq_conformance_app:broker",
        workers: int = WORKERS,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = context.workdir / f"worker-{os.getpid()}-{id(self)}.log"
        env = {
            **os.environ,
            **context.env,
            **(extra_env or {}),
            "TASKIQ_CONFORMANCE_BROKER": broker,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 -- handed to the child
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskiq",
                "worker",
                module,
                "--workers",
                str(workers),
                "--max-async-tasks",
                str(ASYNC_TASKS),
                "--shutdown-timeout",
                "5",
            ],
            cwd=HERE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGINT (taskiq's graceful stop); True when everything ended within `timeout`."""
        graceful = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                graceful = False
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        try:  # nothing the worker started may outlive it
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return graceful

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


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
        start_worker=lambda context: WorkerProcess(broker, context),
        concurrency=WORKERS * ASYNC_TASKS,
        schedules=SCHEDULES,
    )
