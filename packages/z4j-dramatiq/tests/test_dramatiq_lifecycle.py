"""Lifecycle details on real `dramatiq` worker processes through a real brain (Redis): one
agent per worker process, a retrying actor's counts, and dead letters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq_harness import PROCESSES, harness, queue_for

from z4j_core.testing.conformance import (
    Deployment,
    connected_agents,
    start_deployment,
    stop_deployment,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def deployment(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = start_deployment(
        harness(redis_url, queue_for("lifecycle")), tmp_path_factory.mktemp("lifecycle")
    )
    yield deployment
    stop_deployment(deployment)


def ordered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: (e["at"], e["position"]))


def test_each_worker_process_has_one_agent_of_its_own(deployment: Deployment) -> None:
    h = deployment.harness
    agents: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        agents = connected_agents(deployment.brain, h.engine, h.app)
        if len(agents) >= PROCESSES:
            break
        time.sleep(0.2)
    pids = {a["pid"] for a in agents}
    assert len(agents) == PROCESSES == len(pids), agents


def test_a_retrying_actor_reports_each_retry_then_fails_into_the_dead_letter_queue(
    deployment: Deployment,
) -> None:
    task_id = deployment.enqueue("retry")
    events = ordered(
        deployment.wait_for(
            task_id, lambda evs: any(e["kind"] == "dead_lettered" for e in evs), timeout=60
        )
    )
    kinds = [e["kind"] for e in events if e["kind"] not in ("enqueued", "scheduled")]
    assert kinds == [
        "started",
        "retried",
        "started",
        "retried",
        "started",
        "failed",
        "dead_lettered",
    ], kinds
    assert [e["retries"] for e in events if e["kind"] == "retried"] == [1, 2]
    failed = next(e for e in events if e["kind"] == "failed")
    assert "ConformanceError" in failed["exception"] and failed["traceback"]
    task = deployment.brain.api("GET", f"/api/v1/tasks?task_id={task_id}")["tasks"]
    assert task and task[0]["state"] in ("failed", "dead_lettered"), task


def test_a_failing_actor_without_retries_is_failed_then_dead_lettered(
    deployment: Deployment,
) -> None:
    task_id = deployment.enqueue("fail")
    events = ordered(
        deployment.wait_for(task_id, lambda evs: any(e["kind"] == "dead_lettered" for e in evs))
    )
    kinds = [e["kind"] for e in events]
    assert kinds[-2:] == ["failed", "dead_lettered"] and "retried" not in kinds, kinds


def test_an_actor_the_workers_do_not_know_is_dead_lettered_when_sent_to_its_queue(
    deployment: Deployment,
) -> None:
    name = f"not_declared_{uuid.uuid4().hex[:8]}"
    rejected = deployment.command(name)
    assert rejected["status"] == "rejected" and name in rejected["reason"], rejected
    queue = queue_for("lifecycle")
    task_id = deployment.enqueue(name, options={"queue": queue})
    events = deployment.wait_for(
        task_id, lambda evs: any(e["kind"] == "dead_lettered" for e in evs)
    )
    dead = next(e for e in events if e["kind"] == "dead_lettered")
    assert "ActorNotFound" in (dead["exception"] or ""), dead
