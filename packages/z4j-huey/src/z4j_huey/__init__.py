"""z4j for Huey: `z4j_huey.instrument(huey)` in the module that creates your Huey instance.

    from huey import RedisHuey
    import z4j_huey

    huey = z4j_huey.instrument(RedisHuey("billing"))

The brain's URL and the agent's token come from keyword arguments (`brain_url=`, `token=`, any
`z4j_core.agent.AgentConfig` field) or from `Z4J_*` variables. Returns the same Huey instance.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from z4j_core.agent import Agent, attach
from z4j_huey import plugin, worker
from z4j_huey.adapter import HueyAdapter, create_adapter

__all__ = ["HueyAdapter", "instrument"]

log = logging.getLogger("z4j.huey")

H = TypeVar("H")


def instrument(huey: H, *, start: bool | None = None, **options: Any) -> H:
    """Attach the process's z4j agent to `huey` and return `huey` itself.

    start: None (default) starts the agent's link now, except inside `huey_consumer`, where it
        starts once the consumer has started its workers (never before a process-worker fork);
        True starts it now; False leaves starting to you (`z4j_huey.agent_of(huey).start()`).
    options: agent options (`brain_url`, `token`, `app_name`, `labels`, ...), which win over
        `Z4J_*` variables.
    """
    adapter = create_adapter(huey, {"app_name": options.get("app_name") or ""})
    if adapter is None:
        raise TypeError(f"z4j_huey.instrument needs a huey.Huey instance, not {type(huey)!r}")
    if getattr(huey, "_z4j_adapter", None) is not None:
        return huey  # already instrumented: one adapter and one receiver per instance
    in_consumer = worker.in_consumer_command()
    agent = attach(adapter, start=False, **options)
    _ensure_plugin(agent, adapter)
    huey._z4j_adapter = adapter  # type: ignore[attr-defined]
    worker.follow_consumers(huey, agent, start_with_consumer=start is None or start)
    if start or (start is None and not in_consumer):
        agent.start()
    worker.drain_at_exit(agent)
    return huey


def agent_of(huey: Any) -> Agent | None:
    """The agent `instrument` attached to `huey`, if any."""
    from z4j_core.agent import default_agent

    return default_agent() if getattr(huey, "_z4j_adapter", None) is not None else None


def _ensure_plugin(agent: Agent, adapter: HueyAdapter) -> None:
    """Register our hooks when the entry point is not installed (running from a source tree)."""
    manager = agent.plugins.manager
    if manager.is_registered(plugin) or any(
        manager.get_plugin(name) is plugin for name in agent.plugins.loaded
    ):
        return
    manager.register(plugin, name="huey")
    agent.plugins.loaded["huey"] = "huey"
    if adapter.capture is None:
        manager.hook.z4j_install_capture(adapter=adapter, emit=agent.emitter(adapter.engine))
