"""The conformance suite's tasks module for the toy engine, instrumented with the adapter that
docs/adapters.md shows (`z4j_tiny`, written from the page by the test)."""

from __future__ import annotations

import time
from typing import Any

from tiny_engine import TinyQueue

from z4j_core.testing import conformance

tiny = TinyQueue("z4j-conformance")


class ConformanceError(Exception):
    pass


@tiny.task()
def succeed(mark: str, *args: Any, **kwargs: Any) -> None:
    conformance.mark(mark)


@tiny.task()
def fail() -> None:
    raise ConformanceError("this task always fails")


@tiny.task(retries=1)
def retry() -> None:
    raise ConformanceError("this task fails, and TinyQueue retries it once")


@tiny.task()
def slow(mark: str, seconds: float) -> None:
    conformance.mark(mark)
    time.sleep(seconds)
