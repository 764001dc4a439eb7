"""z4j for Huey: `z4j_huey.instrument(huey)` in the module that creates your Huey instance.

from huey import RedisHuey
import z4j_huey

huey = z4j_huey.instrument(RedisHuey("billing"))
"""

from __future__ import annotations

from typing import Any, TypeVar

from z4j_core import adapter as kit
from z4j_core.adapter import agent_of
from z4j_huey import worker
from z4j_huey.adapter import HueyAdapter

__all__ = ["HueyAdapter", "agent_of", "instrument"]

H = TypeVar("H")


def instrument(huey: H, *, start: bool | None = None, **options: Any) -> H:
    """Attach the process's z4j agent to `huey` and return `huey` itself.

    start: None (default) starts the agent's link now, except inside `huey_consumer`, where it
        starts once the consumer has started its workers (never before a process-worker fork);
        True starts it now; False leaves starting to you (`z4j_huey.agent_of(huey).start()`).
    options: agent options (`brain_url`, `token`, `app_name`, `labels`, any
        `z4j_core.agent.AgentConfig` field), which win over `Z4J_*` variables.
    """
    adapter = HueyAdapter.create(huey, options)
    if adapter is None:
        raise TypeError(f"z4j_huey.instrument needs a huey.Huey instance, not {type(huey)!r}")
    if kit.adapter_of(huey) is not None:
        return huey  # already instrumented: one adapter and one receiver per instance
    agent = kit.instrument(adapter, huey, **options)
    worker.follow_consumers(huey, agent, start_with_consumer=start is None or start)
    if start or (start is None and not worker.in_consumer_command()):
        agent.start()
    return huey
