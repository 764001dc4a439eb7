"""The Celery adapter object: what the agent knows of one instrumented Celery app.

Owns the engine name, version, app name and the capabilities this adapter really supports, and
holds the app with its per-app capture and relay state. Does no I/O and never talks to the broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from z4j_core.wire import Capability

ENGINE = "celery"

# Priority is passed through to the broker (`send_task(priority=...)`) but not advertised: its
# meaning is the broker's (RabbitMQ needs `x-max-priority` queues, Redis orders 0 first), and
# prefetching workers reserve messages before a later higher-priority one arrives.
CAPABILITIES: frozenset[str] = frozenset(
    c.value
    for c in (
        Capability.LIFECYCLE,
        Capability.LIST_TASKS,
        Capability.OBSERVE_SCHEDULES,
        Capability.ENQUEUE,
        Capability.FIRE,
        Capability.TRIGGER_NOW,
        Capability.ETA,
        Capability.EXPIRES,
    )
)


def celery_version() -> str:
    try:
        import celery

        return str(getattr(celery, "__version__", "unknown"))
    except Exception:
        return "unknown"


def is_celery(app: object) -> bool:
    """Whether `app` is a Celery app (checked without importing celery when it is absent)."""
    try:
        from celery import Celery
    except ImportError:
        return False
    return isinstance(app, Celery)


@dataclass(eq=False)
class CeleryAdapter:
    """One instrumented Celery app (`z4j_core.hookspecs.EngineAdapter`).

    capture_results: send each task's (redacted) result with `succeeded`; by default only its
        size and type are sent.
    """

    app: Any
    engine: str = ENGINE
    engine_version: str = field(default_factory=celery_version)
    app_name: str = ""
    capabilities: frozenset[str] = CAPABILITIES
    capture_results: bool = False
    capture: Any = None  # the installed `z4j_celery.capture.SignalCapture`, if any
    worker: Any = None  # the `z4j_celery.worker.WorkerLife` when this process is a worker

    def __post_init__(self) -> None:
        if not self.app_name:
            self.app_name = str(getattr(self.app, "main", "") or "celery")

    @property
    def default_queue(self) -> str:
        return str(self.app.conf.task_default_queue or "celery")


def create_adapter(app: object, options: Mapping[str, Any]) -> CeleryAdapter | None:
    """The adapter for a Celery app, or None for any other object."""
    if not is_celery(app):
        return None
    return CeleryAdapter(
        app=app,
        app_name=str(options.get("app_name") or ""),
        capture_results=bool(options.get("capture_results", False)),
    )
