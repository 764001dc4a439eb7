"""Starting real `rq worker` (and `rq cron`) processes for the conformance suite and RQ tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from z4j_core.testing.conformance import EngineHarness, ExpectedSchedule, WorkerContext

HERE = Path(__file__).parent
APP = "z4j-conformance"
RQ = str(Path(sys.executable).parent / "rq")


def rq_env(redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **extra,
        "Z4J_APP": APP,
        "RQ_CONFORMANCE_URL": redis_url,
        "TZ": "UTC",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }


class Process:
    """One child process in its own session; `stop()` ends it and everything it started."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        log = open(log_path, "ab")  # noqa: SIM115 -- handed to the child
        self.process = subprocess.Popen(
            argv, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # RQ's warm shutdown
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait(10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class RQProcesses:
    """An `rq worker -w <class>` process, and optionally an `rq cron` process beside it."""

    def __init__(
        self,
        redis_url: str,
        context: WorkerContext,
        worker_class: str = "z4j_rq.Worker",
        cron: bool = True,
        queues: tuple[str, ...] = ("default",),
    ) -> None:
        env = rq_env(redis_url, context.env)
        tag = worker_class.rpartition(".")[2]
        self.processes = []
        if cron:
            self.processes.append(
                Process(
                    [RQ, "cron", str(HERE / "rq_conformance_cron.py"), "-u", redis_url],
                    env,
                    context.workdir / "cron.log",
                )
            )
        self.worker = Process(
            [
                RQ,
                "worker",
                "-w",
                worker_class,
                "-c",
                "rq_conformance_settings",
                "-u",
                redis_url,
                "--with-scheduler",
                "--job-monitoring-interval",
                "1",
                *queues,
            ],
            env,
            context.workdir / f"worker-{tag}.log",
        )
        self.processes.append(self.worker)
        time.sleep(0.2)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def output(self) -> str:
        return "\n".join(p.output() for p in self.processes)


SCHEDULES = [
    ExpectedSchedule(
        task="rq_conformance_app.office_hours", kind="cron", expression="*/15 9-17 * * 1-5"
    ),
    ExpectedSchedule(task="rq_conformance_app.monthly", kind="cron", expression="30 3 1 * *"),
]


def harness(redis_url: str, worker_class: str = "z4j_rq.Worker") -> EngineHarness:
    from redis import Redis

    Redis.from_url(redis_url).flushdb()  # each class starts from an empty database

    def in_process_adapter() -> tuple[object, object]:
        from redis import Redis

        from z4j_core.plugins import load_adapters
        from z4j_rq.adapter import create_adapter

        adapter = create_adapter(Redis.from_url(redis_url), {"app_name": APP})
        assert adapter is not None
        adapter.declare(["rq_conformance_app.succeed"])  # known: no import in this process
        return adapter, load_adapters().hook

    return EngineHarness(
        engine="rq",
        app=APP,
        succeed="rq_conformance_app.succeed",
        fail="rq_conformance_app.fail",
        fail_exception="ConformanceError",
        retry="rq_conformance_app.retry",
        slow="rq_conformance_app.slow",
        start_worker=lambda context: RQProcesses(redis_url, context, worker_class),
        concurrency=1,
        schedules=SCHEDULES,
        in_process_adapter=in_process_adapter,
    )
