"""The Celery actions' engine calls against real brokers (no worker: what the broker holds is
the proof): depth and purge of ready messages on Redis (priority lists included) and RabbitMQ,
retry from an extended result backend and from a kept original, and the cancel answers that
need no worker. The conformance suite runs every action through a brain on real workers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery_harness import RABBITMQ_URL

from z4j_celery import actions
from z4j_celery.adapter import CeleryAdapter
from z4j_core.adapter import CancelRequest, RetryRequest
from z4j_core.agent.originals import Original
from z4j_core.testing.waiting import wait_for
from z4j_core.wire import CommandStatus

# Celery's Redis result backend stores with `setex`, which redis-py 8 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")


def celery_app(broker: str, backend: str | None = None) -> Iterator[tuple[Celery, str]]:
    queue = f"z4j-actions-{uuid.uuid4().hex[:8]}"
    app = Celery("z4j-actions", broker=broker, backend=backend)
    app.conf.update(task_default_queue=queue, result_extended=backend is not None)
    yield app, queue
    with app.connection_for_write() as connection:
        if not broker.startswith("redis"):
            connection.channel().queue_delete(queue)


@pytest.fixture
def redis_app(redis_url: str) -> Iterator[tuple[Celery, str]]:
    yield from celery_app(redis_url, backend=redis_url)


@pytest.fixture
def amqp_app() -> Iterator[tuple[Celery, str]]:
    yield from celery_app(RABBITMQ_URL)


def waiting(app: Celery, queue: str) -> list[tuple[Any, Any]]:
    """Every message waiting in `queue` as (headers, body), taken off the broker."""
    found = []
    with app.connection_for_read() as connection, connection.SimpleQueue(queue) as simple:
        while True:
            try:
                message = simple.get(timeout=0.5)
            except simple.Empty:
                return found
            found.append((message.headers, message.decode()))
            message.ack()


def check_depth_and_purge(app: Celery, queue: str) -> None:
    adapter = CeleryAdapter(app=app)
    for n in range(3):
        app.send_task("tasks.add", args=[n], priority=3 * n)  # Redis: three priority lists
    # RabbitMQ counts a message once its queue has it, a moment after the publish returned
    # (CI once read 1 of 3 at once): the depth is waited for, then must be exactly 3.
    wait_for(
        lambda: [(d.name, d.ready) for d in actions.queue_depths(adapter)] == [(queue, 3)],
        10,
        f"queue {queue}'s depth to read 3 ready messages",
    )

    refused = actions.purge(adapter, "unacked")
    assert refused.status is CommandStatus.UNAVAILABLE, refused
    assert "not a queue of this app" in refused.reason

    purged = actions.purge(adapter, queue)
    assert (purged.status, purged.count) == (CommandStatus.DONE, 3), purged
    assert [(d.name, d.ready) for d in actions.queue_depths(adapter)] == [(queue, 0)]
    assert waiting(app, queue) == []


@pytest.mark.redis
def test_depth_and_purge_count_every_priority_list_on_redis(
    redis_app: tuple[Celery, str],
) -> None:
    check_depth_and_purge(*redis_app)


@pytest.mark.rabbitmq
def test_depth_and_purge_count_ready_messages_on_rabbitmq(amqp_app: tuple[Celery, str]) -> None:
    app, queue = amqp_app
    with app.connection_for_write() as connection:
        app.amqp.queues[queue].bind(connection.default_channel).declare()
    check_depth_and_purge(app, queue)


class Request:
    """What Celery's backend reads from a task's request to store extended results."""

    def __init__(self, task_id: str, queue: str) -> None:
        self.id, self.task, self.hostname, self.retries = task_id, "tasks.add", "w@h", 0
        self.args, self.kwargs = [2, 3], {"password": "s3cret", "note": "n"}
        self.delivery_info = {"routing_key": queue}
        self.group = self.parent_id = self.chord = None
        self.ignore_result = False


@pytest.mark.redis
def test_retry_reads_the_original_arguments_from_an_extended_result_backend(
    redis_app: tuple[Celery, str],
) -> None:
    app, queue = redis_app
    adapter = CeleryAdapter(app=app)
    failed_id, started_id, new_id = (str(uuid.uuid4()) for _ in range(3))
    boom = ValueError("boom")
    app.backend.store_result(failed_id, boom, "FAILURE", request=Request(failed_id, queue))
    app.backend.store_result(started_id, None, "STARTED", request=Request(started_id, queue))

    done = actions.retry(adapter, RetryRequest(task_id=failed_id, new_task_id=new_id))
    assert (done.status, done.native_id) == (CommandStatus.DONE, new_id), done
    [(headers, body)] = waiting(app, queue)
    assert (headers["id"], headers["task"]) == (new_id, "tasks.add")
    assert headers["z4j_retry_of"] == failed_id
    assert body[:2] == [[2, 3], {"password": "s3cret", "note": "n"}]

    running = actions.retry(adapter, RetryRequest(task_id=started_id))
    assert running.status is CommandStatus.UNAVAILABLE and "STARTED" in running.reason
    forced = actions.retry(adapter, RetryRequest(task_id=started_id, force=True))
    assert forced.status is CommandStatus.DONE, forced
    assert len(waiting(app, queue)) == 1

    unknown = actions.retry(adapter, RetryRequest(task_id=str(uuid.uuid4())))
    assert unknown.status is CommandStatus.UNAVAILABLE
    assert "result backend holds no record" in unknown.reason and "host kept none" in unknown.reason


@pytest.mark.redis
def test_retry_without_a_result_backend_sends_the_kept_original(redis_url: str) -> None:
    for app, queue in celery_app(redis_url):
        adapter = CeleryAdapter(app=app)
        assert not actions.backend_keeps_arguments(app)
        payload = actions.pack(app, (1, {"x": [2]}), {"token": "t0k"})
        original = Original("celery", "t-1", "tasks.add", payload, queue=queue)
        done = actions.retry(adapter, RetryRequest(task_id="t-1", original=original))
        assert done.status is CommandStatus.DONE and done.native_id, done
        [(headers, body)] = waiting(app, queue)
        assert (headers["id"], headers["z4j_retry_of"]) == (done.native_id, "t-1")
        assert body[:2] == [[1, {"x": [2]}], {"token": "t0k"}]
        missing = actions.retry(adapter, RetryRequest(task_id="t-2"))
        assert "result_extended=True" in missing.reason, missing


@pytest.mark.redis
def test_cancel_answers_without_pretending(
    redis_app: tuple[Celery, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, queue = redis_app
    monkeypatch.setattr(actions, "REVOKE_REPLY_SECONDS", 0.5)
    adapter = CeleryAdapter(app=app)
    ended = str(uuid.uuid4())
    app.backend.store_result(ended, 5, "SUCCESS", request=Request(ended, queue))
    answer = actions.cancel(adapter, CancelRequest(task_id=ended))
    assert answer.status is CommandStatus.UNAVAILABLE and "SUCCESS" in answer.reason
    # No worker runs here: nobody would hold the revoke.
    lonely = actions.cancel(adapter, CancelRequest(task_id=str(uuid.uuid4())))
    assert lonely.status is CommandStatus.FAILED and "no Celery worker" in lonely.reason
