"""The Dramatiq actions' broker calls against real Redis and RabbitMQ (no worker: what the broker
holds is the proof): depth and a ready-only purge, and retry from a Redis dead-letter queue (the
dead letter is taken out) or from a kept original. The conformance suite runs every action
through a brain on real worker processes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq_harness import RABBITMQ_URL, delete_rabbitmq_queues

from z4j_core.adapter import RetryRequest
from z4j_core.agent.originals import Original
from z4j_core.wire import CommandStatus
from z4j_dramatiq import actions
from z4j_dramatiq.adapter import DramatiqAdapter


def with_actor(broker: dramatiq.Broker) -> tuple[DramatiqAdapter, Any]:
    queue = f"z4j-actions-{uuid.uuid4().hex[:8]}"

    def work(n: int, token: str = "") -> None:
        pass

    actor = dramatiq.actor(work, broker=broker, queue_name=queue, max_retries=0)
    return DramatiqAdapter(broker=broker), actor


@pytest.fixture
def redis_broker(redis_url: str) -> Iterator[RedisBroker]:
    broker = RedisBroker(url=redis_url)
    yield broker
    broker.close()


@pytest.fixture
def amqp_broker() -> Iterator[RabbitmqBroker]:
    broker = RabbitmqBroker(url=RABBITMQ_URL)
    yield broker
    for queue in broker.get_declared_queues():
        if not queue.endswith((".DQ", ".XQ")):
            delete_rabbitmq_queues(queue)
    broker.close()


@pytest.mark.redis
def test_redis_depth_counts_ready_delayed_taken_and_dead_and_purge_takes_only_ready(
    redis_broker: RedisBroker,
) -> None:
    adapter, actor = with_actor(redis_broker)
    for n in range(3):
        actor.send(n)
    actor.send_with_options(args=(9,), delay=600_000)
    consumer = redis_broker.consume(actor.queue_name, prefetch=2, timeout=100)
    taken, dead = next(consumer), next(consumer)  # one stays taken, one is dead-lettered
    consumer.nack(dead)
    [depth] = actions.queue_depths(adapter)
    assert (depth.name, depth.ready, depth.running, depth.scheduled, depth.failed) == (
        actor.queue_name, 1, 1, 1, 1,
    )  # fmt: skip

    purged = actions.purge(adapter, actor.queue_name)
    assert (purged.status, purged.count) == (CommandStatus.DONE, 1), purged
    [depth] = actions.queue_depths(adapter)
    assert (depth.ready, depth.running, depth.scheduled, depth.failed) == (0, 1, 1, 1)
    consumer.ack(taken)  # the taken message's body survived the purge
    consumer.close()
    refused = actions.purge(adapter, f"{actor.queue_name}.XQ")
    assert refused.status is CommandStatus.UNAVAILABLE


@pytest.mark.redis
def test_retry_takes_the_message_out_of_the_redis_dead_letter_queue(
    redis_broker: RedisBroker,
) -> None:
    adapter, actor = with_actor(redis_broker)
    sent = actor.send(7, token="s3cret")
    consumer = redis_broker.consume(actor.queue_name, prefetch=1, timeout=100)
    failed = next(consumer)
    failed.options["traceback"] = "Traceback: boom"
    consumer.nack(failed)
    consumer.close()

    done = actions.retry(adapter, RetryRequest(task_id=sent.message_id, new_task_id="again-1"))
    assert (done.status, done.native_id) == (CommandStatus.DONE, "again-1"), done
    [depth] = actions.queue_depths(adapter)
    assert (depth.ready, depth.failed) == (1, 0)
    consumer = redis_broker.consume(actor.queue_name, prefetch=1, timeout=100)
    again = next(consumer)
    consumer.ack(again)
    consumer.close()
    assert (again.message_id, again.args, again.kwargs) == ("again-1", (7,), {"token": "s3cret"})
    assert "traceback" not in again.options and "retries" not in again.options

    twice = actions.retry(adapter, RetryRequest(task_id=sent.message_id))
    assert twice.status is CommandStatus.UNAVAILABLE and "dead-letter" in twice.reason


@pytest.mark.rabbitmq
def test_rabbitmq_depth_purge_and_retry_from_the_kept_original(
    amqp_broker: RabbitmqBroker,
) -> None:
    adapter, actor = with_actor(amqp_broker)
    for n in range(3):
        actor.send(n)
    deadline = time.monotonic() + 10  # RabbitMQ counts a published message a moment later
    while (depth := actions.queue_depths(adapter)[0]).ready < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (depth.ready, depth.scheduled, depth.failed) == (3, None, 0)
    purged = actions.purge(adapter, actor.queue_name)
    assert (purged.status, purged.count) == (CommandStatus.DONE, 3), purged

    message = actor.message(5, token="t0k")
    original = Original("dramatiq", message.message_id, actor.actor_name, message.encode(),
                        queue=actor.queue_name)  # fmt: skip
    done = actions.retry(adapter, RetryRequest(task_id=message.message_id, original=original))
    assert done.status is CommandStatus.DONE and done.native_id != message.message_id, done
    missing = actions.retry(adapter, RetryRequest(task_id="gone"))
    assert missing.status is CommandStatus.UNAVAILABLE and "by message id" in missing.reason
    deadline = time.monotonic() + 10
    while actions.queue_depths(adapter)[0].ready < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert actions.queue_depths(adapter)[0].ready == 1
