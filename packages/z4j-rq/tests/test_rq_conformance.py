"""The engine conformance suite on real `rq worker` processes (forking Worker, SimpleWorker,
SpawnWorker) with an `rq cron` process beside them, on real Redis, through a real brain."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rq_harness import harness

from z4j_core.testing.conformance import EngineConformance, EngineHarness

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(180)]


#: Purge and queue depth ask Redis, whatever the worker class: proven once, here.
FORKING = "TestRQForkingWorker"


class TestRQForkingWorker(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        return harness(redis_url, "z4j_rq.Worker")


class TestRQSimpleWorker(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        return replace(harness(redis_url, "z4j_rq.SimpleWorker"), broker_proven_by=FORKING)


class TestRQSpawnWorker(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        return replace(harness(redis_url, "z4j_rq.SpawnWorker"), broker_proven_by=FORKING)
