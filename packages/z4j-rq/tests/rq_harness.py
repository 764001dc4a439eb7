"""Starting real `rq worker` (and `rq cron`) processes for the conformance suite and RQ tests."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from z4j_core.testing.conformance import EngineHarness, ExpectedSchedule, WorkerContext
from z4j_core.testing.engines import ENGINES, WorkerProcess, WorkerRun, worker_env

HERE = Path(__file__).parent
APP = "z4j-conformance"
RQ = ENGINES["rq"]


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
        env = worker_env(HERE, app=APP, extra={**context.env, "RQ_CONFORMANCE_URL": redis_url})
        run = WorkerRun(
            sys.executable,
            "rq_conformance_settings",
            queues=queues,
            pool=worker_class,
            options=("-u", redis_url, "--with-scheduler", "--job-monitoring-interval", "1"),
        )
        self.processes = []
        if cron:  # the spec runs workers only: `rq cron` is the same `rq` command's other verb
            rq = RQ.worker(run)[0]
            argv = [rq, "cron", str(HERE / "rq_conformance_cron.py"), "-u", redis_url]
            self.processes.append(WorkerProcess(argv, env, context.workdir / "cron.log", cwd=HERE))
        log_path = context.workdir / f"worker-{worker_class.rpartition('.')[2]}.log"
        self.worker = WorkerProcess.start(RQ, run, env, log_path, cwd=HERE)
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

    def in_process_adapter() -> object:
        from redis import Redis

        from z4j_rq.adapter import RQAdapter

        adapter = RQAdapter.create(Redis.from_url(redis_url), {"app_name": APP})
        assert adapter is not None
        # Known: no import in this process.
        adapter.declare(["rq_conformance_app.succeed", "rq_conformance_app.flaky"])
        return adapter

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
        flaky="rq_conformance_app.flaky",
        queue="default",
    )
