"""RQ lifecycle through a real brain and real `rq worker -w z4j_rq.Worker` processes: retried,
stopped, cancelled and abandoned jobs, the producer side, and no agent in a work horse."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.registry import StartedJobRegistry
from rq_harness import APP, harness

from z4j_core.agent import Agent
from z4j_core.testing.conformance import (
    MARKS_ENV,
    Deployment,
    start_deployment,
    stop_deployment,
)
from z4j_rq import capture, worker
from z4j_rq.adapter import RQAdapter

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(120)]


FORKING = "z4j_rq.Worker"


@pytest.fixture(scope="module", params=[FORKING, "z4j_rq.SimpleWorker"])
def deployment(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    deployment = start_deployment(
        harness(redis_url, request.param), tmp_path_factory.mktemp("rq-lifecycle")
    )
    deployment.worker_class = request.param  # type: ignore[attr-defined]
    yield deployment
    stop_deployment(deployment)


def forking(deployment: Deployment) -> bool:
    return deployment.worker_class == FORKING  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def producer(
    deployment: Deployment, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Queue]:
    """A producer in this process: an agent of its own and RQ's producer-side capture."""
    os.environ[MARKS_ENV] = str(deployment.marks_path)
    token = deployment.brain.create_token("producer")
    agent = Agent(
        brain_url=deployment.brain.url,
        token=token,
        app_name=APP,
        spool_dir=str(tmp_path_factory.mktemp("producer-spool")),
    )
    queue = Queue("default", connection=Redis.from_url(redis_url))
    adapter = RQAdapter.create(queue, {"app_name": APP})
    assert adapter is not None
    capture.install(adapter, agent.add_adapter(adapter))
    agent.start()
    assert agent.wait_connected(20), agent.stats
    yield queue
    adapter.uninstall_capture()
    agent.stop(5)
    os.environ.pop(MARKS_ENV, None)


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in sorted(events, key=lambda e: (e["at"], e["position"]))]


def settled(deployment: Deployment, task_id: str, count: int, timeout: float = 30) -> list[Any]:
    """The task's events once a terminal one and at least `count` in all are stored (the
    producer's and the worker's agents send their batches independently)."""
    from z4j_core.testing.conformance import TERMINAL_KINDS

    return deployment.wait_for(
        task_id,
        lambda events: len(events) >= count and any(e["kind"] in TERMINAL_KINDS for e in events),
        timeout=timeout,
    )


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def wait_marks_with(deployment: Deployment, prefix: str, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in deployment.marks() if m.startswith(prefix)]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no mark starting {prefix!r}: {deployment.marks()}")


def test_the_producer_reports_enqueued_and_a_retried_job_is_not_a_failure(
    deployment: Deployment, producer: Queue
) -> None:
    mark = f"retry-{time.time_ns()}"
    job = producer.enqueue(
        "rq_conformance_app.raise_until", mark, 2, retry=Retry(max=3), job_id=f"r-{time.time_ns()}"
    )
    events = settled(deployment, job.id, 7)
    assert kinds(events) == [
        "enqueued",
        "started",
        "retried",
        "started",
        "retried",
        "started",
        "succeeded",
    ], kinds(events)
    retried = [e for e in events if e["kind"] == "retried"]
    assert [e["retries"] for e in sorted(retried, key=lambda e: e["at"])] == [2, 1]
    for event in retried:
        if forking(deployment):
            # RQ records nothing about an attempt it retries, and the horse is gone.
            assert event["exception"] is None, event
            assert "no traceback" in event["message"], event
        else:
            # A SimpleWorker runs the job in this process: the exception is seen first-hand.
            assert event["exception"] == "rq_conformance_app.ConformanceError", event
            assert "ConformanceError" in event["traceback"], event
        assert "pw-in-message" not in json.dumps(event), "a secret in the message left"
    assert not [e for e in events if e["kind"] == "failed"]
    assert deployment.marks().count(mark) == 3


def test_a_job_out_of_retries_fails_with_the_last_traceback(
    deployment: Deployment, producer: Queue
) -> None:
    mark = f"out-{time.time_ns()}"
    job = producer.enqueue("rq_conformance_app.raise_until", mark, 5, retry=Retry(max=1))
    events = settled(deployment, job.id, 5)
    assert kinds(events) == ["enqueued", "started", "retried", "started", "failed"], kinds(events)
    failed = (
        events[-1]
        if events[-1]["kind"] == "failed"
        else next(e for e in events if e["kind"] == "failed")
    )
    assert failed["exception"] == "rq_conformance_app.ConformanceError"
    assert failed["retries"] == 0
    assert "raise_until" in failed["traceback"]
    assert "pw-in-message" not in json.dumps(events), "a secret in a traceback left"


