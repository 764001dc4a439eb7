"""A pytest plugin for z4j test suites: service markers, per-run service slices, and fuzz
examples replayed the same on every CI run.

A test marked `redis`, `postgres` or `rabbitmq` skips with the reason and the command that
starts the service when it is down; when the `CI` variable is set it fails instead, so a CI
run can never pass by skipping what it was meant to test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from z4j_core.testing import services

_reachable: dict[str, bool] = {}


def pytest_configure(config: pytest.Config) -> None:
    for name, service in services.SERVICES.items():
        config.addinivalue_line(
            "markers", f"{name}: needs {service.name} (skips without it, fails when CI is set)"
        )
    if os.environ.get("CI"):
        _replay_fuzz_examples()


def _replay_fuzz_examples() -> None:
    """With `CI` set, the fuzz tests draw the same examples on every run, so CI passes or fails
    on the code alone; new examples are explored by local runs (random, as usual) and by
    `bench/bench_fuzz_schedules.py`, and what they find becomes a test of its own."""
    try:
        from hypothesis import settings
    except ImportError:  # a session without the fuzz tests
        return
    settings.register_profile("z4j-ci", derandomize=True, database=None)
    settings.load_profile("z4j-ci")


def require_service(name: str) -> None:
    service = services.SERVICES[name]
    if name not in _reachable:
        _reachable[name] = service.reachable()
    if not _reachable[name]:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {service.unreachable_reason()}", pytrace=False)
        pytest.skip(service.unreachable_reason())


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name in services.SERVICES:
        if item.get_closest_marker(name) is not None:
            require_service(name)


@pytest.fixture(scope="session")
def redis_db() -> Iterator[int]:
    """A Redis database number that belongs to this test run alone."""
    require_service("redis")
    number = services.claim_redis_database()
    yield number
    services.release_redis_database(number)


@pytest.fixture(scope="session")
def redis_url(redis_db: int) -> str:
    service = services.SERVICES["redis"]
    return f"redis://{service.host}:{service.port}/{redis_db}"
