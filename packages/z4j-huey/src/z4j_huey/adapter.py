"""The Huey adapter: what the agent knows of one instrumented Huey instance, and what it asks.

Owns the capabilities this instance really supports (priority only when its storage orders by
priority) and the answers from memory (the registered tasks); enqueue, capture, observed
schedules and actions live in their own modules. Does no I/O and never talks to the broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from z4j_core.adapter import (
    Adapter,
    Emit,
    capabilities,
    instance_of,
)
from z4j_core.wire import (
    Capability,
    Command,
    CommandResult,
    ObservedSchedule,
    TaskInfo,
)
from z4j_huey import actions, capture, enqueue, schedules
from z4j_huey.enqueue import storage_supports_priority


@dataclass(eq=False)
class HueyAdapter(Adapter):
    """One instrumented Huey instance."""

    engine = "huey"

    huey: Any
    app_name: str = ""
    capabilities: frozenset[str] = frozenset()
    capture: Any = None  # the installed `z4j_huey.capture.SignalCapture`, if any

    def __post_init__(self) -> None:
        if not self.app_name:
            self.app_name = self.queue
        if not self.capabilities:
            priority = (Capability.PRIORITY,) if storage_supports_priority(self.huey) else ()
            self.capabilities = capabilities(
                Capability.ETA,
                Capability.EXPIRES,
                *priority,
                Capability.RETRY,
                Capability.CANCEL,
                Capability.PURGE,
                Capability.QUEUE_DEPTH,
            )

    @classmethod
    def create(cls, app: object, options: Mapping[str, Any]) -> HueyAdapter | None:
        if not instance_of(app, "huey", "Huey"):
            return None
        return cls(huey=app, app_name=str(options.get("app_name") or ""))

    @property
    def queue(self) -> str:
        """Huey has one queue per instance, named after the instance."""
        return str(getattr(self.huey, "name", "") or "huey")

    def enqueue(self, command: Command) -> CommandResult:
        return enqueue.enqueue(self, command)

    def registered_tasks(self) -> list[TaskInfo]:
        infos = []
        for name, task_class in sorted(self.huey._registry._registry.items()):
            options = {}
            if hasattr(task_class, "validate_datetime"):
                options["periodic"] = "true"
            for option in ("default_retries", "default_priority", "default_timeout"):
                value = getattr(task_class, option, None)
                if value:
                    options[option.removeprefix("default_")] = str(value)
            infos.append(TaskInfo(name=name, queue=self.queue, options=options))
        return infos

    def observed_schedules(self) -> list[ObservedSchedule]:
        return schedules.observe(self.huey)

    def install_capture(self, emit: Emit) -> None:
        capture.install(self, emit)

    retry = actions.retry
    cancel = actions.cancel
    purge = actions.purge
    queue_depths = actions.queue_depths
