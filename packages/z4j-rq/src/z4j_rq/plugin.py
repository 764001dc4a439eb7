"""The z4j plugin for RQ: the hook implementations the agent calls (entry point `rq`).

Each hook answers None for another engine's adapter, so several adapters can share a process.
`z4j_registered_tasks` answers from memory (the functions seen and declared, with the queues and
workers read by the last `z4j_observed_schedules`, which reads Redis off the host's threads).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from z4j_core.hookspecs import Emit, EngineAdapter, hookimpl
from z4j_core.wire import Command, CommandResult, ObservedSchedule, TaskInfo
from z4j_rq import capture, enqueue, schedules
from z4j_rq.adapter import ENGINE, RQAdapter, create_adapter


@hookimpl
def z4j_engine_name() -> str:
    return ENGINE


@hookimpl
def z4j_create_adapter(app: object, options: Mapping[str, Any]) -> EngineAdapter | None:
    return create_adapter(app, options)


@hookimpl
def z4j_enqueue(adapter: EngineAdapter, request: Command) -> CommandResult | None:
    if not isinstance(adapter, RQAdapter):
        return None
    return enqueue.enqueue(adapter, request)


@hookimpl
def z4j_registered_tasks(adapter: EngineAdapter) -> list[TaskInfo] | None:
    if not isinstance(adapter, RQAdapter):
        return None
    infos = []
    for name, queues in sorted(adapter.functions.items()):
        for queue in sorted(queues):
            workers = adapter.queues.get(queue)
            options = {"workers": ",".join(workers[:20])} if workers else {}
            infos.append(TaskInfo(name=name, queue=queue, options=options))
    return infos


@hookimpl
def z4j_observed_schedules(adapter: EngineAdapter) -> list[ObservedSchedule] | None:
    if not isinstance(adapter, RQAdapter):
        return None
    return schedules.observe(adapter)


@hookimpl
def z4j_install_capture(adapter: EngineAdapter, emit: Emit) -> None:
    if isinstance(adapter, RQAdapter):
        capture.install(adapter, emit)


@hookimpl
def z4j_uninstall_capture(adapter: EngineAdapter) -> None:
    if isinstance(adapter, RQAdapter):
        capture.uninstall(adapter)
