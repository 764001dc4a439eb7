"""The z4j plugin for Celery: the hook implementations the agent calls (entry point `celery`).

Each hook answers None for another engine's adapter, so several adapters can share a process.
Hooks answer from memory except `z4j_enqueue` (publishes to the broker) and
`z4j_observed_schedules` (may read a beat file, a database or Redis), which the agent runs off
the host's threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from z4j_celery import capture, enqueue, schedules
from z4j_celery.adapter import ENGINE, CeleryAdapter, create_adapter
from z4j_core.hookspecs import Emit, EngineAdapter, hookimpl
from z4j_core.wire import Command, CommandResult, ObservedSchedule, TaskInfo

_OPTIONS = ("max_retries", "default_retry_delay", "rate_limit", "time_limit", "soft_time_limit",
            "acks_late", "ignore_result", "priority")  # fmt: skip


@hookimpl
def z4j_engine_name() -> str:
    return ENGINE


@hookimpl
def z4j_create_adapter(app: object, options: Mapping[str, Any]) -> EngineAdapter | None:
    return create_adapter(app, options)


@hookimpl
def z4j_enqueue(adapter: EngineAdapter, request: Command) -> CommandResult | None:
    if not isinstance(adapter, CeleryAdapter):
        return None
    return enqueue.enqueue(adapter, request)


@hookimpl
def z4j_registered_tasks(adapter: EngineAdapter) -> list[TaskInfo] | None:
    if not isinstance(adapter, CeleryAdapter):
        return None
    app = adapter.app
    routes = app.amqp.router
    infos = []
    for name in enqueue.registered_names(app):
        task = app.tasks[name]
        options: dict[str, str] = {}
        for option in _OPTIONS:
            value = getattr(task, option, None)
            if value not in (None, False, ""):
                options[option] = str(value)
        queue = getattr(task, "queue", None)
        if not queue:
            try:
                route = routes.route({}, name)
                queue = getattr(route.get("queue"), "name", None) or route.get("queue")
            except Exception:
                queue = None
        infos.append(
            TaskInfo(name=name, queue=str(queue or adapter.default_queue), options=options)
        )
    return infos


@hookimpl
def z4j_observed_schedules(adapter: EngineAdapter) -> list[ObservedSchedule] | None:
    if not isinstance(adapter, CeleryAdapter):
        return None
    return schedules.observe(adapter.app)


@hookimpl
def z4j_install_capture(adapter: EngineAdapter, emit: Emit) -> None:
    if isinstance(adapter, CeleryAdapter):
        capture.install(adapter, emit)


@hookimpl
def z4j_uninstall_capture(adapter: EngineAdapter) -> None:
    if isinstance(adapter, CeleryAdapter):
        capture.uninstall(adapter)
