"""The taskiq adapter: what the agent knows of one instrumented taskiq broker, and what it asks.

Owns the broker, its middleware, the loop the broker started on in this process (kicks run
there), the schedule sources to observe, and the registered tasks (answered from memory; no I/O).
Enqueue, capture, actions and observed schedules live in their own modules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from z4j_core.adapter import Adapter, Emit, capabilities, instance_of
from z4j_core.wire import Capability, TaskInfo
from z4j_taskiq import actions, enqueue, schedules

#: Task labels shown in the inventory (the rest may hold anything, secrets included).
SHOWN_LABELS = ("retry_on_error", "max_retries", "timeout", "delay", "priority", "queue_name")

# No eta, expires or priority: taskiq-redis's brokers honour none of them natively, and a
# repeated task id runs twice (so no native_dedup: the agent's fire-id memory protects fires).
# No cancel: taskiq has no way to cancel a task.
CAPABILITIES = capabilities(Capability.RETRY)
#: Added for a taskiq-redis `ListQueueBroker`, whose queues are plain Redis lists.
LIST_CAPABILITIES = frozenset({Capability.QUEUE_DEPTH.value, Capability.PURGE.value})


@dataclass(eq=False)
class TaskiqAdapter(Adapter):
    """One instrumented taskiq broker."""

    engine = "taskiq"

    broker: Any
    app_name: str = ""
    capabilities: frozenset[str] = CAPABILITIES
    middleware: Any = None  # the broker's `z4j_taskiq.capture.Z4JMiddleware`
    loop: asyncio.AbstractEventLoop | None = None  # where the broker started in this process
    started_at: float | None = None  # when (epoch seconds): the anchor of interval schedules
    sources: list[Any] = field(default_factory=list)  # schedule sources given to `observe`

    def __post_init__(self) -> None:
        self.app_name = self.app_name or self.queue or "taskiq"
        if actions.is_list_broker(self.broker):
            self.capabilities = self.capabilities | LIST_CAPABILITIES

    @property
    def queue(self) -> str | None:
        """The broker's default queue, where it has one (taskiq-redis: `queue_name`)."""
        name = getattr(self.broker, "queue_name", None)
        return name if isinstance(name, str) and name else None

    def running_loop(self) -> asyncio.AbstractEventLoop | None:
        """The broker's loop when it is still running (enqueue needs one)."""
        loop = self.loop
        return None if loop is None or loop.is_closed() or not loop.is_running() else loop

    @classmethod
    def create(cls, app: object, options: Mapping[str, Any]) -> TaskiqAdapter | None:
        if not instance_of(app, "taskiq.abc.broker", "AsyncBroker"):
            return None
        return cls(broker=app, app_name=str(options.get("app_name") or ""))

    # Each may wait on the broker's loop (off the host's threads, within a deadline).
    enqueue = enqueue.enqueue
    observed_schedules = schedules.observe
    retry = actions.retry
    purge = actions.purge
    queue_depths = actions.queue_depths

    def registered_tasks(self) -> list[TaskInfo]:
        infos = []
        for name, task in sorted(self.broker.get_all_tasks().items()):
            labels = getattr(task, "labels", {}) or {}
            options = {key: str(labels[key]) for key in SHOWN_LABELS if key in labels}
            if labels.get("schedule"):
                options["schedules"] = str(len(labels["schedule"]))
            queue = labels.get("queue_name") or self.queue
            infos.append(TaskInfo(name=name, queue=queue, options=options))
        return infos

    def install_capture(self, emit: Emit) -> None:
        if self.middleware is not None:
            self.middleware.emit = emit

    def uninstall_capture(self) -> None:
        if self.middleware is not None:
            self.middleware.emit = None
