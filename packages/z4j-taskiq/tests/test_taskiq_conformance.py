"""The engine conformance suite on real `taskiq worker` processes, on taskiq-redis's list-queue
broker and its stream broker."""

from __future__ import annotations

import pytest
from taskiq_harness import harness

from z4j_core.testing.conformance import EngineConformance, EngineHarness

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(180)]


class TestTaskiqListQueueBroker(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        return harness(f"list:{redis_url}")


class TestTaskiqStreamBroker(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        return harness(f"stream:{redis_url}")
