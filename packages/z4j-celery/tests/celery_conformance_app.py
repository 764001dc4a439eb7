"""The tasks module the conformance suite (and the adapter's own tests) run in real Celery
workers.

The broker comes from CELERY_CONFORMANCE_BROKER (a `redis://` or `amqp://` URL), the result
backend from CELERY_CONFORMANCE_BACKEND (optional), the queue from CELERY_CONFORMANCE_QUEUE (one
per test run and class, so runs sharing a broker never consume each other's tasks). The agent is
configured from Z4J_* variables, as an app would be.
"""

from __future__ import annotations

import os
import time

from celery import Celery
from celery.schedules import crontab
from kombu import Queue

import z4j_celery
from z4j_core.testing import conformance

APP = "z4j-conformance"
QUEUE = os.environ.get("CELERY_CONFORMANCE_QUEUE", "z4j-conformance")

if os.environ.get(conformance.FAULT_ENV):
    conformance.inject_capture_fault()

app = Celery(
    APP,
    broker=os.environ.get("CELERY_CONFORMANCE_BROKER", "redis://127.0.0.1:6379/15"),
    backend=os.environ.get("CELERY_CONFORMANCE_BACKEND") or None,
)
app.conf.update(
    task_default_queue=QUEUE,
    # Queues left behind on a shared RabbitMQ vanish ten minutes after their last consumer.
    task_queues=[Queue(QUEUE, queue_arguments={"x-expires": 600_000})],
    broker_connection_retry_on_startup=True,
    # Fewer reserved tasks than Celery's default 4 per slot, so the suite needs fewer fillers
    # to keep its waiting tasks in the broker (cancel, purge, queue depth); not 1: a solo worker
    # on RabbitMQ then leaves the next message in the broker while it runs a task, and an
    # expiring one is dropped there by its TTL, unseen (docs/engines/celery.md).
    worker_prefetch_multiplier=2,
    # With a result backend, a retry reads the original arguments from it (extended results);
    # without one, from the original the worker's host kept when the task failed.
    result_extended=bool(os.environ.get("CELERY_CONFORMANCE_BACKEND")),
    worker_hijack_root_logger=False,
    beat_schedule={
        "office-hours": {
            "task": "celery_conformance_app.succeed",
            "schedule": crontab(minute="*/15", hour="9-17", day_of_week="1-5"),
        },
        "monthly": {
            "task": "celery_conformance_app.fail",
            "schedule": crontab(minute=30, hour=3, day_of_month=1),
        },
    },
)
if not os.environ.get("CELERY_CONFORMANCE_NO_AGENT"):
    z4j_celery.instrument(app)


class ConformanceError(Exception):
    """What the failing task raises."""


@app.task(name="celery_conformance_app.succeed")
def succeed(mark: str, *args: object, **kwargs: object) -> str:
    conformance.mark(mark)
    return mark


@app.task(name="celery_conformance_app.fail")
def fail() -> None:
    raise ConformanceError("this task always fails")


@app.task(name="celery_conformance_app.retry", bind=True, max_retries=1)
def retry(self: object) -> None:
    try:
        raise ConformanceError("this task fails on every attempt")
    except ConformanceError as exc:
        raise self.retry(exc=exc, countdown=0.2) from exc  # type: ignore[attr-defined]


@app.task(name="celery_conformance_app.flaky")
def flaky(mark: str, **kwargs: object) -> None:
    conformance.flaky(mark, **kwargs)


@app.task(name="celery_conformance_app.slow")
def slow(mark: str, seconds: float) -> None:
    conformance.mark(mark)
    time.sleep(seconds)


@app.task(name="celery_conformance_app.spawn", bind=True)
def spawn(self: object, mark: str) -> str:
    """Publishes `succeed(mark)` from inside a task: the child has parent and root ids."""
    return str(succeed.delay(mark).id)


@app.task(name="celery_conformance_app.sized")
def sized(length: int) -> str:
    return "x" * length
