"""z4j for Celery: `z4j_celery.instrument(app)` in the module that creates your Celery app.

    from celery import Celery
    import z4j_celery

    app = z4j_celery.instrument(Celery("billing", broker="redis://localhost:6379/0"))

The brain's URL and the agent's token come from keyword arguments (`brain_url=`, `token=`, any
`z4j_core.agent.AgentConfig` field) or from `Z4J_*` variables. Celery's task events (`-E`) are
not needed: capture uses Celery's signals (z4j_celery.capture, z4j_celery.worker).
"""

from __future__ import annotations

from typing import Any, TypeVar

from z4j_celery import worker
from z4j_celery.adapter import CeleryAdapter
from z4j_core import adapter as kit
from z4j_core.adapter import agent_of

__all__ = ["CeleryAdapter", "agent_of", "instrument"]

A = TypeVar("A")


def instrument(
    app: A, *, start: bool | None = None, capture_results: bool = False, **options: Any
) -> A:
    """Attach the process's z4j agent to the Celery `app` and return `app` itself.

    start: None (default) starts the agent's link now, except in `celery worker`, where it
        starts on `worker_ready`, once the pool has forked; True starts it now; False leaves
        starting to the worker (`worker_ready`) or to you (`z4j_celery.agent_of(app).start()`):
        pass False when you start a worker with `app.worker_main()`.
    capture_results: send each task's (redacted) result with `succeeded`, not only its size.
    options: agent options (`brain_url`, `token`, `app_name`, ...), over `Z4J_*` variables.
    """
    if kit.adapter_of(app) is not None:
        return app  # already instrumented: one adapter and one set of receivers per app
    adapter = CeleryAdapter.create(app, {**options, "capture_results": capture_results})
    if adapter is None:
        raise TypeError(f"z4j_celery.instrument needs a celery.Celery app, not {type(app)!r}")
    agent = kit.instrument(adapter, app, **options)
    worker.WorkerLife(adapter, agent).connect()
    if start or (start is None and not worker.in_worker_command()):
        agent.start()
    return app
