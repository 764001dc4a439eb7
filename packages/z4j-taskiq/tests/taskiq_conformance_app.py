"""The tasks module the conformance suite runs in real `taskiq worker` processes.

The broker comes from TASKIQ_CONFORMANCE_BROKER: `list:<redis url>` (taskiq-redis's
ListQueueBroker) or `stream:<redis url>` (RedisStreamBroker); results go to the same Redis.
The agent is configured from Z4J_* variables, as an app would be.
"""

from __future__ import annotations

import asyncio
import os

from taskiq import AsyncBroker, SimpleRetryMiddleware
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend, RedisStreamBroker

import z4j_taskiq
from z4j_core.testing import conformance

APP = "z4j-conformance"


def make_broker() -> AsyncBroker:
    spec = os.environ.get("TASKIQ_CONFORMANCE_BROKER", "")
    kind, _, url = spec.partition(":")
    broker: AsyncBroker
    if kind == "list":
        # redis-py 8 reads with a 5 s socket timeout by default, which kills a worker blocked
        # in BRPOP on an idle queue: the list broker needs no socket timeout.
        broker = ListQueueBroker(url, queue_name="z4j-conformance-list", socket_timeout=None)
    elif kind == "stream":
        broker = RedisStreamBroker(url, queue_name="z4j-conformance-stream")
    else:
        raise SystemExit(f"TASKIQ_CONFORMANCE_BROKER={spec!r}: use list:redis://... or stream:...")
    return broker.with_result_backend(RedisAsyncResultBackend(url, result_ex_time=600))


if os.environ.get(conformance.FAULT_ENV):
    conformance.inject_capture_fault()

broker = make_broker()
broker.add_middlewares(SimpleRetryMiddleware(default_retry_count=2))
broker.add_middlewares(z4j_taskiq.Z4JMiddleware(app_name=APP))


class ConformanceError(Exception):
    """What the failing task raises."""


@broker.task(
    task_name="taskiq_conformance_app.succeed",
    schedule=[{"cron": "*/15 9-17 * * 1-5", "schedule_id": "office-hours"}],
)
async def succeed(mark: str, *args: object, **kwargs: object) -> str:
    conformance.mark(mark)
    return mark


@broker.task(
    task_name="taskiq_conformance_app.fail",
    schedule=[{"cron": "30 3 1 * *", "schedule_id": "monthly"}],
)
async def fail() -> None:
    raise ConformanceError("this task always fails")


@broker.task(task_name="taskiq_conformance_app.retry", retry_on_error=True, max_retries=2)
async def retry() -> None:
    raise ConformanceError("this task fails on every attempt")


@broker.task(task_name="taskiq_conformance_app.slow")
async def slow(mark: str, seconds: float) -> None:
    conformance.mark(mark)
    await asyncio.sleep(seconds)


@broker.task(task_name="taskiq_conformance_app.flaky")
async def flaky(mark: str, **kwargs: object) -> None:
    conformance.flaky(mark, **kwargs)
