"""z4j for RQ.

Workers: `rq worker -w z4j_rq.Worker` (or `z4j_rq.SimpleWorker`, `z4j_rq.SpawnWorker`) runs the
agent in the long-lived worker process, never in a work horse. Processes that only enqueue:

    from redis import Redis
    from rq import Queue
    import z4j_rq

    queue = z4j_rq.instrument(Queue("billing", connection=Redis()))

`instrument` takes a Queue, a Redis connection or a worker and returns it unchanged. The brain's
URL and the agent's token come from keyword arguments (`brain_url=`, `token=`, any
`z4j_core.agent.AgentConfig` field) or from `Z4J_*` variables. RQ has no task registry:
`tasks=[func, "module.func", ...]` declares functions z4j should list before it sees them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from z4j_core import adapter as kit
from z4j_core.agent import Agent, default_agent
from z4j_rq import capture
from z4j_rq.adapter import WORKER_CAPABILITIES, RQAdapter, connection_of
from z4j_rq.capture import connection_key
from z4j_rq.worker import SimpleWorker, SpawnWorker, Worker

__all__ = ["RQAdapter", "SimpleWorker", "SpawnWorker", "Worker", "agent_of", "instrument"]

A = TypeVar("A")


def instrument(app: A, *, start: bool = True, tasks: Iterable[Any] = (), **options: Any) -> A:
    """Attach the process's z4j agent to the RQ queue or connection `app`; return `app`.

    start: start the agent's link now (default), or leave it to `z4j_rq.agent_of(app).start()`.
    tasks: functions (or dotted names) to list in the inventory before any job of theirs is seen.
    options: agent options (`brain_url`, `token`, `app_name`, `labels`, ...), which win over
        `Z4J_*` variables.
    In an RQ work horse this does nothing: the agent lives in the worker process.
    """
    connection = connection_of(app)
    if connection is None:
        raise TypeError(
            f"z4j_rq.instrument needs an rq.Queue or a redis.Redis connection, not {type(app)!r}"
        )
    if capture.in_work_horse():
        return app
    agent, _ = _attach(app, connection, tasks, options)
    if start:
        agent.start()
    return app


def attach_worker(worker: Any, **options: Any) -> tuple[Agent, RQAdapter]:
    """Attach the agent to an RQ worker's connection and start it (called by `work()`).

    Every process an RQ worker forks is a work horse or RQ's scheduler: the agent stays
    disabled in them.
    """
    queues = getattr(worker, "queues", None) or []
    agent, adapter = _attach(worker, worker.connection, (), options)
    if queues:
        adapter.default_queue = queues[0].name
    adapter.serializer = getattr(worker, "serializer", None)
    from rq import SimpleWorker

    if not isinstance(worker, SimpleWorker) and adapter.capabilities != WORKER_CAPABILITIES:
        # Its jobs run in a horse it can kill. An agent started by `instrument` at import may
        # have said hello already: say it again with terminate.
        adapter.capabilities = WORKER_CAPABILITIES
        agent.reannounce()
    agent.after_fork = "disable"
    agent.start()
    return agent, adapter


def agent_of(app: Any) -> Agent | None:
    """The agent `instrument` attached to `app`'s connection, if any."""
    connection = connection_of(app)
    if connection is None:
        return None
    agent = default_agent()
    return agent if _adapter_in(agent, connection) is not None else None


def _attach(
    app: object, connection: Any, tasks: Iterable[Any], options: dict[str, Any]
) -> tuple[Agent, RQAdapter]:
    """One adapter per Redis server and database: a second queue or worker on it shares it."""
    agent = default_agent(**options)
    existing = _adapter_in(agent, connection)
    if existing is not None:
        existing.declare(tasks)
        return agent, existing
    app_name = options.get("app_name") or agent.config.app_name or ""
    adapter = RQAdapter.create(app, {"app_name": app_name, "tasks": tasks})
    if adapter is None:
        raise TypeError(f"not an RQ object: {type(app)!r}")
    return kit.instrument(adapter, **options), adapter


def _adapter_in(agent: Agent, connection: Any) -> RQAdapter | None:
    key = connection_key(connection)
    for adapter in agent.adapters:
        if isinstance(adapter, RQAdapter) and adapter.key == key:
            return adapter
    return None
