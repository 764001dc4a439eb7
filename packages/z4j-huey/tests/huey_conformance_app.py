"""The tasks module the conformance suite runs in real Huey consumers.

The storage comes from HUEY_CONFORMANCE_STORAGE: `sqlite:<path>` (SqliteHuey) or a
`redis://` URL (RedisHuey). The agent is configured from Z4J_* variables, as an app would be.
"""

from __future__ import annotations

import os
import time

from huey import Huey, RedisHuey, SqliteHuey, crontab

import z4j_huey
from z4j_core.testing import conformance

APP = "z4j-conformance"


def make_huey() -> Huey:
    storage = os.environ.get("HUEY_CONFORMANCE_STORAGE", "")
    if storage.startswith("redis://"):
        return RedisHuey(APP, url=storage)
    if storage.startswith("sqlite:"):
        return SqliteHuey(APP, filename=storage.removeprefix("sqlite:"))
    raise SystemExit(f"HUEY_CONFORMANCE_STORAGE={storage!r}: use sqlite:<path> or redis://...")


if os.environ.get(conformance.FAULT_ENV):
    conformance.inject_capture_fault()

huey = z4j_huey.instrument(make_huey())


class ConformanceError(Exception):
    """What the failing task raises."""


@huey.task()
def succeed(mark: str, *args: object, **kwargs: object) -> str:
    conformance.mark(mark)
    return mark


@huey.task()
def fail() -> None:
    raise ConformanceError("this task always fails")


@huey.task(retries=1)
def retry() -> None:
    raise ConformanceError("this task fails on every attempt")


@huey.task()
def flaky(mark: str, **kwargs: object) -> None:
    """Fails on its first run with a mark, then succeeds (the suite retries it)."""
    conformance.flaky(mark, **kwargs)


@huey.task()
def slow(mark: str, seconds: float) -> None:
    conformance.mark(mark)
    time.sleep(seconds)


@huey.periodic_task(crontab(minute="*/15", hour="9-17", day_of_week="1-5"))
def office_hours() -> None:
    pass


@huey.periodic_task(crontab(minute="30", hour="3", day="1"))
def monthly() -> None:
    pass
