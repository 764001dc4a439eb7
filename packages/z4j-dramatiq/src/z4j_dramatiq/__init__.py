"""z4j for Dramatiq: in the module that creates the broker,

    broker.add_middleware(z4j_dramatiq.Z4JMiddleware())   # or: z4j_dramatiq.instrument(broker)

The brain's URL and the agent's token come from keyword arguments (`brain_url=`, `token=`, any
`z4j_core.agent.AgentConfig` field) or from `Z4J_*` variables. docs/engines/dramatiq.md has more.
"""

from __future__ import annotations

from typing import Any, TypeVar

from z4j_core import adapter as kit
from z4j_core.adapter import agent_of
from z4j_dramatiq import capture
from z4j_dramatiq.adapter import DramatiqAdapter
from z4j_dramatiq.capture import Z4JMiddleware

__all__ = ["DramatiqAdapter", "Z4JMiddleware", "agent_of", "instrument"]

B = TypeVar("B")


def instrument(
    broker: B, *, start: bool | None = None, middleware: Z4JMiddleware | None = None, **options: Any
) -> B:
    """Attach the process's z4j agent to `broker` and return `broker` itself.

    middleware: the broker's `Z4JMiddleware` (default: the one it has, else a new one).
    start: None or True starts the agent's link now (`z4j_dramatiq.worker` says why); False
        leaves it to you (`z4j_dramatiq.agent_of(broker).start()`).
    options: agent options (`brain_url`, `token`, `app_name`, ...), over `Z4J_*` variables.
    """
    if kit.adapter_of(broker) is not None:
        return broker  # already instrumented: one adapter and one middleware per broker
    adapter = DramatiqAdapter.create(broker, options)
    if adapter is None:
        raise TypeError(f"z4j_dramatiq.instrument needs a dramatiq.Broker, not {type(broker)!r}")
    adapter.capture = middleware or capture.find(broker)
    if adapter.capture is not None:  # bound first: its hooks call back into `instrument`
        adapter.capture.adapter = adapter
    kit.instrument(adapter, broker, start=start is not False, **options)
    if adapter.capture is not None:  # the one found, or the one `install_capture` added
        adapter.capture.start = start  # its worker-boot hook starts the link unless False
    return broker
