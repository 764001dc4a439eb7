"""The engine conformance suite on real Celery workers: Redis and RabbitMQ brokers, with the
prefork (concurrency 2), solo and threads pools. Purge and queue depth ask the broker whatever
the pool, so they run once per broker (with prefork). Every pool runs on Redis; on RabbitMQ
the solo and threads pools run with `Z4J_FULL_MATRIX=1` (`nox -s full_matrix`), prefork always:
what the pool changes is proven on Redis, what the broker changes with prefork on both."""

from __future__ import annotations

import os

import pytest
from celery_harness import RABBITMQ_URL, harness

from z4j_core.testing.conformance import EngineConformance, EngineHarness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
full_matrix = pytest.mark.skipif(
    not os.environ.get("Z4J_FULL_MATRIX"),
    reason="RabbitMQ with the solo and threads pools runs with Z4J_FULL_MATRIX=1 (full_matrix)",
)


@pytest.mark.redis
class TestRedisPrefork(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        return harness("prefork", redis_url, "redis-prefork", backend=redis_url)


@pytest.mark.redis
class TestRedisSolo(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        return harness("solo", redis_url, "redis-solo", broker_proven_by="TestRedisPrefork")


@pytest.mark.redis
class TestRedisThreads(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        return harness("threads", redis_url, "redis-threads", broker_proven_by="TestRedisPrefork")


@pytest.mark.rabbitmq
class TestRabbitMQPrefork(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls) -> EngineHarness:
        return harness("prefork", RABBITMQ_URL, "amqp-prefork")


@pytest.mark.rabbitmq
@full_matrix
class TestRabbitMQSolo(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls) -> EngineHarness:
        return harness("solo", RABBITMQ_URL, "amqp-solo", broker_proven_by="TestRabbitMQPrefork")


@pytest.mark.rabbitmq
@full_matrix
class TestRabbitMQThreads(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls) -> EngineHarness:
        return harness(
            "threads", RABBITMQ_URL, "amqp-threads", broker_proven_by="TestRabbitMQPrefork"
        )
