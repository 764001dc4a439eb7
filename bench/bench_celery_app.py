"""The Celery app the Celery benchmark runs: one no-op task, Redis broker and result backend.

BENCH_VARIANT picks what is attached in the worker: `none`, `ours` (z4j_celery.instrument,
configured by Z4J_* variables) or `theirs` (the existing product's z4j-celery 1.13 with
z4j-bare, configured by BENCH_THEIRS_* variables; that variant runs in its own virtualenv).
The first task (index 0) writes the time it ran to BENCH_TIMES.
"""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery(
    "z4j-bench",
    broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
    backend=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
)
app.conf.update(
    task_default_queue=os.environ.get("BENCH_QUEUE", "z4j-bench"),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

VARIANT = os.environ.get("BENCH_VARIANT", "none")
if VARIANT == "ours":
    import z4j_celery

    z4j_celery.instrument(app)
elif VARIANT == "theirs":
    from z4j_bare import install_agent  # type: ignore[import-not-found]

    from z4j_celery import CeleryEngineAdapter  # type: ignore[attr-defined]

    install_agent(
        engines=[CeleryEngineAdapter(celery_app=app)],
        brain_url=os.environ["BENCH_THEIRS_URL"],
        token=os.environ["BENCH_THEIRS_TOKEN"],
        project_id=os.environ["BENCH_THEIRS_PROJECT"],
        hmac_secret=os.environ["BENCH_THEIRS_HMAC"],
    )


@app.task(name="bench.noop")
def noop(index: int) -> None:
    if index == 0:
        fd = os.open(os.environ["BENCH_TIMES"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{time.time()}\n".encode())
        finally:
            os.close(fd)
