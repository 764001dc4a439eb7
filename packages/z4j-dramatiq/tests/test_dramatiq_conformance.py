"""The engine conformance suite on real `dramatiq` worker processes (2 processes x 2 threads,
one agent per worker process), on Redis and on RabbitMQ, with periodiq schedules observed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dramatiq_harness import RABBITMQ_URL, delete_rabbitmq_queues, harness, queue_for

from z4j_core.testing.conformance import EngineConformance, EngineHarness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.mark.redis
class TestRedisBroker(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        return harness(redis_url, queue_for("conformance"))


@pytest.mark.rabbitmq
class TestRabbitMQBroker(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls) -> Iterator[EngineHarness]:
        queue = queue_for("conformance-amqp")
        yield harness(RABBITMQ_URL, queue)
        delete_rabbitmq_queues(queue)
