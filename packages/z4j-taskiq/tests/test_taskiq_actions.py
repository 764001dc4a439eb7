"""The taskiq actions against real Redis (no worker: the broker's list is the proof): depth and
purge of a `ListQueueBroker`'s queue, retry from a kept original, and what other brokers do not
advertise. The conformance suite runs every action through a brain on real worker processes."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis
from taskiq.message import TaskiqMessage
from taskiq_redis import ListQueueBroker, RedisStreamBroker

from z4j_core.adapter import RetryRequest
from z4j_core.agent.originals import Original
from z4j_core.wire import CommandStatus
from z4j_taskiq import actions
from z4j_taskiq.adapter import TaskiqAdapter

pytestmark = pytest.mark.redis


@pytest.fixture
def started(redis_url: str) -> Iterator[tuple[TaskiqAdapter, Any, str]]:
    """A started ListQueueBroker with one task, on a loop of its own (as in a worker)."""
    queue = f"z4j-actions-{uuid.uuid4().hex[:8]}"
    broker = ListQueueBroker(redis_url, queue_name=queue, socket_timeout=None)

    @broker.task(task_name="tasks.add")
    async def add(x: int, token: str = "") -> int:
        return x

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(broker.startup(), loop).result(10)
    adapter = TaskiqAdapter(broker=broker, loop=loop)
    yield adapter, add, queue
    asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_depth_and_purge_of_a_list_queue(started: tuple[TaskiqAdapter, Any, str]) -> None:
    adapter, add, queue = started
    assert {"queue_depth", "purge", "retry"} <= adapter.capabilities
    for n in range(3):
        asyncio.run_coroutine_threadsafe(add.kiq(n), adapter.loop).result(10)  # type: ignore[arg-type]
    assert [(d.name, d.ready) for d in actions.queue_depths(adapter)] == [(queue, 3)]
    purged = actions.purge(adapter, queue)
    assert (purged.status, purged.count) == (CommandStatus.DONE, 3), purged
    assert [(d.name, d.ready) for d in actions.queue_depths(adapter)] == [(queue, 0)]
    refused = actions.purge(adapter, "some-other-key")
    assert refused.status is CommandStatus.UNAVAILABLE and "not a queue" in refused.reason


def test_retry_kicks_the_kept_original_under_a_new_id(
    started: tuple[TaskiqAdapter, Any, str], redis_url: str
) -> None:
    adapter, _, queue = started
    labels = {"_retries": 2, "team": "a"}
    message = TaskiqMessage(task_id="failed-1", task_name="tasks.add", args=[4],
                            kwargs={"token": "s3cret"}, labels=labels)  # fmt: skip
    payload = actions.pack(adapter.broker, message)
    original = Original("taskiq", "failed-1", "tasks.add", payload, queue=queue)
    done = actions.retry(adapter, RetryRequest(task_id="failed-1", new_task_id="again-1",
                                               original=original))  # fmt: skip
    assert (done.status, done.native_id) == (CommandStatus.DONE, "again-1"), done
    [raw] = Redis.from_url(redis_url).lrange(queue, 0, -1)
    sent = json.loads(raw)
    assert (sent["task_id"], sent["args"], sent["kwargs"]) == ("again-1", [4], {"token": "s3cret"})
    assert sent["labels"]["team"] == "a" and "_retries" not in sent["labels"]
    missing = actions.retry(adapter, RetryRequest(task_id="failed-2"))
    assert missing.status is CommandStatus.UNAVAILABLE and "taskiq keeps none" in missing.reason


def test_a_stream_broker_advertises_retry_only(redis_url: str) -> None:
    adapter = TaskiqAdapter(broker=RedisStreamBroker(redis_url))
    assert "retry" in adapter.capabilities
    assert not {"queue_depth", "purge", "cancel", "terminate"} & adapter.capabilities
    assert adapter.queue_depths() == []
