"""Enqueueing the brain's commands natively into arq, by function name.

Owns turning a `wire.Command` into `ArqRedis.enqueue_job`, the fire id as `_job_id` so that arq
itself refuses a second job for one fire (`duplicate`), and rejecting what arq would not honour.
Runs on the agent's command threads, never on the host's loop: the enqueue runs on a private
loop thread with connections of its own, kept there, so a busy host loop never delays a command
and a command never takes time from it. May block on Redis (under the command's deadline).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import answer, rejected
from z4j_core.wire import Command, CommandResult, CommandStatus

if TYPE_CHECKING:
    from z4j_arq.adapter import ArqAdapter

#: keywords `enqueue_job` takes for itself; a task kwarg of this name would be swallowed
RESERVED = frozenset(
    {"_job_id", "_queue_name", "_defer_until", "_defer_by", "_expires", "_job_try"}
)
ENQUEUE_TIMEOUT = 30.0


def inner(function: Any) -> Any:
    """The user's own serializer behind our wrapper (z4j's own pools report by themselves)."""
    return getattr(function, "z4j_inner", function)


def clone_pool(source: Any) -> Any:
    """A new `ArqRedis` on its own connections to the server and database of `source`."""
    from arq.connections import ArqRedis
    from redis.asyncio import BlockingConnectionPool, ConnectionPool

    connections = source.connection_pool
    if type(connections) not in (ConnectionPool, BlockingConnectionPool):
        raise TypeError(
            f"z4j cannot open its own connections like {type(connections).__name__} "
            "(instrument a pool on a plain ConnectionPool)"
        )
    return ArqRedis(
        ConnectionPool(
            connection_class=connections.connection_class, **connections.connection_kwargs
        ),
        job_serializer=inner(getattr(source, "job_serializer", None)),
        job_deserializer=inner(getattr(source, "job_deserializer", None)),
        default_queue_name=source.default_queue_name,
        expires_extra_ms=source.expires_extra_ms,
    )


async def open_pool(adapter: ArqAdapter) -> Any:
    """An `ArqRedis` on connections of our own: a worker connects with its own `redis_settings`
    (Sentinel included) and serializer; a producer clones its pool's connection settings (its
    pool belongs to the host's loop)."""
    settings = adapter.settings or {}
    source = adapter.pool if not adapter.is_worker else settings.get("redis_pool")
    if source is not None:
        return clone_pool(source)
    from arq.connections import RedisSettings, create_pool

    return await create_pool(
        settings.get("redis_settings") or RedisSettings(),
        job_serializer=settings.get("job_serializer"),
        job_deserializer=settings.get("job_deserializer"),
        default_queue_name=adapter.queue,
    )


async def own_pool(adapter: ArqAdapter) -> Any:
    """Our `ArqRedis`, opened on the private loop at first use and kept while it lives (until
    the agent stops): at 1,000 fires a second, a connection opened and closed per fire cost
    more than the fire."""
    return await adapter.private_loop.client(lambda: open_pool(adapter), close_pool)


async def close_pool(pool: Any) -> None:
    await pool.aclose(close_connection_pool=True)


async def send(
    adapter: ArqAdapter,
    name: str,
    args: Any,
    kwargs: Any,
    *,
    fire_id: str | None = None,
    **options: Any,
) -> Any:
    """`enqueue_job` on our own connection, with arq's `options` (`_job_id` and `_queue_name`
    given), reported as the capture reports a pool's; arq's `Job`, or None when arq refused the
    job id."""
    pool = await own_pool(adapter)
    if adapter.capture is None:
        return await pool.enqueue_job(name, *args, **options, **kwargs)
    return await adapter.capture.enqueue(
        pool.enqueue_job, name, tuple(args), {**kwargs, **options}, fire_id=fire_id
    )


def enqueue(adapter: ArqAdapter, command: Command) -> CommandResult:
    name, options = command.task, command.options
    queue = options.queue or adapter.queue
    if adapter.knows(name, queue) is False:
        names = ", ".join(sorted(adapter.functions)[:10]) or "none"
        return rejected(
            command,
            f"unknown function {name!r} for the arq worker of {queue!r} (functions: {names})",
        )
    if options.priority:
        return rejected(command, "arq has no job priority (use another queue)")
    clash = sorted(RESERVED & set(command.kwargs))
    if clash:
        return rejected(command, f"arq takes {', '.join(clash)} as its own enqueue options")
    delay, expires = options.delay_seconds or 0, options.expires_seconds or 0
    if expires and delay and expires <= delay:
        return rejected(command, f"expires after {expires}s, before its {delay}s delay ends")
    job_id = command.fire_id or uuid.uuid4().hex
    sending = send(
        adapter,
        name,
        command.args,
        dict(command.kwargs),
        fire_id=command.fire_id,
        _job_id=job_id,
        _queue_name=queue,
        _defer_by=delay or None,
        _expires=expires or None,
    )
    job = adapter.private_loop.run(sending, ENQUEUE_TIMEOUT)
    if job is None:
        return answer(
            command,
            CommandStatus.DUPLICATE,
            native_id=job_id,
            reason="arq already has a job (or a kept result) with this id",
        )
    return answer(command, CommandStatus.ENQUEUED, native_id=job.job_id)
