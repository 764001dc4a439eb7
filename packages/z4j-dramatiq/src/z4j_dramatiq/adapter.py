"""The Dramatiq adapter: what the agent knows of one instrumented Dramatiq broker, and what it asks.

Owns the capabilities and the declared actors, answered from memory; the rest lives in its own
modules. Does no I/O. Not advertised, on purpose: `expires` (AgeLimit skips an old message rather
than expiring it), `priority` (it orders only one worker's prefetched messages), `native_dedup`
(a message id sent twice runs twice) and `cancel` (docs/engines/dramatiq.md says what would).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from z4j_core.adapter import Adapter, Emit, adapter_of, capabilities, instance_of
from z4j_core.wire import Capability, ObservedSchedule, TaskInfo
from z4j_dramatiq import actions, capture, enqueue, schedules

#: Actor options reported in the inventory (the rest are callables or middleware internals;
#: `periodic` is periodiq's).
REPORTED_OPTIONS = "max_retries min_backoff max_backoff time_limit max_age periodic".split()

CAPABILITIES = capabilities(
    Capability.ETA, Capability.RETRY, Capability.PURGE, Capability.QUEUE_DEPTH
)


def task_info(actor: Any) -> TaskInfo:
    options = {name: str(actor.options[name]) for name in REPORTED_OPTIONS if name in actor.options}
    if actor.priority:
        options["priority"] = str(actor.priority)
    return TaskInfo(name=actor.actor_name, queue=actor.queue_name, options=options)


@dataclass(eq=False)
class DramatiqAdapter(Adapter):
    """One instrumented Dramatiq broker."""

    engine = "dramatiq"

    broker: Any
    app_name: str = ""
    capabilities: frozenset[str] = CAPABILITIES
    capture: Any = None  # the broker's `z4j_dramatiq.capture.Z4JMiddleware`, once installed

    def __post_init__(self) -> None:
        self.app_name = self.app_name or self.engine

    @classmethod
    def create(cls, app: object, options: Mapping[str, Any]) -> DramatiqAdapter | None:
        """The adapter for a Dramatiq broker (the one it has, if instrumented), else None."""
        if not instance_of(app, "dramatiq", "Broker"):
            return None
        existing = adapter_of(app)
        if isinstance(existing, DramatiqAdapter):
            return existing
        return cls(broker=app, app_name=str(options.get("app_name") or ""))

    def registered_tasks(self) -> list[TaskInfo]:
        broker = self.broker
        return [task_info(broker.get_actor(name)) for name in sorted(broker.get_declared_actors())]

    def observed_schedules(self) -> list[ObservedSchedule]:
        return schedules.observe(self.broker)

    def install_capture(self, emit: Emit) -> None:
        capture.install(self, emit)

    enqueue = enqueue.enqueue
    retry = actions.retry
    purge = actions.purge
    queue_depths = actions.queue_depths
