"""The RQ adapter object: what the agent knows of one instrumented Redis connection.

Owns the engine name, version, app name and capabilities, the connection RQ's queues live on,
the function names seen in jobs (RQ has no task registry, so z4j reports what it has seen, plus
the functions an application declares), and a snapshot of the queues and workers read with the
observed schedules. Does no I/O of its own; never talks to Redis on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from z4j_core.wire import Capability

ENGINE = "rq"
DEFAULT_QUEUE = "default"
#: Bound on the function names remembered (a misbehaving app cannot grow memory without end).
MAX_FUNCTIONS = 2048

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
        Capability.NATIVE_DEDUP,
    )
)


def rq_version() -> str:
    try:
        from rq.version import VERSION

        return str(VERSION)
    except Exception:
        return "unknown"


def connection_of(app: object) -> Any | None:
    """The Redis connection behind an RQ queue, worker or a Redis client itself; else None."""
    try:
        from redis import Redis
        from rq import Queue
        from rq.worker import BaseWorker
    except ImportError:
        return None
    if isinstance(app, Redis):
        return app
    if isinstance(app, (Queue, BaseWorker)):
        return app.connection
    return None


def connection_key(connection: Any) -> tuple[Any, ...]:
    """Which Redis server and database a connection talks to (two clients, one key)."""
    kwargs = connection.connection_pool.connection_kwargs
    return (
        kwargs.get("host"),
        kwargs.get("port"),
        kwargs.get("path") or kwargs.get("unix_socket_path"),
        int(kwargs.get("db") or 0),
    )


def dotted_name(func: Any) -> str:
    if isinstance(func, str):
        return func
    return f"{func.__module__}.{func.__qualname__}"


@dataclass(eq=False)
class RQAdapter:
    """One instrumented Redis connection (`z4j_core.hookspecs.EngineAdapter`).

    functions: function name -> the queues it was seen on (insertion-ordered, bounded).
    queues / workers: the last snapshot read from Redis (queue name -> worker names).
    """

    connection: Any
    engine: str = ENGINE
    engine_version: str = field(default_factory=rq_version)
    app_name: str = ""
    capabilities: frozenset[str] = CAPABILITIES
    default_queue: str = DEFAULT_QUEUE
    serializer: Any = None
    functions: dict[str, set[str]] = field(default_factory=dict)
    queues: dict[str, list[str]] = field(default_factory=dict)
    capture: Any = None  # the installed `z4j_rq.capture.JobCapture`, if any

    def __post_init__(self) -> None:
        if not self.app_name:
            self.app_name = "rq"
        self.key = connection_key(self.connection)

    def saw(self, function: str | None, queue: str) -> None:
        """Remember that `function` ran or was enqueued on `queue` (cheap, never raises)."""
        if not function:
            return
        queues = self.functions.get(function)
        if queues is None:
            if len(self.functions) >= MAX_FUNCTIONS:
                return
            self.functions[function] = {queue}
        elif queue not in queues and len(queues) < 64:
            queues.add(queue)

    def declare(self, functions: Iterable[Any], queue: str | None = None) -> None:
        for function in functions:
            self.saw(dotted_name(function), queue or self.default_queue)


def create_adapter(app: object, options: Mapping[str, Any]) -> RQAdapter | None:
    """The adapter for an RQ queue, worker or Redis connection, or None for any other object."""
    connection = connection_of(app)
    if connection is None:
        return None
    default_queue = getattr(app, "name", None) if hasattr(app, "enqueue_call") else None
    adapter = RQAdapter(
        connection=connection,
        app_name=str(options.get("app_name") or ""),
        default_queue=str(default_queue or DEFAULT_QUEUE),
        serializer=getattr(app, "serializer", None),
    )
    adapter.declare(options.get("tasks") or ())
    return adapter
