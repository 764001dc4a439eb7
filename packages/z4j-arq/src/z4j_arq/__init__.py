"""z4j for arq: instrument the worker settings and, in processes that only enqueue, the pool.

    import z4j_arq

    @z4j_arq.instrument
    class WorkerSettings:
        functions = [send_mail]
        cron_jobs = [cron(nightly, hour=3, minute=0)]

    pool = z4j_arq.instrument(await create_pool(RedisSettings()))   # a web app, a script

`instrument(settings)` returns settings (a class like yours, or a new dict) whose hooks run
z4j's part, then yours; `instrument(pool)` returns the same `ArqRedis`, its enqueues reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from z4j_arq import worker
from z4j_arq.adapter import ArqAdapter, is_pool
from z4j_core import adapter as kit
from z4j_core.adapter import agent_of
from z4j_core.agent import default_agent

__all__ = ["ArqAdapter", "agent_of", "instrument"]

A = TypeVar("A")


def instrument(
    app: A, *, start: bool | None = None, functions: Iterable[Any] = (), **options: Any
) -> A:
    """Attach the process's z4j agent to arq worker settings or an `ArqRedis` pool.

    start: None (default) starts the agent's link in the worker's `on_startup` (settings) or now
        (a pool); True starts it now; False leaves starting to you (`agent_of(app).start()`).
    functions: for a pool, the functions it enqueues (arq has no registry outside a worker).
    options: agent options (`brain_url`, `token`, any `AgentConfig` field), over `Z4J_*`.
    """
    if kit.adapter_of(app) is not None:
        return app  # already instrumented
    app_name = options.get("app_name") or default_agent(**options).config.app_name or ""
    adapter = ArqAdapter.create(app, {"app_name": app_name, "functions": functions})
    if adapter is None:
        raise TypeError(
            "z4j_arq.instrument needs arq worker settings (a class or dict with `functions` or "
            f"`cron_jobs`) or an arq.connections.ArqRedis pool, not {type(app)!r}"
        )
    if is_pool(app):
        kit.instrument(adapter, app, start=start is None or start, **options)
        return app
    agent = kit.instrument(adapter, start=bool(start), **options)
    return worker.instrument_settings(app, adapter, agent, start)  # type: ignore[no-any-return]
