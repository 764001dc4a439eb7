"""Actions beyond the conformance suite, on a real `rq worker` through a real brain and the
`z4j` command (docs/actions.md): bulk retry by filter (a dry run counts, `--yes` acts, paced,
one audit row for the bulk and one action row per task), the operator commands' output and
exit codes, and queue depths in `z4j queues`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rq_harness import harness

from z4j_core.testing.conformance import Deployment, start_deployment, stop_deployment
from z4j_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(240)]

FAILED_TASKS = 12


@pytest.fixture(scope="module")
def deployment(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = start_deployment(harness(redis_url), tmp_path_factory.mktemp("actions"))
    yield deployment
    stop_deployment(deployment)


def z4j(deployment: Deployment, *args: str) -> tuple[int, str, str]:
    result = deployment.brain.cli(*args, "--brain-url", deployment.brain.http_url, check=False)
    return result.returncode, result.stdout, result.stderr


def test_bulk_retry_counts_first_then_retries_every_failed_task_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    h = deployment.harness
    tokens = [f"bulk-{i}-{time.time_ns()}" for i in range(FAILED_TASKS)]
    ids = [deployment.enqueue_natively(h.flaky, token, kwargs={"i": i})[0]
           for i, token in enumerate(tokens)]  # fmt: skip
    for task_id in ids:
        deployment.wait_for(task_id, lambda ev: any(e["kind"] == "failed" for e in ev))

    code, out, err = z4j(deployment, "tasks", "retry", "--state", "failed", "--task", h.flaky,
                         "--engine", "rq", "--since", "1h", "--dry-run")  # fmt: skip
    assert code == 0, err
    assert f"{FAILED_TASKS} tasks match" in out
    code, out, err = z4j(deployment, "tasks", "retry", "--state", "failed", "--task", h.flaky)
    assert code != 0 and f"{FAILED_TASKS} tasks match: pass --yes" in err

    code, out, err = z4j(deployment, "tasks", "retry", "--state", "failed", "--task", h.flaky,
                         "--per-second", "20", "--yes", "--json")  # fmt: skip
    assert code == 0, (out, err)
    summary = json.loads(out[out.index("{") :])
    assert summary["matched"] == FAILED_TASKS and summary["counts"] == {"done": FAILED_TASKS}
    bulk_id = summary["bulk_id"]
    rows = deployment.brain.api("GET", f"/api/v1/actions?bulk_id={bulk_id}&limit=100")["actions"]
    assert sorted(r["task_id"] for r in rows) == sorted(ids)
    assert all(r["status"] == "done" and r["new_task_id"] for r in rows)
    deployment.wait_marks({f"{t} " + json.dumps({"i": i}): 2 for i, t in enumerate(tokens)})
    audit = deployment.brain.api("GET", "/api/v1/audit?limit=10000")["audit"]
    assert [a["action"] for a in audit if a["target"] == bulk_id] == ["tasks.bulk_retry"]
    assert [a["actor"] for a in audit if a["target"] == bulk_id] == ["admin"]
    action_ids = {r["action_id"] for r in rows}
    per_task = [a for a in audit if (a["after"] or {}).get("action_id") in action_ids]
    assert not per_task, "a bulk action is audited once, not once per task"
    # Every retried run is linked to its original.
    for row in rows:
        task = deployment.task(row["new_task_id"])
        assert task["retry_of"] == row["task_id"], task


def test_single_actions_from_the_cli_say_what_happened(deployment: Deployment) -> None:
    h = deployment.harness
    failed = deployment.enqueue(h.fail)
    deployment.wait_for(failed)
    code, out, err = z4j(deployment, "tasks", "retry", failed)
    assert code == 0 and f"retried {failed} (rq/{h.app}) as " in out, (out, err)
    succeeded = deployment.enqueue(h.succeed, "x")
    deployment.wait_for(succeeded)
    code, out, err = z4j(deployment, "tasks", "retry", succeeded)
    assert code != 0 and "not failed: pass force" in err, (out, err)
    code, out, err = z4j(deployment, "tasks", "retry", succeeded, "--force")
    assert code == 0, (out, err)
    code, out, err = z4j(deployment, "tasks", "cancel", succeeded)
    assert code != 0 and "already finished (succeeded)" in err, (out, err)
    code, out, err = z4j(deployment, "tasks", "retry", "no-such-task")
    assert code != 0 and "pass engine and app" in err, (out, err)
    code, out, err = z4j(deployment, "tasks", "retry", failed, "--state", "failed")
    assert code != 0 and "either a TASK_ID or --state" in err, (out, err)
    code, out, err = z4j(deployment, "queues", "purge", "default", "--engine", "rq")
    assert code != 0 and "pass --yes" in err


def test_queue_depths_show_in_z4j_queues(deployment: Deployment) -> None:
    deadline = time.monotonic() + 30
    while True:
        code, out, err = z4j(deployment, "queues", "--engine", "rq", "--json")
        assert code == 0, err
        rows = json.loads(out)
        if any(r["queue"] == "default" for r in rows):
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)
    default = next(r for r in rows if r["queue"] == "default")
    assert default["failed"] is not None and default["failed"] >= 1, default
    code, out, err = z4j(deployment, "queues")
    assert code == 0 and "default" in out and "READY" in out
    # The worker's agent stops running jobs too (terminate); an agent without a forking
    # worker (`rq cron`'s, an enqueueing client's) advertises the rest. Agents list in any order,
    # and a worker's agent may be between two connections.
    every = {"retry", "cancel", "terminate", "purge", "queue_depth"}

    def rq_engines() -> list[dict[str, Any]]:
        code, out, err = z4j(deployment, "agents", "--json")
        assert code == 0, err
        found = [e for a in json.loads(out) for e in a["engines"] if e["name"] == "rq"]
        return found if any(set(e["actions"]) == every for e in found) else []

    engines = wait_for(rq_engines, 30, "the worker's agent to advertise every RQ action")
    assert all(set(e["actions"]) >= every - {"terminate"} for e in engines), engines


def test_overlap_cancel_previous_terminates_the_running_job(deployment: Deployment) -> None:
    """One forking worker and a slow job every second with overlap cancel-previous: each slot
    stops (terminate: RQ advertises it) or cancels the job of the fire before it, as the
    scheduler, and says so in its decision."""
    h = deployment.harness
    brain = deployment.brain

    def can_terminate() -> bool:  # the worker's own agent, the one that can stop a job
        agents = brain.api("GET", "/api/v1/agents")["agents"]
        return any(a["connected"] and "terminate" in e["actions"]
                   for a in agents for e in a["engines"])  # fmt: skip

    wait_for(can_terminate, 60, "the worker's agent to advertise terminate")
    code, out, err = z4j(deployment, "schedules", "add", "stopper", "--task", h.slow,
                         "--engine", "rq", "--app", h.app, "--every", "1s", "--args",
                         '["stopper", 30]', "--overlap", "cancel-previous")  # fmt: skip
    assert code == 0, (out, err)

    def history() -> list[dict[str, Any]]:
        fires: list[dict[str, Any]] = brain.api(
            "GET", "/api/v1/schedules/stopper/fires?limit=1000")["fires"]  # fmt: skip
        return fires

    def terminated() -> list[dict[str, Any]]:
        return [f for f in history()
                if f["decision"].startswith("cancel-previous: terminated task ")]  # fmt: skip

    try:
        deadline = time.monotonic() + 90
        while not terminated():
            decided = [(f["task_state"], f["decision"]) for f in history()]
            assert time.monotonic() < deadline, decided
            time.sleep(0.2)
    finally:
        z4j(deployment, "schedules", "pause", "stopper")
    fire = terminated()[0]
    task_id = fire["decision"].split()[3]
    victim = next(f for f in history() if f["native_id"] == task_id)
    assert victim["slot"] < fire["slot"]
    # The stopped job never finishes its 30 seconds as a success.
    deadline = time.monotonic() + 30
    while (state := deployment.task(task_id)["state"]) == "started":
        assert time.monotonic() < deadline, "the terminated job still runs"
        time.sleep(0.2)
    assert state != "succeeded", state
    actions = brain.api("GET", f"/api/v1/actions?task_id={task_id}&limit=10")["actions"]
    assert [(a["requested_by"], a["options"]["terminate"], a["status"]) for a in actions] == [
        ("scheduler", True, "done")
    ], actions
