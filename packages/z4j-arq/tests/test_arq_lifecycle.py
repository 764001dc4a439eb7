"""Lifecycle on a real `arq` worker process (arq_lifecycle_app.LifecycleSettings) on real Redis,
through a real brain: retries until arq gives up, an abort while running and before starting,
a cron job that keeps no result, a function the worker does not have, a traceback from the
job's own frame, and the user's own hooks still running beside ours."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from arq_harness import APP, arq_worker, flush

from z4j_core.testing.conformance import (
    Deployment,
    EngineHarness,
    start_deployment,
    stop_deployment,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(120)]


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in sorted(events, key=lambda e: (e["at"], e["position"]))]


@pytest.fixture(scope="module")
def hook_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hooks") / "hooks.log"
    path.touch()
    return path


@pytest.fixture(scope="module")
def deployment(
    redis_url: str, hook_log: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    flush(redis_url)
    harness = EngineHarness(
        engine="arq",
        app=APP,
        succeed="succeed",
        fail="fail",
        fail_exception="ConformanceError",
        retry="retry",
        slow="slow",
        start_worker=lambda context: arq_worker(
            redis_url,
            context,
            "arq_lifecycle_app.LifecycleSettings",
            env={"ARQ_CONFORMANCE_HOOK_LOG": str(hook_log)},
        ),
        concurrency=4,
    )
    deployment = start_deployment(harness, tmp_path_factory.mktemp("lifecycle"))
    yield deployment
    stop_deployment(deployment)


def _run(redis_url: str, work: Any) -> Any:
    """Run `work(pool)` against Redis with a plain (uninstrumented) arq pool."""
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool

    async def main() -> Any:
        pool = ArqRedis(ConnectionPool.from_url(redis_url))
        try:
            return await work(pool)
        finally:
            await pool.aclose(close_connection_pool=True)

    return asyncio.run(main())


def test_a_job_retried_until_arq_gives_up(deployment: Deployment) -> None:
    task_id = deployment.enqueue("always_retry")
    events = deployment.wait_for(task_id)
    kinds = _kinds(events)
    # max_tries = 3: three runs, each retried, then arq refuses a fourth try
    assert kinds == [
        "enqueued", "started", "retried", "started", "retried", "started", "retried", "failed",
    ], kinds  # fmt: skip
    retried = [e for e in events if e["kind"] == "retried"]
    assert sorted(e["retries"] for e in retried) == [1, 2, 3], retried
    assert all(e["exception"] == "arq.worker.Retry" for e in retried), retried
    assert "retries exceeded" in events[-1]["message"] or any(
        "retries exceeded" in (e["message"] or "") for e in events
    ), events


def test_a_failure_carries_the_traceback_of_the_job_and_user_hooks_still_run(
    deployment: Deployment, hook_log: Path
) -> None:
    task_id = deployment.enqueue("fail")
    events = deployment.wait_for(task_id)
    failed = next(e for e in events if e["kind"] == "failed")
    assert failed["exception"] == "arq_conformance_app.ConformanceError", failed
    assert 'in fail\n    raise ConformanceError("this task always fails")' in failed["traceback"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = hook_log.read_text().splitlines()
        if f"user_after_job_end {task_id}" in lines:
            break
        time.sleep(0.1)
    assert f"user_on_job_start {task_id}" in lines, lines[-10:]
    assert f"user_after_job_end {task_id}" in lines, lines[-10:]


def test_a_running_job_aborted(deployment: Deployment, redis_url: str) -> None:
    from arq.jobs import Job

    token = uuid.uuid4().hex[:12]
    task_id = deployment.enqueue("slow", token, 30)
    deployment.wait_marks({token: 1})

    async def abort(pool: Any) -> bool:
        return await Job(task_id, pool).abort(timeout=10, poll_delay=0.1)

    assert _run(redis_url, abort) is True
    events = deployment.wait_for(task_id)
    kinds = _kinds(events)
    assert kinds[-1] == "cancelled" and "started" in kinds, kinds
    assert events[-1]["exception"] == "arq.aborted", events[-1]


def test_a_deferred_job_aborted_before_it_starts(deployment: Deployment, redis_url: str) -> None:
    from arq.jobs import Job

    token = uuid.uuid4().hex[:12]
    task_id = deployment.enqueue("succeed", token, options={"delay_seconds": 30})

    async def abort(pool: Any) -> bool:
        return await Job(task_id, pool).abort(timeout=10, poll_delay=0.1)

    assert _run(redis_url, abort) is True
    events = deployment.wait_for(task_id)
    kinds = _kinds(events)
    assert kinds == ["scheduled", "cancelled"], kinds
    assert "before it started" in events[-1]["message"]
    assert token not in deployment.marks()


def test_a_cron_job_without_a_kept_result_is_reported(
    deployment: Deployment, redis_url: str
) -> None:
    from redis import Redis

    ticks = [m for m in deployment.wait_marks({}, timeout=1) if m.startswith("tick-")]
    deadline = time.monotonic() + 15
    while not ticks and time.monotonic() < deadline:
        time.sleep(0.2)
        ticks = [m for m in deployment.marks() if m.startswith("tick-")]
    assert ticks, "the cron job never ran"
    job_id = ticks[0].removeprefix("tick-")
    events = deployment.wait_for(job_id)
    kinds = _kinds(events)
    assert kinds[-1] == "succeeded" and "started" in kinds, kinds
    assert all(e["task_name"] == "cron:tick" for e in events), events
    assert events[-1]["runtime"] is not None
    assert Redis.from_url(redis_url).exists(f"arq:result:{job_id}") == 0, "arq kept a result"


def test_a_function_the_worker_does_not_have_is_rejected_by_the_worker(
    deployment: Deployment, redis_url: str
) -> None:
    job_id = f"missing-{uuid.uuid4().hex[:8]}"

    async def enqueue(pool: Any) -> Any:
        return await pool.enqueue_job("no_such_function", _job_id=job_id)

    assert _run(redis_url, enqueue) is not None
    events = deployment.wait_for(job_id)
    assert _kinds(events) == ["rejected"], _kinds(events)
    assert "not found" in events[0]["message"], events[0]


def test_an_unknown_function_is_rejected_before_enqueueing(deployment: Deployment) -> None:
    result = deployment.command("no_such_function")
    assert result["status"] == "rejected", result
    assert "no_such_function" in result["reason"] and "always_retry" in result["reason"], result
