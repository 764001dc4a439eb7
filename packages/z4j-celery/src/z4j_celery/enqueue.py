"""Enqueueing a z4j command natively into Celery: `app.send_task` by name.

Owns turning a `wire.Command` into `send_task(...)`; a fire's id becomes the Celery task id.
Celery would run a repeated task id twice: the agent's refusal of a fire id it already enqueued
is the whole of the duplicate guarantee on Celery.

A task name this process does not know is rejected when the worker side is known to lack it:
in a worker process (whose registry is what its pool runs), or in a publisher when the workers
that answer a short `inspect registered` all lack it. When no worker answers, the task is sent
by name, as `send_task` would. Runs on the agent's command threads; may block on the broker.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import answer, enqueueing, rejected, unknown_task
from z4j_core.wire import Command, CommandKind, CommandResult, CommandStatus

if TYPE_CHECKING:
    from z4j_celery.adapter import CeleryAdapter

#: How long a publisher waits for workers to say which tasks they have.
INSPECT_TIMEOUT = 1.0
#: How long a workers' answer is trusted before they are asked again.
INSPECT_TTL = 30.0


def registered_names(app: Any) -> list[str]:
    """The app's own task names (Celery's built-in `celery.*` tasks left out)."""
    return sorted(name for name in app.tasks if not name.startswith("celery."))


#: id(app) -> when its workers were asked, and every task name they answered with (None: none
#: answered); one lock, so that concurrent commands ask once.
_answers: dict[int, tuple[float, set[str] | None]] = {}
_asking = threading.Lock()


def workers_tasks(app: Any) -> set[str] | None:
    """What the workers of `app` say they have, asked at most every `INSPECT_TTL` seconds."""
    with _asking:
        asked, names = _answers.get(id(app), (-INSPECT_TTL, None))
        if time.monotonic() - asked >= INSPECT_TTL:
            answers = app.control.inspect(timeout=INSPECT_TIMEOUT).registered() or {}
            found = {str(t).split(" ", 1)[0] for tasks in answers.values() for t in tasks}
            names = found if answers else None
            _answers[id(app)] = (time.monotonic(), names)
        return names


def unknown_task_reason(adapter: CeleryAdapter, name: str) -> str | None:
    """Why `name` cannot run, or None when it can (or nobody can tell)."""
    app = adapter.app
    if name in app.tasks:
        return None
    if adapter.worker is not None:
        return unknown_task(name, f"Celery worker {adapter.app_name!r}", registered_names(app))
    try:
        names = workers_tasks(app)
    except Exception:
        return None  # no answer is no knowledge: send it by name
    if names is None or name in names:
        return None
    _answers.pop(id(app), None)  # a worker with the task may just have started: ask again next time
    return (
        f"unknown task {name!r}: no worker of Celery app {adapter.app_name!r} that answered has it"
    )


def enqueue(adapter: CeleryAdapter, command: Command) -> CommandResult:
    reason = unknown_task_reason(adapter, command.task)
    if reason is not None:
        return rejected(command, reason)
    options = command.options
    headers = dict(options.headers)
    if command.kind is not CommandKind.ENQUEUE:
        headers.update(z4j_fire_id=str(command.fire_id), z4j_schedule_id=str(command.schedule_id))
        if command.slot:
            headers["z4j_slot"] = command.slot
    send: dict[str, Any] = {"countdown": options.delay_seconds, "expires": options.expires_seconds}
    send.update(queue=options.queue, headers=headers)
    send = {key: value for key, value in send.items() if value}
    if options.priority is not None:
        send["priority"] = options.priority
    fire_id = command.fire_id or None
    try:
        with enqueueing(fire_id):  # the capture's `enqueued` event carries it
            result = adapter.app.send_task(
                command.task, list(command.args), dict(command.kwargs), task_id=fire_id, **send
            )
    except Exception as exc:
        reason = f"Celery could not publish {command.task!r}: {type(exc).__name__}: {exc}"
        return answer(command, CommandStatus.FAILED, reason=reason)
    return answer(command, CommandStatus.ENQUEUED, native_id=str(result.id))
