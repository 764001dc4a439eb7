"""The arq adapter: what the agent knows of one instrumented arq worker or pool, and what it asks.

Owns a worker's settings (functions, cron jobs, queue, time zone) or the `ArqRedis` pool of a
process that only enqueues, the running `arq.worker.Worker` once `on_startup` found it, and the
answers from memory; enqueue, capture, actions and schedules live in their own modules. Does no
I/O and never talks to Redis.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from z4j_arq import actions, capture, enqueue, schedules
from z4j_core.adapter import (
    ActionOutcome,
    Adapter,
    CancelRequest,
    Emit,
    PrivateLoop,
    RetryRequest,
    capabilities,
    dotted_name,
    instance_of,
)
from z4j_core.wire import Capability, ObservedSchedule, QueueDepth, TaskInfo

DEFAULT_QUEUE = "arq:queue"  # arq.constants.default_queue_name
TASK_OPTIONS = ("timeout_s", "max_tries", "keep_result_s")  # of a Function or CronJob

C = Capability
CAPABILITIES = capabilities(C.ETA, C.EXPIRES, C.NATIVE_DEDUP, C.RETRY, C.PURGE, C.QUEUE_DEPTH)
#: Added for a worker whose settings have `allow_abort_jobs=True`: no other worker acts on
#: `Job.abort()`, and arq's abort stops a running job too.
ABORT_CAPABILITIES = frozenset({C.CANCEL.value, C.TERMINATE.value})


def is_pool(app: object) -> bool:
    """Whether `app` is an `arq.connections.ArqRedis` (checked without importing arq if absent)."""
    return instance_of(app, "arq.connections", "ArqRedis")


def settings_dict(app: object) -> dict[str, Any] | None:
    """The mapping arq's `create_worker` reads (a dict itself, or a class's own `__dict__`: arq
    never reads inherited attributes), when it has `functions` or `cron_jobs`; else None."""
    if not isinstance(app, (Mapping, type)):
        return None
    values = dict(app) if isinstance(app, Mapping) else dict(vars(app))
    return values if values.get("functions") or values.get("cron_jobs") else None


def function_names(functions: Iterable[Any]) -> dict[str, Any]:
    """arq's name for each function (`func()` does the naming: its `name=`, else `__qualname__`)."""
    from arq.worker import func

    return {wrapped.name: wrapped for wrapped in map(func, functions)}


@dataclass(eq=False)
class ArqAdapter(Adapter):
    """One instrumented arq worker (settings) or pool.

    functions: arq's name -> its `arq.worker.Function` or `CronJob` (none for a producer that
        declared nothing: then any name is sent). worker: the running `arq.worker.Worker`, once
        `on_startup` found it. pool: the producer's `ArqRedis`, or the worker's own once it
        started. private_loop: where actions run, and the commands `enqueuer` cannot write
        directly (its thread starts on first use).
    """

    engine = "arq"
    capabilities = CAPABILITIES

    settings: dict[str, Any] | None = None
    pool: Any = None
    app_name: str = ""
    functions: dict[str, Any] = field(default_factory=dict)
    cron_jobs: list[Any] = field(default_factory=list)
    worker: Any = None
    private_loop: PrivateLoop = field(default_factory=lambda: PrivateLoop("z4j-arq-enqueue"))
    enqueuer: enqueue.Enqueuer = field(default_factory=enqueue.Enqueuer)

    def __post_init__(self) -> None:
        settings = self.settings or {}
        if settings:
            self.functions.update(function_names(settings.get("functions") or ()))
            self.cron_jobs = list(settings.get("cron_jobs") or ())
            self.functions.update((cron_job.name, cron_job) for cron_job in self.cron_jobs)
        self.app_name = self.app_name or "arq"
        if settings.get("allow_abort_jobs"):
            self.capabilities = self.capabilities | ABORT_CAPABILITIES

    @property
    def is_worker(self) -> bool:
        return self.settings is not None

    @property
    def queue(self) -> str:
        if self.worker is not None:
            return str(self.worker.queue_name)
        name = (self.settings or {}).get("queue_name")
        return str(name or getattr(self.pool, "default_queue_name", DEFAULT_QUEUE))

    @property
    def timezone(self) -> datetime.tzinfo:
        """The zone arq evaluates cron jobs in: the settings' `timezone`, else the system's
        local offset at start (arq takes `datetime.now().astimezone().tzinfo`)."""
        zone = getattr(self.worker, "timezone", None) or (self.settings or {}).get("timezone")
        return zone or datetime.datetime.now().astimezone().tzinfo or datetime.timezone.utc

    def knows(self, name: str, queue: str) -> bool | None:
        """Whether a worker reading `queue` here has `name`: None when this process cannot know
        (a producer, or another queue, which another worker may serve)."""
        return name in self.functions if self.is_worker and queue == self.queue else None

    @classmethod
    def create(cls, app: object, options: Mapping[str, Any]) -> ArqAdapter | None:
        """The adapter for arq worker settings or an `ArqRedis` pool (`options["functions"]`: what
        a pool enqueues), or None for anything else."""
        app_name = str(options.get("app_name") or "")
        if is_pool(app):
            functions = function_names(options.get("functions") or ())
            return cls(pool=app, app_name=app_name, functions=functions)
        settings = settings_dict(app)
        return None if settings is None else cls(settings=settings, app_name=app_name)

    def registered_tasks(self) -> list[TaskInfo]:
        infos = []
        for name, function in sorted(self.functions.items()):
            values = {o.removesuffix("_s"): getattr(function, o, None) for o in TASK_OPTIONS}
            options = {option: str(value) for option, value in values.items() if value is not None}
            options["function"] = dotted_name(function)
            if hasattr(function, "next_run"):
                options["cron"] = "true"
            infos.append(TaskInfo(name=name, queue=self.queue, options=options))
        return infos

    def observed_schedules(self) -> list[ObservedSchedule]:
        return schedules.observe(self.cron_jobs, self.timezone)

    def install_capture(self, emit: Emit) -> None:
        capture.install(self, emit)

    def uninstall_capture(self) -> None:
        """Also closes the connections kept for commands and actions (the agent stops)."""
        super().uninstall_capture()
        self.enqueuer.close()
        self.private_loop.close()

    enqueue = enqueue.enqueue

    def retry(self, request: RetryRequest) -> ActionOutcome:
        return actions.run(self, actions.retry(self, request))

    def cancel(self, request: CancelRequest) -> ActionOutcome:
        return actions.run(self, actions.cancel(self, request))

    def purge(self, queue: str) -> ActionOutcome:
        return actions.run(self, actions.purge(self, queue))

    def queue_depths(self) -> list[QueueDepth]:
        return actions.run(self, actions.queue_depths(self))
