"""The Celery app bench_actions.py makes fail and retries: Redis broker and result backend with
`result_extended` (what lets the adapter retry a task from its stored arguments). The worker's
agent attaches when Z4J_BRAIN_URL is set; the bench process instruments the app itself.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery(
    "bench-actions",
    broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
    backend=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
)
app.conf.update(
    task_default_queue="bench",
    result_extended=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

if os.environ.get("BENCH_WORKER") == "1":
    import z4j_celery

    z4j_celery.instrument(app)


@app.task(name="bench.always_fails")
def always_fails(index: int) -> None:
    raise RuntimeError(f"bench task {index} fails on purpose")
