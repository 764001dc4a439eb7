"""The fire-latency benchmark's Celery app: Redis broker, no result backend, the agent attached
(unless FIRE_NO_AGENT is set: celery beat's process runs this app without one)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from fire_sink import QUEUE, REDIS_URL, record

app = Celery("z4j-fire", broker=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
if not os.environ.get("FIRE_NO_AGENT"):
    import z4j_celery

    z4j_celery.instrument(app)


@app.task(name="fire.tick", bind=True)
def tick(self: Any) -> None:
    record(self.request.id)
