"""Enqueueing the brain's commands natively into RQ, by dotted function path.

Owns turning a `wire.Command` into an RQ job: a delay is `enqueue_at`, an expiry RQ's `ttl` (a
job not started in time is discarded), `rq.*` headers RQ's options and other headers its meta. A
fire's id is the job id with `unique=True`, so RQ itself refuses a second job for the same fire
while the first exists. Answers `rejected` (never enqueues) what RQ cannot run as asked. Runs on
the agent's command threads, never on a host thread; may block on Redis.
"""

from __future__ import annotations

import datetime
import importlib
import re
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import answer, enqueueing, rejected
from z4j_core.wire import Command, CommandResult, CommandStatus

if TYPE_CHECKING:
    from z4j_rq.adapter import RQAdapter

#: RQ accepts only these characters in a job id.
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
INT_HEADERS = {
    "rq.timeout": "job_timeout",
    "rq.result_ttl": "result_ttl",
    "rq.failure_ttl": "failure_ttl",
}


def resolve(name: str) -> str | None:
    """Why `name` is not a function RQ can run (None when it is): the worker imports it too."""
    module_name, _, attribute = name.rpartition(".")
    if not module_name or not attribute:
        return "RQ runs functions by dotted path (module.function)"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return f"cannot import {module_name!r}: {exc}"
    target = getattr(module, attribute, None)
    if target is None:
        return f"{module_name!r} has no {attribute!r}"
    return None if callable(target) else f"{name!r} is not callable"


def enqueue(adapter: RQAdapter, command: Command) -> CommandResult:
    from rq.exceptions import DuplicateJobError

    name = command.task
    problem = None if name in adapter.functions else resolve(name)
    if problem is not None:
        return rejected(command, f"unknown task {name!r}: {problem}")
    options = command.options
    if options.priority:
        return rejected(command, "RQ has no job priority (use a separate queue)")
    job_id = command.fire_id or None
    if job_id is not None and not JOB_ID.match(job_id):
        return rejected(command, f"fire id {job_id!r} is not a valid RQ job id ([A-Za-z0-9_-])")
    rq_options: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for header, value in options.headers.items():
        option = INT_HEADERS.get(header)
        if option is None:
            meta[header] = value
            continue
        try:
            rq_options[option] = int(value)
        except ValueError:
            return rejected(command, f"header {header}={value!r} must be a whole number")
    for field in ("fire_id", "schedule_id", "slot"):
        if getattr(command, field):
            meta[f"z4j_{field}"] = getattr(command, field)
    if options.expires_seconds:
        rq_options["ttl"] = max(int(options.expires_seconds), 1)
    queue = adapter.rq_queue(options.queue or adapter.default_queue)
    call = {
        "args": tuple(command.args),  # passed by keyword, so never mistaken for RQ's options
        "kwargs": dict(command.kwargs),
        "job_id": job_id,
        "meta": meta or None,
        "unique": job_id is not None,
        **rq_options,
    }
    call = {key: value for key, value in call.items() if value is not None}
    try:
        with enqueueing(command.fire_id):
            if options.delay_seconds:
                job = queue.enqueue_at(run_at(options.delay_seconds), name, **call)
            else:
                job = queue.enqueue(name, **call)
    except DuplicateJobError:
        reason = "RQ already has a job with this id"
        return answer(command, CommandStatus.DUPLICATE, native_id=job_id, reason=reason)
    return answer(command, CommandStatus.ENQUEUED, native_id=job.id)


def run_at(delay_seconds: float, now: datetime.datetime | None = None) -> datetime.datetime:
    """When a job delayed by `delay_seconds` may run, rounded up to a whole second: RQ's
    scheduled registry truncates to whole seconds, so else a job could run up to a second early."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    at = now + datetime.timedelta(seconds=delay_seconds)
    if at.microsecond:
        at = at.replace(microsecond=0) + datetime.timedelta(seconds=1)
    return at
