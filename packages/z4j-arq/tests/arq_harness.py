"""Starting real `arq` worker processes for the conformance suite and the lifecycle tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from z4j_core.testing.conformance import EngineHarness, ExpectedSchedule, WorkerContext

HERE = Path(__file__).parent
APP = "z4j-conformance"
ARQ = str(Path(sys.executable).parent / "arq")
CONCURRENCY = 2  # WorkerSettings.max_jobs


def arq_env(redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        **extra,
        "Z4J_APP": APP,
        "ARQ_CONFORMANCE_URL": redis_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }


class ArqWorker:
    """One `arq <settings>` process in its own session."""

    def __init__(
        self,
        redis_url: str,
        context: WorkerContext,
        settings: str = "arq_conformance_app.WorkerSettings",
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = context.workdir / f"worker-{settings.rpartition('.')[2]}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 -- handed to the child
        self.process = subprocess.Popen(
            [ARQ, settings],
            cwd=HERE,
            env=arq_env(redis_url, {**context.env, **(env or {})}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # arq's shutdown: on_shutdown runs
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


SCHEDULES = [
    ExpectedSchedule(
        task="cron:office_hours",
        kind="cron",
        expression="*/15 9-17 * * 1-5",
        day_and_weekday=True,
    ),
    ExpectedSchedule(
        task="cron:monthly", kind="cron", expression="30 3 1 * *", day_and_weekday=True
    ),
]


def flush(redis_url: str) -> None:
    from redis import Redis

    Redis.from_url(redis_url).flushdb()


def in_process_adapter(redis_url: str) -> tuple[Any, Any]:
    """A producer's adapter in the test process (an ArqRedis pool, no worker here)."""
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool

    from z4j_arq.adapter import create_adapter
    from z4j_core.plugins import load_adapters

    adapter = create_adapter(ArqRedis(ConnectionPool.from_url(redis_url)), {"app_name": APP})
    assert adapter is not None
    return adapter, load_adapters().hook


def harness(redis_url: str) -> EngineHarness:
    flush(redis_url)  # each class starts from an empty database
    return EngineHarness(
        engine="arq",
        app=APP,
        succeed="succeed",
        fail="fail",
        fail_exception="ConformanceError",
        retry="retry",
        slow="slow",
        start_worker=lambda context: ArqWorker(redis_url, context),
        concurrency=CONCURRENCY,
        schedules=SCHEDULES,
        in_process_adapter=lambda: in_process_adapter(redis_url),
    )
