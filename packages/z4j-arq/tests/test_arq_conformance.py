"""The engine conformance suite on a real `arq` worker process on real Redis, through a real
brain."""

from __future__ import annotations

import pytest
from arq_harness import harness

from z4j_core.testing.conformance import EngineConformance, EngineHarness

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(180)]


class TestArqWorker(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        return harness(redis_url)
