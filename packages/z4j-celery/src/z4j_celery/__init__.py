"""z4j for Celery: `z4j_celery.instrument(app)` in the module that creates your Celery app.

    from celery import Celery
    import z4j_celery

    app = z4j_celery.instrument(Celery("billing", broker="redis://localhost:6379/0"))

The brain's URL and the agent's token come from keyword arguments (`brain_url=`, `token=`, any
`z4j_core.agent.AgentConfig` field) or from `Z4J_*` variables. Returns the same app. Nothing
needs Celery's task events (`-E`): capture uses Celery's signals, and a prefork worker's pool
children hand their events to the worker's one agent through a local socket.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from z4j_celery import plugin, worker
from z4j_celery.adapter import CeleryAdapter, create_adapter
from z4j_core.agent import Agent, attach

__all__ = ["CeleryAdapter", "agent_of", "instrument"]

log = logging.getLogger("z4j.celery")

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
    options: agent options (`brain_url`, `token`, `app_name`, `labels`, ...), which win over
        `Z4J_*` variables.
    """
    if getattr(app, "_z4j_adapter", None) is not None:
        return app  # already instrumented: one adapter and one set of receivers per app
    adapter = create_adapter(
        app, {"app_name": options.get("app_name") or "", "capture_results": capture_results}
    )
    if adapter is None:
        raise TypeError(f"z4j_celery.instrument needs a celery.Celery app, not {type(app)!r}")
    in_worker = worker.in_worker_command()
    agent = attach(adapter, start=False, **options)
    _ensure_plugin(agent, adapter)
    if adapter.capture is not None:
        adapter.capture.agent = agent
    app._z4j_adapter = adapter  # type: ignore[attr-defined]
    worker.follow_worker(adapter, agent)
    if start or (start is None and not in_worker):
        agent.start()
    worker.drain_at_exit(agent)
    return app


def agent_of(app: Any) -> Agent | None:
    """The agent `instrument` attached to `app`, if any."""
    from z4j_core.agent import default_agent

    return default_agent() if getattr(app, "_z4j_adapter", None) is not None else None


def _ensure_plugin(agent: Agent, adapter: CeleryAdapter) -> None:
    """Register our hooks when the entry point is not installed (running from a source tree)."""
    manager = agent.plugins.manager
    if manager.is_registered(plugin) or any(
        manager.get_plugin(name) is plugin for name in agent.plugins.loaded
    ):
        return
    manager.register(plugin, name="celery")
    agent.plugins.loaded["celery"] = "celery"
    if adapter.capture is None:
        manager.hook.z4j_install_capture(adapter=adapter, emit=agent.emitter(adapter.engine))
