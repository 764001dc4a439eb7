"""The engine conformance suite on real Huey consumers: SqliteHuey and RedisHuey, with the
thread, process and greenlet worker types."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
from huey_harness import harness

from z4j_core.testing.conformance import EngineConformance, EngineHarness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


class TestSqliteHueyThreadWorkers(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, tmp_path_factory: pytest.TempPathFactory) -> EngineHarness:
        folder: Path = tmp_path_factory.mktemp("sqlite-huey")
        return harness("thread", f"sqlite:{folder / 'huey.db'}")


@pytest.mark.redis
class TestRedisHueyProcessWorkers(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        return harness("process", redis_url)


@pytest.mark.redis
@pytest.mark.skipif(importlib.util.find_spec("gevent") is None, reason="gevent is not installed")
class TestRedisHueyGreenletWorkers(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def harness(cls, redis_url: str) -> EngineHarness:
        # Purge and queue depth ask Redis, whatever the worker type: proven by the process class.
        proven = "TestRedisHueyProcessWorkers"
        return replace(harness("greenlet", redis_url), broker_proven_by=proven)