def test_a_stopped_job_is_revoked(deployment: Deployment, producer: Queue) -> None:
    if not forking(deployment):
        pytest.skip("RQ stops a job by killing its work horse; a SimpleWorker has none")
    mark = f"stop-{time.time_ns()}"
    job = producer.enqueue("rq_conformance_app.slow", mark, 30)
    deployment.wait_marks({mark: 1})
    send_stop_job_command(producer.connection, job.id)
    events = settled(deployment, job.id, 3)
    assert kinds(events)[-1] == "revoked", kinds(events)
    revoked = events[-1] if events[-1]["kind"] == "revoked" else None
    revoked = next(e for e in events if e["kind"] == "revoked")
    assert "stop" in revoked["message"]
    assert revoked["extra"] == {"rq": "stopped"} or "stopped" in json.dumps(revoked["extra"])


def test_a_cancelled_job_is_reported_by_the_process_that_cancelled_it(
    deployment: Deployment, producer: Queue
) -> None:
    parked = Queue("parked-no-worker", connection=producer.connection)
    job = parked.enqueue("rq_conformance_app.succeed", "never")
    job.cancel()
    events = settled(deployment, job.id, 2)
    assert kinds(events) == ["enqueued", "cancelled"], kinds(events)
    assert job.get_status() == "canceled"


def test_a_delayed_job_is_reported_scheduled_then_runs(
    deployment: Deployment, producer: Queue
) -> None:
    mark = f"later-{time.time_ns()}"
    job = producer.enqueue_in(
        __import__("datetime").timedelta(seconds=2), "rq_conformance_app.succeed", mark
    )
    events = settled(deployment, job.id, 3)
    assert kinds(events) == ["scheduled", "started", "succeeded"], kinds(events)
    assert "eta" in events[0]["extra"] or "eta" in json.dumps(events)


def test_a_work_horse_never_starts_an_agent(deployment: Deployment, producer: Queue) -> None:
    """The job runs in a forked horse and enqueues another job from there: no agent may
    connect from the horse (it would be one connection per job)."""
    if not forking(deployment):
        pytest.skip("a SimpleWorker has no work horse")
    mark = f"horse-{time.time_ns()}"
    job = producer.enqueue("rq_conformance_app.whoami", mark)
    deployment.wait_for(job.id)
    child = producer.enqueue("rq_conformance_app.enqueue_child", f"{mark}-child")
    deployment.wait_for(child.id)
    deployment.wait_marks({f"{mark}-child": 1})
    (line,) = wait_marks_with(deployment, f"{mark}:")
    horse_pid = int(line.split(":")[1])
    agents = deployment.brain.api("GET", "/api/v1/agents?all=1")["agents"]
    pids = {a["pid"] for a in agents}
    worker_pid = deployment.worker.worker.process.pid  # type: ignore[attr-defined]
    assert horse_pid != worker_pid
    assert horse_pid not in pids, f"the horse {horse_pid} connected an agent: {pids}"
    assert worker_pid in pids


def test_an_abandoned_job_is_reported_when_rq_cleans_up(
    redis_url: str, tmp_path: Path, deployment: Deployment, producer: Queue
) -> None:
    """A worker killed mid-job leaves the job in StartedJobRegistry; RQ's cleanup (which any
    worker's maintenance runs, here called directly with a cut-off past the heartbeat) calls
    our exception handler, which reports the job failed: it has no retries left."""
    from rq_harness import RQProcesses

    from z4j_core.testing.conformance import WorkerContext

    if not forking(deployment):
        pytest.skip("run once, beside the forking worker's deployment")
    connection = producer.connection
    env = {
        "Z4J_BRAIN_URL": deployment.brain.url,
        "Z4J_TOKEN": deployment.brain.create_token("doomed"),
        "Z4J_SPOOL_DIR": str(tmp_path / "spool"),
        MARKS_ENV: str(deployment.marks_path),
    }
    context = WorkerContext(deployment.brain, env, tmp_path)
    doomed = RQProcesses(redis_url, context, cron=False, queues=("doomed",))
    try:
        queue = Queue("doomed", connection=connection)
        mark = f"abandoned-{time.time_ns()}"
        job = queue.enqueue("rq_conformance_app.slow", mark, 60)
        deployment.wait_marks({mark: 1})
        # A SIGKILL loses what the agent had not sent yet: kill once `started` is stored.
        deployment.wait_for(job.id, lambda events: "started" in kinds(events), timeout=20)
        # The horse runs in its own process group: kill it with the worker, as a crash would.
        for pid in (*children(doomed.worker.process.pid), doomed.worker.process.pid):
            os.kill(pid, signal.SIGKILL)
        doomed.worker.process.wait(10)
    finally:
        doomed.stop()

    registry = StartedJobRegistry("doomed", connection=connection)
    assert job.id in registry.get_job_ids()
    registry.cleanup(timestamp=time.time() + 3600, exception_handlers=[worker.report_abandoned])
    assert job.get_status() == "failed"
    events = settled(deployment, job.id, 3)
    assert kinds(events) == ["enqueued", "started", "failed"], kinds(events)
    failed = next(e for e in events if e["kind"] == "failed")
    assert failed["exception"] == capture.ABANDONED, failed
    assert failed["retries"] == 0
