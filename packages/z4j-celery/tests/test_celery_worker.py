"""The adapter against real `celery worker` processes, beyond the conformance suite: what the
prefork relay carries (pool child pids, parent and root ids, result sizes) through the worker's
one agent; revoked, terminated, expired and unknown tasks; and a worker whose brain is down the
whole time, which must behave exactly like one without the agent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery_harness import queue_name, start_celery, wait_ready

from z4j_core.testing.brainproc import BrainProcess, free_port
from z4j_core.testing.conformance import (
    MARKS_ENV,
    Deployment,
    EngineHarness,
    WorkerContext,
    connected_agents,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(180)]

APP = "z4j-conformance"
T = "celery_conformance_app."


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in sorted(events, key=lambda e: (e["at"], e["position"]))]


class Running:
    """A brain, a prefork(2) worker on Redis connected to it, and a plain Celery client."""

    def __init__(self, workdir: Path, redis_url: str, pool: str = "prefork") -> None:
        self.brain = BrainProcess(workdir / "brain")
        token = self.brain.create_token("celery-tests")
        self.brain.start()
        self.marks = workdir / "marks.log"
        self.marks.touch()
        self.queue = queue_name(f"worker-{pool}-{uuid.uuid4().hex[:6]}")
        context = WorkerContext(
            self.brain,
            {
                "Z4J_BRAIN_URL": self.brain.url,
                "Z4J_TOKEN": token,
                "Z4J_SPOOL_DIR": str(workdir / "spool"),
                MARKS_ENV: str(self.marks),
            },
            workdir,
        )
        self.worker = start_celery(
            pool=pool, concurrency=2, broker=redis_url, queue=self.queue, context=context,
            backend=redis_url,
        )  # fmt: skip
        wait_ready(self.worker)
        self.client = Celery("client", broker=redis_url, backend=redis_url)
        self.client.conf.task_default_queue = self.queue
        harness = EngineHarness(
            engine="celery", app=APP, succeed="", fail="", fail_exception="", retry="",
            slow="", start_worker=lambda c: self.worker,
        )  # fmt: skip
        self.deployment = Deployment(harness, self.brain, self.worker, self.marks, time.time())
        deadline = time.monotonic() + 30
        while not connected_agents(self.brain, "celery", APP):
            assert time.monotonic() < deadline, self.worker.output()[-3000:]
            time.sleep(0.1)

    def stop(self) -> None:
        try:
            self.worker.stop()
        finally:
            self.client.close()
            self.brain.stop()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Running]:
    deployment = Running(tmp_path_factory.mktemp("celery-worker"), redis_url)
    yield deployment
    deployment.stop()


def test_pool_children_report_through_the_workers_one_agent(running: Running) -> None:
    d = running.deployment
    mark = uuid.uuid4().hex
    parent_id = d.enqueue(T + "spawn", mark)
    parent_events = d.wait_for(parent_id)
    child_id = str(running.client.AsyncResult(parent_id).get(timeout=20))
    child_events = d.wait_for(child_id)
    kinds = _kinds(child_events)
    assert kinds[0] == "enqueued" and kinds[-1] == "succeeded", kinds
    assert kinds.index("received") < kinds.index("started") < kinds.index("succeeded"), kinds
    started = next(e for e in child_events if e["kind"] == "started")
    received = next(e for e in child_events if e["kind"] == "received")
    assert started["extra"]["parent_id"] == parent_id, started
    assert started["extra"]["root_id"] == parent_id, started
    # started ran in a pool child, received in the worker's main process: different pids, one
    # agent (the children never connect one of their own).
    assert started["extra"]["pid"] != received["extra"]["pid"], (started, received)
    assert started["worker"] and started["worker"] == received["worker"], (started, received)
    assert started["queue"] == running.queue, started
    agents = connected_agents(running.brain, "celery", APP)
    assert len(agents) == 1, agents
    # the child's enqueued event came from the pool child too (published inside the task)
    enqueued = next(e for e in child_events if e["kind"] == "enqueued")
    assert (
        enqueued["extra"]["pid"]
        == next(e for e in parent_events if e["kind"] == "started")["extra"]["pid"]
    )


def test_a_result_is_reported_by_size_not_content(running: Running) -> None:
    d = running.deployment
    task_id = d.enqueue(T + "sized", 1234)
    succeeded = next(e for e in d.wait_for(task_id) if e["kind"] == "succeeded")
    assert succeeded["extra"]["result_size"] == "1234", succeeded
    assert succeeded["extra"]["result_type"] == "str", succeeded
    assert not succeeded["result"], "the result itself is sent only when asked"
    assert succeeded["runtime"] is not None and succeeded["runtime"] >= 0


def test_an_expired_task_is_reported_expired(running: Running) -> None:
    """Runs before the terminate test: billiard may briefly run a replacement child next to
    the one it is killing, which would give the pool a third free slot."""
    d = running.deployment
    busy = [d.enqueue(T + "slow", uuid.uuid4().hex, 3) for _ in range(2)]
    for task_id in busy:
        d.wait_for(task_id, lambda events: "started" in _kinds(events))
    mark = uuid.uuid4().hex
    task_id = d.enqueue(T + "succeed", mark, options={"expires_seconds": 1})
    events = d.wait_for(task_id)
    assert _kinds(events)[-1] == "expired", _kinds(events)
    assert mark not in running.marks.read_text()


def test_a_revoked_task_is_reported_revoked_and_never_runs(running: Running) -> None:
    d = running.deployment
    mark = uuid.uuid4().hex
    task_id = d.enqueue(T + "succeed", mark, options={"delay_seconds": 4})
    d.wait_for(task_id, lambda events: "received" in _kinds(events))
    running.client.control.revoke(task_id)
    events = d.wait_for(task_id, timeout=30)
    revoked = [e for e in events if e["kind"] == "revoked"]
    assert revoked, _kinds(events)
    assert "terminated" not in revoked[0]["extra"], revoked
    assert "started" not in _kinds(events)
    time.sleep(0.5)
    assert mark not in running.marks.read_text()


def test_a_terminated_task_is_reported_revoked_with_terminated(running: Running) -> None:
    d = running.deployment
    mark = uuid.uuid4().hex
    task_id = d.enqueue(T + "slow", mark, 30)
    d.wait_for(task_id, lambda events: "started" in _kinds(events))
    running.client.control.revoke(task_id, terminate=True)
    events = d.wait_for(task_id, timeout=30)
    assert _kinds(events)[-1] == "revoked", _kinds(events)
    revoked = next(e for e in events if e["kind"] == "revoked")
    assert revoked["extra"]["terminated"] == "true", revoked
    assert revoked["extra"].get("signum"), revoked
    # the pool replaced the killed child and keeps running tasks
    after = d.enqueue(T + "succeed", uuid.uuid4().hex)
    assert _kinds(d.wait_for(after))[-1] == "succeeded"


def test_a_task_the_worker_lacks_is_reported_rejected_as_unknown(running: Running) -> None:
    d = running.deployment
    name = f"nowhere.unknown_{uuid.uuid4().hex[:8]}"
    task_id = str(running.client.send_task(name, args=[1]).id)  # published behind z4j's back
    events = d.wait_for(task_id)
    rejected = next(e for e in events if e["kind"] == "rejected")
    assert rejected["task_name"] == name, rejected
    assert rejected["exception"] == "celery.exceptions.NotRegistered", rejected
    assert rejected["extra"]["unknown_task"] == "true", rejected
    # and through the brain, the worker's agent refuses it before publishing
    result = d.command(name)
    assert result["status"] == "rejected" and name in result["reason"], result


# -- the brain is down the whole time -------------------------------------------------------


def _run_batch(workdir: Path, redis_url: str, env: dict[str, str], count: int) -> dict[str, Any]:
    queue = queue_name(f"down-{uuid.uuid4().hex[:6]}")
    context = WorkerContext(None, env, workdir)  # type: ignore[arg-type]
    worker = start_celery(
        pool="prefork", concurrency=2, broker=redis_url, queue=queue, context=context,
        backend=redis_url,
    )  # fmt: skip
    client = Celery("client", broker=redis_url, backend=redis_url)
    client.conf.task_default_queue = queue
    try:
        wait_ready(worker)
        results = [client.send_task(T + "sized", args=[i]) for i in range(count)]
        failing = client.send_task(T + "fail")
        values = [r.get(timeout=60) for r in results]
        with pytest.raises(Exception) as failure:
            failing.get(timeout=60)
        began = time.monotonic()
        worker.stop()
        return {
            "values": values,
            "failure": type(failure.value).__name__,
            "stop_seconds": time.monotonic() - began,
            "exit": worker.process.returncode,
            "log": worker.output(),
        }
    finally:
        worker.stop()
        client.close()


def test_a_worker_whose_brain_is_down_behaves_like_one_without_the_agent(
    tmp_path: Path, redis_url: str
) -> None:
    count = 200
    without = _run_batch(
        tmp_path / "without", redis_url, {"CELERY_CONFORMANCE_NO_AGENT": "1"}, count
    )
    down = _run_batch(
        tmp_path / "down",
        redis_url,
        {
            "Z4J_BRAIN_URL": f"ws://127.0.0.1:{free_port()}",  # nothing listens there
            "Z4J_TOKEN": "z4j_nobody",
            "Z4J_SPOOL_DIR": str(tmp_path / "spool"),
        },
        count,
    )
    assert down["values"] == without["values"] == ["x" * i for i in range(count)]
    assert down["failure"] == without["failure"] == "ConformanceError"
    assert down["exit"] == without["exit"] == 0, down["log"][-3000:]
    for package in ("z4j_core/", "z4j_celery/"):  # no traceback through our code, anywhere
        assert package not in down["log"], down["log"][-3000:]
    # a warm shutdown still fits the agent's drain deadline (a few seconds), not a hang
    assert down["stop_seconds"] < without["stop_seconds"] + 15, (down, without)


def test_a_publisher_rejects_a_task_only_when_the_workers_that_answer_lack_it(
    running: Running,
) -> None:
    """A web process that does not import the task modules: it asks the workers."""
    from z4j_celery import enqueue
    from z4j_celery.adapter import CeleryAdapter

    publisher = CeleryAdapter.create(running.client, {})  # knows no tasks of its own
    assert publisher is not None and publisher.worker is None
    assert enqueue.unknown_task_reason(publisher, T + "succeed") is None, "the worker has it"
    reason = enqueue.unknown_task_reason(publisher, "nowhere.at_all")
    assert reason is not None and "nowhere.at_all" in reason, reason
    lonely = Celery("lonely", broker=running.client.conf.broker_url)
    lonely.conf.control_exchange = f"z4j-nobody-{uuid.uuid4().hex[:6]}"  # no worker listens
    try:
        alone = CeleryAdapter.create(lonely, {})
        assert alone is not None
        assert enqueue.unknown_task_reason(alone, "nowhere.at_all") is None, (
            "with no worker answering, nobody knows: the task is sent by name"
        )
    finally:
        lonely.close()
