"""z4j for arq: instrument the worker settings and, in processes that only enqueue, the pool.

    import z4j_arq

    @z4j_arq.instrument
    class WorkerSettings:
        functions = [send_mail]
        cron_jobs = [cron(nightly, hour=3, minute=0)]

    pool = z4j_arq.instrument(await create_pool(RedisSettings()))   # a web app, a script

`instrument(settings)` returns settings (a class like yours, or a new dict) whose `on_startup`,
`on_shutdown`, `on_job_start` and `after_job_end` run z4j's part and then your own hooks;
`instrument(pool)` returns the same `ArqRedis`, its enqueues reported. The brain's URL and the
agent's token come from keyword arguments (`brain_url=`, `token=`, any
`z4j_core.agent.AgentConfig` field) or from `Z4J_*` variables.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Iterable
from typing import Any, TypeVar

from z4j_arq import plugin, worker
from z4j_arq.adapter import ArqAdapter, create_adapter, is_pool
from z4j_core.agent import Agent, attach, default_agent

__all__ = ["ArqAdapter", "agent_of", "instrument"]

log = logging.getLogger("z4j.arq")

A = TypeVar("A")
_atexit_agents: set[int] = set()


def instrument(
    app: A, *, start: bool | None = None, functions: Iterable[Any] = (), **options: Any
) -> A:
    """Attach the process's z4j agent to arq worker settings or an `ArqRedis` pool.

    start: None (default) starts the agent's link in the worker's `on_startup` (settings) or now
        (a pool); True starts it now; False leaves starting to you (`agent_of(app).start()`).
    functions: for a pool, the functions it enqueues (listed in the inventory; arq has no
        registry outside the worker).
    options: agent options (`brain_url`, `token`, `app_name`, `labels`, ...), which win over
        `Z4J_*` variables.
    """
    existing = getattr(app, "_z4j_adapter", None)
    if existing is None and isinstance(app, dict):
        existing = app.get(worker.MARK)
    if existing is not None:
        return app  # already instrumented
    app_name = options.get("app_name") or default_agent(**options).config.app_name or ""
    adapter = create_adapter(app, {"app_name": app_name, "functions": functions})
    if adapter is None:
        raise TypeError(
            "z4j_arq.instrument needs arq worker settings (a class or dict with `functions` or "
            f"`cron_jobs`) or an arq.connections.ArqRedis pool, not {type(app)!r}"
        )
    agent = attach(adapter, start=False, **options)
    _ensure_plugin(agent, adapter)
    capture = adapter.capture
    if capture is not None:
        capture.prepare, capture.emit_prepared = agent.prepare, agent.emit_prepared
    _drain_at_exit(agent)
    if is_pool(app):
        app._z4j_adapter = adapter  # type: ignore[attr-defined]
        if start is None or start:
            agent.start()
        return app
    settings = worker.instrument_settings(app, adapter, agent, start)
    if start:
        agent.start()
    return settings  # type: ignore[no-any-return]


def agent_of(app: Any) -> Agent | None:
    """The agent `instrument` attached to `app` (settings it returned, or a pool), if any."""
    marked = app.get(worker.MARK) if isinstance(app, dict) else getattr(app, "_z4j_adapter", None)
    return default_agent() if marked is not None else None


def _ensure_plugin(agent: Agent, adapter: ArqAdapter) -> None:
    """Register our hooks when the entry point is not installed (running from a source tree)."""
    manager = agent.plugins.manager
    if manager.is_registered(plugin) or any(
        manager.get_plugin(name) is plugin for name in agent.plugins.loaded
    ):
        return
    manager.register(plugin, name="arq")
    agent.plugins.loaded["arq"] = "arq"
    if adapter.capture is None:
        manager.hook.z4j_install_capture(adapter=adapter, emit=agent.emitter(adapter.engine))


def _drain_at_exit(agent: Agent) -> None:
    if id(agent) in _atexit_agents:
        return
    _atexit_agents.add(id(agent))
    atexit.register(agent.stop)
