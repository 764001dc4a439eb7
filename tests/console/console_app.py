"""The console tests' Huey application: the sink's recording task, a task that fails, and a
task whose name, arguments and exception carry script payloads (a hostile application)."""

# mypy: disable-error-code="untyped-decorator"
# (huey has no type information: its decorators are Any.)
from __future__ import annotations

import os

from huey import SqliteHuey, crontab

import z4j_huey

#: Markup a hostile application puts wherever it can: none of it may ever run in the console.
PAYLOAD = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'

huey = z4j_huey.instrument(SqliteHuey("console", filename=os.environ["SINK_HUEY_DB"]))


@huey.task(context=True)
def record(task: object = None) -> str:
    job_id = str(getattr(task, "id", ""))
    with open(os.environ["SINK_FILE"], "a") as sink:
        sink.write(job_id + "\n")
    return job_id


@huey.task()
def fail(reason: str = "by design") -> None:
    raise RuntimeError(f"the console's fail task fails {reason}")


@huey.task(name=PAYLOAD)
def hostile(*args: object, **kwargs: object) -> None:
    raise ValueError(PAYLOAD)


@huey.periodic_task(crontab(minute="30", hour="2"))
def nightly() -> None:
    """A native periodic task: the console lists it as observed."""
