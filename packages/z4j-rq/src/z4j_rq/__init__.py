"""z4j for RQ (docs/engines/rq.md).

Workers: `rq worker -w z4j_rq.Worker` (or `z4j_rq.SimpleWorker`, `z4j_rq.SpawnWorker`) runs the
agent in the long-lived worker process, never in a work horse. A process that only enqueues:
`queue = z4j_rq.instrument(Queue("billing", connection=Redis()))`. One adapter per Redis server
and database, shared by every queue and worker on it.
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
    """Attach the process's z4j agent to the RQ queue, worker or Redis connection `app`; return
    `app` unchanged. In an RQ work horse this does nothing (the agent lives in the worker).

    start: start the agent's link now (default), or leave it to `z4j_rq.agent_of(app).start()`.
    tasks: functions (or dotted names) to list before any job of theirs is seen.
    options: agent options (`brain_url`, `token`, any `z4j_core.agent.AgentConfig` field), which
        win over `Z4J_*` variables.
    """
    if connection_of(app) is None:
        raise TypeError(
            f"z4j_rq.instrument needs an rq.Queue or a redis.Redis connection, not {type(app)!r}"
        )
    if not capture.in_work_horse():
        agent, _ = _attach(app, tasks, options)
        if start:
            agent.start()
    return app


def attach_worker(worker: Any, **options: Any) -> tuple[Agent, RQAdapter]:
    """Attach the agent to an RQ worker's connection and start it (called by `work()`); it stays
    disabled in every process the worker forks (a work horse or RQ's scheduler)."""
    agent, adapter = _attach(worker, (), options)
    if worker.queues:
        adapter.default_queue = worker.queues[0].name
    adapter.serializer = worker.serializer
    in_horse = not kit.instance_of(worker, "rq.worker", "SimpleWorker")
    if in_horse and adapter.capabilities != WORKER_CAPABILITIES:
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
    if connection is None or _adapter_in(agent := default_agent(), connection) is None:
        return None
    return agent


def _attach(app: object, tasks: Iterable[Any], options: dict[str, Any]) -> tuple[Agent, RQAdapter]:
    """One adapter per Redis server and database: a second queue or worker on it shares it."""
    agent = default_agent(**options)
    existing = _adapter_in(agent, connection_of(app))
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
    return next((a for a in agent.adapters if isinstance(a, RQAdapter) and a.key == key), None)
