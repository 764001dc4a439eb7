"""The RQ adapter: what the agent knows of one instrumented Redis connection, and what it asks.

Owns the connection, the function names seen in jobs or declared (RQ has no task registry), and
the snapshot of queues and workers read with the observed schedules; enqueue, capture, observed
schedules and actions live in their own modules. Does no I/O of its own; never talks to Redis
on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from z4j_core.adapter import Adapter, Emit, capabilities, dotted_name, instance_of
from z4j_core.wire import Capability, TaskInfo
from z4j_rq import actions, capture, enqueue, schedules
from z4j_rq.capture import connection_key

DEFAULT_QUEUE = "default"
#: Bound on the function names remembered (a misbehaving app cannot grow memory without end).
MAX_FUNCTIONS = 2048

C = Capability
CAPABILITIES = capabilities(C.ETA, C.NATIVE_DEDUP, C.RETRY, C.CANCEL, C.PURGE, C.QUEUE_DEPTH)
#: What a worker that runs each job in a work horse adds: it can stop a running job (RQ's
#: stop-job command kills the horse). A SimpleWorker, and a process that only enqueues, cannot
#: say whether the job's worker can: they do not advertise it.
WORKER_CAPABILITIES = CAPABILITIES | {C.TERMINATE.value}


def connection_of(app: object) -> Any | None:
    """The Redis connection behind an RQ queue, worker or a Redis client itself; else None."""
    if instance_of(app, "redis.client", "Redis"):
        return app
    if instance_of(app, "rq.queue", "Queue") or instance_of(app, "rq.worker", "BaseWorker"):
        return app.connection  # type: ignore[attr-defined]
    return None


@dataclass(eq=False)
class RQAdapter(Adapter):
    """One instrumented Redis connection. functions: function name -> the queues it was seen on
    (bounded). queues: the last snapshot read from Redis (queue name -> worker names)."""

    engine = "rq"

    connection: Any
    app_name: str = ""
    capabilities: frozenset[str] = CAPABILITIES
    default_queue: str = DEFAULT_QUEUE
    serializer: Any = None
    functions: dict[str, set[str]] = field(default_factory=dict)
    queues: dict[str, list[str]] = field(default_factory=dict)
    capture: Any = None  # the installed `z4j_rq.capture.JobCapture`, if any

    def __post_init__(self) -> None:
        self.app_name = self.app_name or "rq"
        self.key = connection_key(self.connection)

    def saw(self, function: str | None, queue: str) -> None:
        """Remember that `function` ran or was enqueued on `queue` (cheap, never raises)."""
        if not function:
            return
        queues = self.functions.get(function)
        if queues is None:
            if len(self.functions) < MAX_FUNCTIONS:
                self.functions[function] = {queue}
        elif queue not in queues and len(queues) < 64:
            queues.add(queue)

    def declare(self, functions: Iterable[Any]) -> None:
        for function in functions:
            self.saw(dotted_name(function), self.default_queue)

    def rq_queue(self, name: str) -> Any:
        """RQ's queue `name` on this connection, with this adapter's serializer."""
        from rq import Queue

        return Queue(name, connection=self.connection, serializer=self.serializer)

    @classmethod
    def create(cls, app: object, options: Mapping[str, Any]) -> RQAdapter | None:
        """The adapter for an RQ queue, worker or Redis connection, declaring `options["tasks"]`;
        None for any other object."""
        connection = connection_of(app)
        if connection is None:
            return None
        default_queue = getattr(app, "name", None) if hasattr(app, "enqueue_call") else None
        adapter = cls(
            connection=connection,
            app_name=str(options.get("app_name") or ""),
            default_queue=str(default_queue or DEFAULT_QUEUE),
            serializer=getattr(app, "serializer", None),
        )
        adapter.declare(options.get("tasks") or ())
        return adapter

    def registered_tasks(self) -> list[TaskInfo]:
        """The functions seen and declared, with the queues and workers read by the last
        `observed_schedules` (which reads Redis off the host's threads)."""
        infos = []
        for name, queues in sorted(self.functions.items()):
            for queue in sorted(queues):
                workers = self.queues.get(queue)
                options = {"workers": ",".join(workers[:20])} if workers else {}
                infos.append(TaskInfo(name=name, queue=queue, options=options))
        return infos

    def install_capture(self, emit: Emit) -> None:
        capture.install(self, emit)

    enqueue = enqueue.enqueue
    observed_schedules = schedules.observe
    retry = actions.retry
    cancel = actions.cancel
    purge = actions.purge
    queue_depths = actions.queue_depths
