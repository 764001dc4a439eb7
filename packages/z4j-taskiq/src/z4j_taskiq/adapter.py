"""The taskiq adapter object: what the agent knows of one instrumented taskiq broker.

Owns the engine name, version, app name and capabilities, the broker, the middleware that
captures its lifecycle, the event loop the broker started on in this process (enqueue runs its
kicks there), and the schedule sources it was asked to observe. Does no I/O and never talks to
the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from z4j_core.wire import Capability

ENGINE = "taskiq"

# No eta, expires or priority: taskiq-redis's brokers honour none of them natively, and a
# repeated task id runs twice (so no native_dedup: the agent's fire-id memory protects fires).
CAPABILITIES: frozenset[str] = frozenset(
    c.value
    for c in (
        Capability.LIFECYCLE,
        Capability.LIST_TASKS,
        Capability.OBSERVE_SCHEDULES,
        Capability.ENQUEUE,
        Capability.FIRE,
        Capability.TRIGGER_NOW,
    )
)


def taskiq_version() -> str:
    try:
        from importlib.metadata import version

        return version("taskiq")
    except Exception:
        return "unknown"


def is_broker(app: object) -> bool:
    """Whether `app` is a taskiq broker (checked without importing taskiq when it is absent)."""
    try:
        from taskiq.abc.broker import AsyncBroker
    except ImportError:
        return False
    return isinstance(app, AsyncBroker)


def queue_of(broker: Any) -> str | None:
    """The broker's default queue, where it has one (taskiq-redis: `queue_name`)."""
    name = getattr(broker, "queue_name", None)
    return name if isinstance(name, str) and name else None


@dataclass(eq=False)
class TaskiqAdapter:
    """One instrumented taskiq broker (`z4j_core.hookspecs.EngineAdapter`)."""

    broker: Any
    engine: str = ENGINE
    engine_version: str = field(default_factory=taskiq_version)
    app_name: str = ""
    capabilities: frozenset[str] = CAPABILITIES
    middleware: Any = None  # the broker's `z4j_taskiq.capture.Z4JMiddleware`
    loop: asyncio.AbstractEventLoop | None = None  # where the broker started in this process
    started_at: float | None = None  # when (epoch seconds): the anchor of interval schedules
    sources: list[Any] = field(default_factory=list)  # schedule sources given to `observe`

    def __post_init__(self) -> None:
        if not self.app_name:
            self.app_name = queue_of(self.broker) or "taskiq"

    @property
    def queue(self) -> str | None:
        return queue_of(self.broker)

    def running_loop(self) -> asyncio.AbstractEventLoop | None:
        """The broker's loop when it is still running (enqueue needs one)."""
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return None
        return loop


def create_adapter(app: object, options: Mapping[str, Any]) -> TaskiqAdapter | None:
    """The adapter for a taskiq broker, or None for any other object."""
    if not is_broker(app):
        return None
    return TaskiqAdapter(broker=app, app_name=str(options.get("app_name") or ""))
