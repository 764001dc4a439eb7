"""The scheduler tests' Huey application: one task that records each run's job id.

A z4j fire's id becomes Huey's task id, so the sink file counts executions per fire id.
Appends of one short line are atomic, so two workers never interleave.
"""

from __future__ import annotations

import os

from huey import SqliteHuey, crontab

import z4j_huey

huey = z4j_huey.instrument(SqliteHuey("sink", filename=os.environ["SINK_HUEY_DB"]))


@huey.task(context=True)
def record(task: object = None) -> str:
    job_id = str(getattr(task, "id", ""))
    with open(os.environ["SINK_FILE"], "a") as sink:
        sink.write(job_id + "\n")
    return job_id


@huey.periodic_task(crontab(minute="0", hour="3"))
def nightly() -> None:
    """A native periodic task: agents report it, z4j only observes it."""
