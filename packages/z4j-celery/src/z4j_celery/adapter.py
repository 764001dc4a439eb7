"""The Celery adapter: what the agent knows of one instrumented Celery app, and what it asks.

Owns the capabilities this adapter really supports and the answers from memory (the registered
tasks with their queues and options); the rest lives in its own modules. Does no I/O and never
talks to the broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from z4j_celery import actions, capture, enqueue, schedules
from z4j_core.adapter import Adapter, Emit, capabilities, instance_of
from z4j_core.wire import Capability, Command, CommandResult, ObservedSchedule, TaskInfo

#: Task options reported in the inventory.
REPORTED_OPTIONS = ("max_retries", "default_retry_delay", "rate_limit", "time_limit",
                    "soft_time_limit", "acks_late", "ignore_result", "priority")  # fmt: skip

# Priority is passed through to the broker (`send_task(priority=...)`) but not advertised: its
# meaning is the broker's (RabbitMQ needs `x-max-priority` queues, Redis orders 0 first), and
# prefetching workers reserve messages before a later higher-priority one arrives.
# `terminate` is added by a prefork worker (the only pool that can stop a running task).
CAPABILITIES = capabilities(
    Capability.ETA,
    Capability.EXPIRES,
    Capability.RETRY,
    Capability.CANCEL,
    Capability.PURGE,
    Capability.QUEUE_DEPTH,
)


@dataclass(eq=False)
class CeleryAdapter(Adapter):
    """One instrumented Celery app. capture_results: send each task's (redacted) result with
    `succeeded`; by default only its size and type are sent."""

    engine = "celery"

    app: Any
    app_name: str = ""
    capabilities: frozenset[str] = CAPABILITIES
    capture_results: bool = False
    capture: Any = None  # the installed `z4j_celery.capture.SignalCapture`, if any
    worker: Any = None  # the `z4j_celery.worker.WorkerLife` when this process is a worker

    def __post_init__(self) -> None:
        if not self.app_name:
            self.app_name = str(getattr(self.app, "main", "") or "celery")

    @classmethod
    def create(cls, app: object, options: Mapping[str, Any]) -> CeleryAdapter | None:
        if not instance_of(app, "celery", "Celery"):
            return None
        return cls(
            app=app,
            app_name=str(options.get("app_name") or ""),
            capture_results=bool(options.get("capture_results", False)),
        )

    def enqueue(self, command: Command) -> CommandResult:
        return enqueue.enqueue(self, command)

    def registered_tasks(self) -> list[TaskInfo]:
        infos = []
        for name in enqueue.registered_names(self.app):
            task = self.app.tasks[name]
            values = ((k, getattr(task, k, None)) for k in REPORTED_OPTIONS)
            options = {k: str(v) for k, v in values if v not in (None, False, "")}
            queue = getattr(task, "queue", None) or self._routed_queue(name)
            queue = queue or self.app.conf.task_default_queue or "celery"
            infos.append(TaskInfo(name=name, queue=str(queue), options=options))
        return infos

    def _routed_queue(self, name: str) -> Any:
        try:
            route = self.app.amqp.router.route({}, name)
            return getattr(route.get("queue"), "name", None) or route.get("queue")
        except Exception:
            return None

    def observed_schedules(self) -> list[ObservedSchedule]:  # a beat file, a database, Redis
        return schedules.observe(self.app)

    def install_capture(self, emit: Emit) -> None:
        capture.install(self, emit)

    retry = actions.retry
    cancel = actions.cancel
    purge = actions.purge
    queue_depths = actions.queue_depths
