"""Every hook an engine adapter can implement, in one place.

An adapter package registers a module of `@hookimpl` functions under the entry-point group
`z4j.adapters` (see `z4j_core.plugins`). Hook calls are synchronous: a hook either answers at
once from memory or returns an object on which the slow work lives. The agent never calls a hook
from the host's hot path (`emit` goes straight to the outbox), and every call it makes is
guarded so that an exception in plugin code is logged and counted, never raised into a task.

Each hook that takes an `adapter` must answer None for an adapter of another engine, so that
several adapters can be installed side by side; `adapter.engine` says whose it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import pluggy

PROJECT_NAME = "z4j"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@runtime_checkable
class EngineAdapter(Protocol):
    """What the agent needs to know of an adapter object created by `z4j_create_adapter`.

    engine: the engine's name as the protocol spells it (`huey`, `celery`, ...).
    engine_version: the installed engine's version string.
    app_name: the application's name as sent in the hello (e.g. a Celery app's `main`).
    capabilities: names from `z4j_core.wire.Capability` that this adapter really supports.
    """

    engine: str
    engine_version: str
    app_name: str
    capabilities: frozenset[str]


Emit = Callable[..., None]
"""The agent's `emit(kind, *, task_id, task_name, **fields)`: cheap, never raises, no I/O."""


@hookspec
def z4j_engine_name() -> str:  # type: ignore[empty-body]
    """Name the engine this plugin serves.

    Returns: the engine name (`huey`, `celery`, `rq`, `dramatiq`, `arq`, `taskiq`).
    All results are collected: the list says which engines are installed.
    """


@hookspec(firstresult=True)
def z4j_create_adapter(app: object, options: Mapping[str, Any]) -> EngineAdapter | None:
    """Create the adapter for a native app object.

    app: the engine's own object the user instruments (a Huey instance, a Celery app, an RQ
        queue or connection, a Dramatiq broker, arq worker settings or pool, a taskiq broker).
    options: adapter options from the user (explicit keyword arguments to `instrument`).
    Returns: an `EngineAdapter`, or None when `app` is not this plugin's engine.
    The first non-None result wins.
    """


@hookspec(firstresult=True)
def z4j_enqueue(adapter: EngineAdapter, request: Any) -> Any:
    """Enqueue a task natively into the adapter's engine.

    adapter: an adapter created by `z4j_create_adapter`.
    request: the command to run (`z4j_core.wire` command frame: task name, args, kwargs,
        options, and for fires the fire id, which becomes the engine's job id where it can).
    Returns: a command result (`enqueued` with the native id, `duplicate`, `rejected` with a
        reason, or `failed`), or None when `adapter` is another engine's.
    This is the one hook that may block on the broker: the agent calls it on its bounded
    command pool under the command's deadline, never on the link's event loop or a host thread.
    The first non-None result wins.
    """


@hookspec(firstresult=True)
def z4j_registered_tasks(adapter: EngineAdapter) -> list[Any] | None:
    """List the tasks the engine knows in this process.

    Returns: a list of task descriptions (`z4j_core.wire` task info: name, queue, options),
        or None when `adapter` is another engine's. Must answer from memory.
    The first non-None result wins.
    """


@hookspec(firstresult=True)
def z4j_observed_schedules(adapter: EngineAdapter) -> list[Any] | None:
    """List the engine's own periodic schedules, observed and never rewritten.

    Returns: a list of observed schedules (`z4j_core.wire` observed schedule: source, name,
        task, expression, next run times, read-only), or None when `adapter` is another
        engine's. May read the broker (rq-scheduler, taskiq sources): the agent calls it off
        the host's threads.
    The first non-None result wins.
    """


@hookspec
def z4j_install_capture(adapter: EngineAdapter, emit: Emit) -> None:
    """Connect the engine's signals, middleware or hooks to `emit`.

    adapter: the adapter whose engine to instrument; other plugins ignore it.
    emit: the agent's hot-path callable; the capture code calls it with a lifecycle kind
        (`z4j_core.wire.LifecycleKind`) and the task's fields. The capture code must itself
        catch every exception so that none reaches the task.
    Returns: nothing; every implementation is called.
    """


@hookspec
def z4j_uninstall_capture(adapter: EngineAdapter) -> None:
    """Disconnect what `z4j_install_capture` connected for this adapter.

    Returns: nothing; every implementation is called. Must be safe to call twice.
    """
