"""The tasks module the conformance suite and the RQ tests run in real `rq worker` processes.

Redis comes from RQ_CONFORMANCE_URL; the agent is configured from Z4J_* variables. The worker
preloads this module through its settings module (`rq_conformance_settings`), as a deployment
would, so the declared tasks are known before the first job.
"""

from __future__ import annotations

import os
import time

from redis import Redis
from rq import Retry, get_current_job

import z4j_rq
from z4j_core.testing import conformance

if os.environ.get(conformance.FAULT_ENV):
    conformance.inject_capture_fault()


class ConformanceError(Exception):
    """What the failing tasks raise."""


def succeed(mark: str, *args: object, **kwargs: object) -> str:
    conformance.mark(mark)
    return mark


def fail() -> None:
    raise ConformanceError("this task always fails")


def retry() -> Retry:
    """Asks RQ to run it again once (RQ retries a raising job only when enqueued with Retry)."""
    return Retry(max=1)


def raise_until(mark: str, failures: int) -> str:
    """Raises `failures` times (count kept in the marks file), then succeeds."""
    conformance.mark(mark)
    path = os.environ.get(conformance.MARKS_ENV, "")
    with open(path) as marks:
        if sum(1 for line in marks if line.strip() == mark) <= failures:
            raise ConformanceError(
                f"attempt failed (postgres://bob:pw-in-message@db.example/app) {mark}"
            )
    return mark


def flaky(mark: str, **kwargs: object) -> None:
    """Fails on its first run with a mark, then succeeds (the suite retries it)."""
    conformance.flaky(mark, **kwargs)


def slow(mark: str, seconds: float) -> None:
    conformance.mark(mark)
    time.sleep(seconds)


def whoami(mark: str) -> None:
    """Records the pid of the process running the job and whether it is a horse."""
    job = get_current_job()
    conformance.mark(f"{mark}:{os.getpid()}:{job.id if job else ''}")


def enqueue_child(mark: str) -> None:
    """A job that enqueues another job (the horse must not start an agent for it)."""
    from rq import Queue

    queue = Queue("default", connection=Redis.from_url(os.environ["RQ_CONFORMANCE_URL"]))
    queue.enqueue(succeed, mark)


APP = z4j_rq.instrument(
    Redis.from_url(os.environ["RQ_CONFORMANCE_URL"]),
    tasks=[succeed, fail, retry, slow, raise_until, whoami, enqueue_child, flaky],
)


def office_hours() -> None:
    """Registered with `rq cron` (rq_conformance_cron.py)."""


def monthly() -> None:
    """Registered with `rq cron`."""


def hourly() -> None:
    """Registered with `rq cron` as an interval job."""
