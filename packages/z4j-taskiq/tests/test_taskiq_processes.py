"""Real processes around a real brain: a producer's `enqueued` next to a worker's events, a
`taskiq scheduler` that kicks a schedule stored in Redis and reports it, and a worker whose
brain is unreachable still stopping at once (the agent never keeps a process alive)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from taskiq_harness import HERE, start_taskiq

from z4j_core.testing.brainproc import BrainProcess
from z4j_core.testing.conformance import MARKS_ENV, WorkerContext

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(120)]

PRODUCER = """
import asyncio, os, sys
from taskiq_conformance_app import broker, succeed

async def main():
    await broker.startup()
    sent = await succeed.kiq(sys.argv[1])
    print(sent.task_id, os.getpid(), flush=True)
    await broker.shutdown()

asyncio.run(main())
"""


def context(brain: BrainProcess, token: str, work: Path) -> WorkerContext:
    (work / "marks.log").touch()
    env = {
        "Z4J_BRAIN_URL": brain.url,
        "Z4J_TOKEN": token,
        "Z4J_SPOOL_DIR": str(work / "spool"),
        MARKS_ENV: str(work / "marks.log"),
    }
    return WorkerContext(brain, env, work)


def events(brain: BrainProcess, task_id: str, wanted: set[str], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = brain.api("GET", f"/api/v1/tasks/{task_id}/events?engine=taskiq")["events"]
        if wanted <= {e["kind"] for e in found} or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_producer_reports_enqueued_and_the_worker_the_rest(
    redis_url: str, tmp_path: Path
) -> None:
    broker = f"list:{redis_url}"
    brain = BrainProcess(tmp_path / "brain")
    ctx = context(brain, brain.create_token("t"), tmp_path)
    with brain:  # starts it, and stops it at the end
        worker = start_taskiq(broker, ctx, workers=1)
        try:
            token = uuid.uuid4().hex
            env = {**os.environ, **ctx.env, "TASKIQ_CONFORMANCE_BROKER": broker}
            env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
            # A busy machine may take more than the default 5 s to connect and drain; what a
            # producer cannot send in time is spooled for its next start, not sent by the worker.
            env["Z4J_DRAIN_TIMEOUT"] = "30"
            out = subprocess.run(
                [sys.executable, "-c", PRODUCER, token], env=env, capture_output=True,
                text=True, timeout=90, check=True, cwd=HERE,
            )  # fmt: skip
            task_id, producer_pid = out.stdout.split()
            found = events(brain, task_id, {"enqueued", "started", "succeeded"}, timeout=60)
            by_kind = {e["kind"]: e for e in found}
            assert set(by_kind) == {"enqueued", "started", "succeeded"}, (
                found,
                out.stderr[-2000:],
                worker.output(),
            )
            assert by_kind["enqueued"]["worker"].endswith(f":{producer_pid}")
            assert not by_kind["started"]["worker"].endswith(f":{producer_pid}")
        finally:
            worker.stop()


def test_the_scheduler_process_kicks_and_reports_a_schedule_stored_in_redis(
    redis_url: str, tmp_path: Path
) -> None:
    from taskiq.scheduler.scheduled_task import ScheduledTask
    from taskiq_redis import ListRedisScheduleSource

    prefix = f"z4j-sched-{uuid.uuid4().hex[:8]}"
    source = ListRedisScheduleSource(redis_url, prefix=prefix)
    token = uuid.uuid4().hex

    async def store() -> None:
        await source.add_schedule(
            ScheduledTask(
                task_name="taskiq_conformance_app.succeed",
                labels={},
                args=[token],
                kwargs={},
                schedule_id="every-2s",
                interval=2,
            )
        )
        await source._connection_pool.disconnect()

    asyncio.run(store())
    broker = f"list:{redis_url}"
    brain = BrainProcess(tmp_path / "brain")
    ctx = context(brain, brain.create_token("t"), tmp_path)
    with brain:  # starts it, and stops it at the end
        worker = start_taskiq(broker, ctx, workers=1)
        env = {**os.environ, **ctx.env, "TASKIQ_CONFORMANCE_BROKER": broker}
        env["TASKIQ_SCHEDULE_PREFIX"] = prefix
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
        log = open(tmp_path / "scheduler.log", "ab")  # noqa: SIM115
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "taskiq", "scheduler", "taskiq_scheduler_app:scheduler"],
            cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        try:
            deadline = time.monotonic() + 40
            stored: dict[str, Any] = {}
            while time.monotonic() < deadline and not stored.get("next_runs"):
                for item in brain.api("GET", "/api/v1/inventory")["inventory"]:
                    for schedule in item["schedules"]:
                        if schedule["source"] == "taskiq_redis_list":
                            stored = schedule
                time.sleep(0.2)
            assert stored, (tmp_path / "scheduler.log").read_text()
            assert (stored["name"], stored["kind"], stored["expression"]) == (
                "every-2s",
                "interval",
                "every 2s",
            )
            runs = stored["next_runs"]
            assert runs and all(b - a == 2 for a, b in itertools.pairwise(runs)), runs
            marks = tmp_path / "marks.log"
            while time.monotonic() < deadline and marks.read_text().count(token) < 2:
                time.sleep(0.2)
            assert marks.read_text().count(token) >= 2, worker.output()
        finally:
            scheduler.terminate()
            scheduler.wait(20)
            worker.stop()
            import redis

            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(f"{prefix}:*"):
                client.delete(key)
            client.close()


@pytest.mark.parametrize("kind", ["list", "stream"])
def test_a_worker_with_an_unreachable_brain_stops_promptly(
    kind: str, redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "marks.log").touch()
    env = {
        "Z4J_BRAIN_URL": "ws://127.0.0.1:9/",
        "Z4J_TOKEN": "nobody",
        "Z4J_SPOOL_DIR": str(tmp_path / "spool"),
        MARKS_ENV: str(tmp_path / "marks.log"),
    }
    worker = start_taskiq(f"{kind}:{redis_url}", WorkerContext(None, env, tmp_path), workers=1)  # type: ignore[arg-type]
    time.sleep(4)  # started, the agent retrying its connection
    # taskiq's main process itself can take long to exit after SIGINT (with or without z4j);
    # what the agent could hold up is the worker process, which must stop at once.
    worker.process.send_signal(signal.SIGINT)
    began = time.monotonic()
    try:
        while "Stopped process worker-0" not in worker.output():
            assert time.monotonic() - began < 15, (
                f"the worker process did not stop\n{worker.output()}"
            )
            time.sleep(0.1)
    finally:
        worker.stop(timeout=1)
