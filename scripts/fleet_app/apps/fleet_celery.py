"""The fleet's Celery app: one task the brain's schedules fire, one celery beat entry (observed).

`celery -A fleet_celery worker` runs it; the agent is configured from the Z4J_* variables the
fleet sets, as a deployment's would be.
"""

from __future__ import annotations

from celery import Celery, Task
from celery.schedules import crontab
from fleet_runs import record as record_run
from fleet_runs import redis_url

import z4j_celery

app = Celery("fleet", broker=redis_url())
app.conf.update(
    task_default_queue="fleet-celery",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # A native schedule, observed by the agent and listed beside the brain's (never run here:
    # the fleet starts no celery beat).
    beat_schedule={
        "nightly-report": {
            "task": "fleet_celery.nightly_report",
            "schedule": crontab(hour=3, minute=0),
        }
    },
)
z4j_celery.instrument(app)


@app.task(name="fleet_celery.record", bind=True)
def record(self: Task, schedule: str) -> str:
    record_run("celery", self.request.id)
    return schedule


@app.task(name="fleet_celery.nightly_report")
def nightly_report() -> None:
    pass
