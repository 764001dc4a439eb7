"""z4j for Dramatiq: add the middleware to your broker, in the module that creates it.

    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    import z4j_dramatiq

    broker = RedisBroker(url="redis://localhost:6379/0")
    broker.add_middleware(z4j_dramatiq.Z4JMiddleware())   # or: z4j_dramatiq.instrument(broker)
    dramatiq.set_broker(broker)

The brain's URL and the agent's token come from keyword arguments (`brain_url=`, `token=`, any
`z4j_core.agent.AgentConfig` field) or from `Z4J_*` variables. `instrument` returns the broker.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from z4j_core.agent import Agent, attach
from z4j_dramatiq import capture, plugin, worker
from z4j_dramatiq.adapter import DramatiqAdapter, create_adapter
from z4j_dramatiq.capture import Z4JMiddleware

__all__ = ["DramatiqAdapter", "Z4JMiddleware", "agent_of", "instrument"]

log = logging.getLogger("z4j.dramatiq")

B = TypeVar("B")


def instrument(
    broker: B,
    *,
    start: bool | None = None,
    middleware: Z4JMiddleware | None = None,
    **options: Any,
) -> B:
    """Attach the process's z4j agent to `broker` and return `broker` itself.

    Adds a `Z4JMiddleware` unless the broker has one (`middleware`: the one to use).
    start: None (default) or True starts the agent's link now (a Dramatiq worker process imports
        the broker after its fork, so nothing forks later); False leaves starting to you
        (`z4j_dramatiq.agent_of(broker).start()`).
    options: agent options (`brain_url`, `token`, `app_name`, `labels`, ...), which win over
        `Z4J_*` variables.
    """
    existing = getattr(broker, "_z4j_adapter", None)
    if existing is not None:
        return broker  # already instrumented: one adapter and one middleware per broker
    adapter = create_adapter(broker, {"app_name": options.get("app_name") or ""})
    if adapter is None:
        raise TypeError(f"z4j_dramatiq.instrument needs a dramatiq.Broker, not {type(broker)!r}")
    middleware = middleware or capture.find(broker)
    if middleware is not None:
        middleware.adapter = adapter
        adapter.capture = middleware
    broker._z4j_adapter = adapter  # type: ignore[attr-defined]
    agent = attach(adapter, start=False, **options)
    _ensure_plugin(agent, adapter)
    installed = adapter.capture
    if installed is not None:
        installed.agent = agent
        installed.start = start
    if worker.start_now(start):
        agent.start()
    worker.drain_at_exit(agent)
    return broker


def agent_of(broker: Any) -> Agent | None:
    """The agent `instrument` attached to `broker`, if any."""
    from z4j_core.agent import default_agent

    return default_agent() if getattr(broker, "_z4j_adapter", None) is not None else None


def _ensure_plugin(agent: Agent, adapter: DramatiqAdapter) -> None:
    """Register our hooks when the entry point is not installed (running from a source tree)."""
    manager = agent.plugins.manager
    if not (
        manager.is_registered(plugin)
        or any(manager.get_plugin(name) is plugin for name in agent.plugins.loaded)
    ):
        manager.register(plugin, name="dramatiq")
        agent.plugins.loaded["dramatiq"] = "dramatiq"
    if adapter.capture is None or adapter.capture.emit is capture._ignore:
        capture.install(adapter, agent.emitter(adapter.engine))
