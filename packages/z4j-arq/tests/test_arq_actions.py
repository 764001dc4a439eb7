"""The arq actions' Redis writes against real Redis (no worker: arq's keys are the proof):
depth by score, cancel of a deferred, a running and an ended job, retry from arq's result and
from a kept original, and a purge that leaves deferred and running jobs alone. The conformance
suite runs every action through a brain on a real worker with `allow_abort_jobs`."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest
from arq.connections import RedisSettings, create_pool
from arq.jobs import serialize_result

from z4j_arq import actions
from z4j_arq.adapter import ArqAdapter
from z4j_core.adapter import CancelRequest, RetryRequest
from z4j_core.agent.originals import Original
from z4j_core.wire import Capability, CommandStatus

pytestmark = pytest.mark.redis


async def add(ctx: dict[str, Any], x: int, y: int = 0) -> int:
    return x + y


def worker_adapter(redis_url: str, allow_abort_jobs: bool = True) -> ArqAdapter:
    settings = {"functions": [add], "redis_settings": RedisSettings.from_dsn(redis_url),
                "allow_abort_jobs": allow_abort_jobs}  # fmt: skip
    adapter = ArqAdapter.create(settings, {})
    assert adapter is not None
    return adapter


def redis(redis_url: str, *calls: tuple[str, tuple[Any, ...], dict[str, Any]]) -> list[Any]:
    async def run() -> list[Any]:
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            return [await getattr(pool, name)(*args, **kwargs) for name, args, kwargs in calls]
        finally:
            await pool.aclose()

    return asyncio.run(run())


def call(name: str, *args: Any, **kwargs: Any) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    return name, args, kwargs


def test_only_a_worker_that_allows_aborts_advertises_cancel(redis_url: str) -> None:
    assert {"cancel", "terminate"} <= worker_adapter(redis_url).capabilities
    assert not {"cancel", "terminate"} & worker_adapter(redis_url, False).capabilities
    for capability in (Capability.RETRY, Capability.PURGE, Capability.QUEUE_DEPTH):
        assert capability.value in worker_adapter(redis_url, False).capabilities


def test_cancel_depth_and_purge_act_on_arqs_own_keys(redis_url: str) -> None:
    adapter = worker_adapter(redis_url)
    redis(
        redis_url,
        call("enqueue_job", "add", 1, _job_id="due"),
        call("enqueue_job", "add", 2, _job_id="later", _defer_by=600),
        call("enqueue_job", "add", 3, _job_id="running"),
        call("set", "arq:in-progress:running", b"1"),
    )
    [depth] = actions.run(adapter, actions.queue_depths(adapter))
    assert (depth.name, depth.ready, depth.scheduled) == ("arq:queue", 2, 1)

    def cancel(task_id: str, terminate: bool = False) -> Any:
        request = CancelRequest(task_id=task_id, terminate=terminate)
        return actions.run(adapter, actions.cancel(adapter, request))

    assert cancel("later").status is CommandStatus.DONE
    score, aborting = redis(redis_url, call("zscore", "arq:queue", "later"),
                            call("zrange", "arq:abort", 0, -1))  # fmt: skip
    assert score == 1 and aborting == [b"later"]  # moved to run now, and aborted when taken
    running = cancel("running")
    assert running.status is CommandStatus.UNAVAILABLE and "terminate" in running.reason
    assert cancel("running", terminate=True).status is CommandStatus.DONE
    assert cancel("never-was").status is CommandStatus.UNAVAILABLE

    redis(redis_url, call("enqueue_job", "add", 4, _job_id="deferred", _defer_by=600))
    purged = actions.run(adapter, actions.purge(adapter, "arq:queue"))
    assert (purged.status, purged.count) == (CommandStatus.DONE, 2), purged  # due, later
    left, job_key = redis(redis_url, call("zrange", "arq:queue", 0, -1),
                          call("exists", "arq:job:due"))  # fmt: skip
    assert sorted(left) == [b"deferred", b"running"] and job_key == 0
    other = actions.run(adapter, actions.purge(adapter, "arq:other"))
    assert other.status is CommandStatus.UNAVAILABLE


def test_retry_reads_arqs_result_then_the_kept_original(redis_url: str) -> None:
    adapter = worker_adapter(redis_url)
    result = serialize_result("add", (5,), {"y": 7}, 1, 0, False, ValueError("boom"), 0, 1,
                              "r", "arq:queue", "failed-1")  # fmt: skip
    redis(redis_url, call("set", "arq:result:failed-1", result),
          call("enqueue_job", "add", 1, _job_id="queued-1"))  # fmt: skip

    def retry(**fields: Any) -> Any:
        return actions.run(adapter, actions.retry(adapter, RetryRequest(**fields)))

    done = retry(task_id="failed-1", new_task_id="again-1")
    assert (done.status, done.native_id) == (CommandStatus.DONE, "again-1"), done
    [stored] = redis(redis_url, call("get", "arq:job:again-1"))
    assert (pickle.loads(stored)["f"], pickle.loads(stored)["a"], pickle.loads(stored)["k"]) == (
        "add", (5,), {"y": 7},
    )  # fmt: skip

    assert retry(task_id="queued-1").status is CommandStatus.UNAVAILABLE
    assert retry(task_id="queued-1", force=True).status is CommandStatus.DONE

    payload = actions.pack(adapter, "add", (8,), {"y": 1})
    original = Original("arq", "gone-1", "add", payload, queue="arq:queue")
    kept = retry(task_id="gone-1", new_task_id="again-2", original=original)
    assert kept.status is CommandStatus.DONE, kept
    [stored] = redis(redis_url, call("get", "arq:job:again-2"))
    assert pickle.loads(stored)["a"] == (8,)
    missing = retry(task_id="gone-2")
    assert missing.status is CommandStatus.UNAVAILABLE and "keep_result" in missing.reason
