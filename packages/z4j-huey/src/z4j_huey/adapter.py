"""The Huey adapter: what the agent knows of one instrumented Huey instance, and what it asks.

Owns the capabilities this instance really supports (priority only when its storage orders by
priority) and the answers from memory (the registered tasks). Does no I/O and never talks to
the broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from z4j_core.adapter import Adapter, Emit, capabilities, instance_of
from z4j_core.wire import Capability, ObservedSchedule, TaskInfo
from z4j_huey import actions, capture, enqueue, schedules

C = Capability
TASK_OPTIONS = ("retries", "priority", "timeout")  # a task class's `default_<option>`


class HueyAdapter(Adapter):
    """One instrumented Huey instance. Huey has one queue per instance, named after it."""

    engine = "huey"

    def __init__(self, huey: Any, app_name: str = "") -> None:
        self.huey = huey
        self.queue = str(getattr(huey, "name", "") or "huey")
        self.app_name = app_name or self.queue
        extra = [C.ETA, C.EXPIRES, C.RETRY, C.CANCEL, C.PURGE, C.QUEUE_DEPTH]
        priority = [C.PRIORITY] if enqueue.storage_supports_priority(huey) else []
        self.capabilities = capabilities(*extra, *priority)

    @classmethod
    def create(cls, app: object, options: Mapping[str, Any]) -> HueyAdapter | None:
        app_name = str(options.get("app_name") or "")
        return cls(app, app_name) if instance_of(app, "huey", "Huey") else None

    def registered_tasks(self) -> list[TaskInfo]:
        infos = []
        for name, task_class in sorted(self.huey._registry._registry.items()):
            defaults = {o: getattr(task_class, f"default_{o}", None) for o in TASK_OPTIONS}
            options = {option: str(value) for option, value in defaults.items() if value}
            if hasattr(task_class, "validate_datetime"):
                options["periodic"] = "true"
            infos.append(TaskInfo(name=name, queue=self.queue, options=options))
        return infos

    def observed_schedules(self) -> list[ObservedSchedule]:
        return schedules.observe(self.huey)

    def install_capture(self, emit: Emit) -> None:
        capture.install(self, emit)

    enqueue = enqueue.enqueue
    retry = actions.retry
    cancel = actions.cancel
    purge = actions.purge
    queue_depths = actions.queue_depths
