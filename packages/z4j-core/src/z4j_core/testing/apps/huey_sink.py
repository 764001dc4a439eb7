"""The scheduler rig's Huey application (sink.py): tasks that record each run's job id (``fail``
then raises, ``slow`` then sleeps).

A z4j fire's id becomes Huey's task id, so the sink file counts executions per fire id.
Appends of one short line are atomic, so two workers never interleave.
"""

# mypy: disable-error-code="untyped-decorator"
# (huey has no type information: its decorators are Any.)
from __future__ import annotations

import os
import time

from huey import SqliteHuey, crontab

import z4j_huey

huey = z4j_huey.instrument(SqliteHuey("sink", filename=os.environ["SINK_HUEY_DB"]))


@huey.task(context=True)
def record(task: object = None) -> str:
    job_id = str(getattr(task, "id", ""))
    with open(os.environ["SINK_FILE"], "a") as sink:
        sink.write(job_id + "\n")
    return job_id


@huey.task(context=True)
def fail(task: object = None) -> None:
    """Records its run, then raises: a schedule of it fails every time."""
    record.call_local(task)
    raise RuntimeError("the sink's fail task fails by design")


@huey.task(context=True)
def slow(seconds: float = 3.0, task: object = None) -> None:
    """Records its run, then takes ``seconds``: a schedule of it overlaps its next slot."""
    record.call_local(task)
    time.sleep(seconds)


@huey.periodic_task(crontab(minute="0", hour="3"))
def nightly() -> None:
    """A native periodic task: agents report it, z4j only observes it."""
