"""z4j for taskiq: one middleware on your broker, in the module that creates it.

    broker.add_middlewares(z4j_taskiq.Z4JMiddleware())   # or: z4j_taskiq.instrument(broker)

The agent starts when the broker starts in each process (`taskiq worker` and `taskiq scheduler`
do that; a web app awaits `broker.startup()`). Its options are keywords (`brain_url=`, `token=`,
any `z4j_core.agent.AgentConfig` field) or `Z4J_*` variables. `z4j_taskiq.observe(scheduler)`
adds a scheduler's sources to the schedules the agent reports.
"""

from __future__ import annotations

from typing import Any, TypeVar

from z4j_core.agent import Agent
from z4j_taskiq.adapter import TaskiqAdapter
from z4j_taskiq.capture import Z4JMiddleware

__all__ = ["TaskiqAdapter", "Z4JMiddleware", "agent_of", "instrument", "observe"]

B = TypeVar("B")


def middleware_of(broker: Any) -> Z4JMiddleware | None:
    mine = (m for m in getattr(broker, "middlewares", ()) if isinstance(m, Z4JMiddleware))
    return next(mine, None)


def instrument(broker: B, *, start: bool | None = None, **options: Any) -> B:
    """Add a `Z4JMiddleware(start=start, **options)` to `broker` (once); returns `broker`."""
    if TaskiqAdapter.create(broker, {}) is None:
        raise TypeError(f"z4j_taskiq.instrument needs a taskiq broker, not {type(broker)!r}")
    if middleware_of(broker) is None:
        broker.add_middlewares(Z4JMiddleware(start=start, **options))  # type: ignore[attr-defined]
    return broker


def observe(*sources_or_schedulers: Any) -> None:
    """Report the schedules of these sources (or of these `TaskiqScheduler`s' sources) too: for
    the scheduler's broker, or a bare source for every instrumented broker of this process.
    Read-only: z4j never changes a source."""
    from z4j_core.agent import default_agent

    for item in sources_or_schedulers:
        sources = list(getattr(item, "sources", None) or [item])
        broker = getattr(item, "broker", None) if hasattr(item, "sources") else None
        for adapter in default_agent().adapters:
            if isinstance(adapter, TaskiqAdapter) and (broker is None or adapter.broker is broker):
                adapter.sources.extend(s for s in sources if s not in adapter.sources)


def agent_of(broker: Any) -> Agent | None:
    """The agent a `Z4JMiddleware` on `broker` attached, if any."""
    return getattr(middleware_of(broker), "agent", None)
