"""Enqueueing the brain's commands natively into arq, by function name.

Owns turning a `wire.Command` into an arq job, written as `ArqRedis.enqueue_job` writes it (the
same keys, record, score and expiry) in one round trip rather than its three; the fire id as
the job id, so that a second job for one fire is refused as arq refuses it (`duplicate`); and
rejecting what arq would not honour. Runs on the agent's command threads, never on the host's
loop: the write goes from the command thread on a blocking client of our own (or, for a pool
it cannot mirror, through a private loop thread), so a busy host loop never delays a command
and a command never takes time from it. May block on Redis (under the command's deadline).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
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
    adapter: ArqAdapter, name: str, args: Any, kwargs: dict[str, Any], fire_id: str | None = None
) -> Any:
    """`enqueue_job` on our own connection (`kwargs` with arq's options, `_job_id` and
    `_queue_name` given), reported as the capture reports a pool's; arq's `Job`, or None when
    the job id is taken."""
    pool = await own_pool(adapter)
    push = stamp(adapter, name, args, kwargs, fire_id)
    job = await enqueue_job(pool, name, *args, **kwargs)
    if job is not None:
        push()
    return job


def stamp(
    adapter: ArqAdapter, name: str, args: Any, kwargs: dict[str, Any], fire_id: str | None
) -> Callable[[], None]:
    """The capture's event for a job about to be written (`JobCapture.stamp`), to push once arq
    took it; nothing to push without a capture."""
    capture = adapter.capture
    return (lambda: None) if capture is None else capture.stamp(name, tuple(args), kwargs, fire_id)


#: `ArqRedis.enqueue_job`'s check and writes, which it makes in three round trips (WATCH, EXISTS,
#: then MULTI/EXEC), in one: refuse an id whose job or result Redis holds, else store the job
#: (expiring) and queue it. KEYS: job, result, queue; ARGV: expiry ms, job, score, job id.
ENQUEUE_SCRIPT = """
if redis.call('exists', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('psetex', KEYS[1], ARGV[1], ARGV[2])
redis.call('zadd', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


def job_write(
    pool: Any, function: str, args: Any, kwargs: dict[str, Any]
) -> tuple[list[str], list[Any]]:
    """`ENQUEUE_SCRIPT`'s keys and arguments for one job (`kwargs` with arq's options, as
    `enqueue_job` takes them): the same keys, job record (arq's `serialize_job`, in `pool`'s
    serializer), score and expiry as `pool.enqueue_job` writes (a test compares the two)."""
    from arq.constants import job_key_prefix, result_key_prefix
    from arq.jobs import serialize_job
    from arq.utils import timestamp_ms, to_ms

    job_id, queue = kwargs["_job_id"], kwargs["_queue_name"]
    enqueued_at = timestamp_ms()
    score = enqueued_at + (to_ms(kwargs.get("_defer_by")) or 0)
    expiry = to_ms(kwargs.get("_expires")) or score - enqueued_at + pool.expires_extra_ms
    kwargs = {key: value for key, value in kwargs.items() if key not in RESERVED}
    job = serialize_job(function, args, kwargs, None, enqueued_at, serializer=pool.job_serializer)
    keys = [job_key_prefix + job_id, result_key_prefix + job_id, queue]
    return keys, [expiry, job, score, job_id]


async def enqueue_job(pool: Any, function: str, *args: Any, **kwargs: Any) -> Any:
    """`pool.enqueue_job(...)` for the options z4j sends (`_job_id` and `_queue_name` given,
    `_defer_by`, `_expires`), in one round trip (`job_write`); arq's `Job`, or None when the
    id is taken."""
    from arq.jobs import Job

    script = getattr(pool, "z4j_enqueue", None)
    if script is None:
        script = pool.z4j_enqueue = pool.register_script(ENQUEUE_SCRIPT)
    if not await script(*job_write(pool, function, args, kwargs)):
        return None
    job_id, queue = kwargs["_job_id"], kwargs["_queue_name"]
    return Job(job_id, redis=pool, _queue_name=queue, _deserializer=pool.job_deserializer)


def blocking_twin(pool: Any) -> Any | None:
    """A blocking redis-py client on the server and database of our `ArqRedis` (its connection
    settings, the blocking connection class), or None for a pool it cannot mirror (Sentinel, a
    custom connection class or connect function)."""
    import redis
    from redis.asyncio import BlockingConnectionPool, ConnectionPool
    from redis.asyncio import connection as aio

    connections = pool.connection_pool
    settings = dict(connections.connection_kwargs)
    blocking = {
        aio.Connection: redis.Connection,
        aio.SSLConnection: redis.SSLConnection,
        aio.UnixDomainSocketConnection: redis.UnixDomainSocketConnection,
    }.get(connections.connection_class)
    if type(connections) not in (ConnectionPool, BlockingConnectionPool) or blocking is None:
        return None
    if settings.pop("redis_connect_func", None) is not None:
        return None
    settings.pop("retry", None)  # asyncio's kind; the blocking client's default applies
    twin = redis.ConnectionPool(connection_class=blocking, **settings)
    client = redis.Redis(connection_pool=twin)
    try:
        client.ping()
    except TypeError:  # a setting only the asyncio connection takes
        client.close()
        return None
    return client


class Enqueuer:
    """Where this adapter's commands write their jobs: straight from the command thread, on a
    blocking twin of our `ArqRedis`'s connection, with the private loop's pool for the job's
    settings. A hop to the private loop and back cost more than the round trip itself (about
    five times the CPU at 1,000 fires a second); a pool the twin cannot mirror keeps the hop.
    Made at the first command; `close()` when the agent stops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made = False
        self._client: Any = None  # the blocking twin
        self._direct: tuple[Any, Any] | None = None  # (pool, the script on the twin)

    def direct(self, adapter: ArqAdapter) -> tuple[Any, Any] | None:
        """(our `ArqRedis`, the script on its blocking twin), or None: go through the loop.
        Commands that arrive while it is made share the loop's one opening of the pool (a
        Redis that is down fails each of them in its own time), then one twin's ping."""
        with self._lock:
            if self._made:
                return self._direct
        pool = adapter.private_loop.run(own_pool(adapter), ENQUEUE_TIMEOUT)
        with self._lock:
            if not self._made:
                self._client = blocking_twin(pool)  # one round trip (or a refused connection)
                if self._client is not None:
                    self._direct = (pool, self._client.register_script(ENQUEUE_SCRIPT))
                self._made = True
            return self._direct

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._direct, self._made = None, False
        if client is not None:
            client.close()


def write(
    adapter: ArqAdapter, name: str, args: Any, kwargs: dict[str, Any], fire_id: str | None = None
) -> bool:
    """Write one job (`kwargs` with arq's options: `_job_id`, `_queue_name`, `_defer_by`,
    `_expires`), reported as the capture reports a pool's; False when the job id is taken."""
    direct = adapter.enqueuer.direct(adapter)
    if direct is None:
        sending = send(adapter, name, args, kwargs, fire_id)
        return adapter.private_loop.run(sending, ENQUEUE_TIMEOUT) is not None
    pool, script = direct
    push = stamp(adapter, name, args, kwargs, fire_id)
    if not script(*job_write(pool, name, args, kwargs)):
        return False
    push()
    return True


def enqueue(adapter: ArqAdapter, command: Command) -> CommandResult:
    name, options = command.task, command.options
    queue = options.queue or adapter.queue
    if adapter.knows(name, queue) is False:
        names = ", ".join(sorted(adapter.functions)[:10]) or "none"
        reason = f"unknown function {name!r} for the arq worker of {queue!r} (functions: {names})"
        return rejected(command, reason)
    if options.priority:
        return rejected(command, "arq has no job priority (use another queue)")
    clash = sorted(RESERVED & set(command.kwargs))
    if clash:
        return rejected(command, f"arq takes {', '.join(clash)} as its own enqueue options")
    delay, expires = options.delay_seconds or 0, options.expires_seconds or 0
    if expires and delay and expires <= delay:
        return rejected(command, f"expires after {expires}s, before its {delay}s delay ends")
    job_id = command.fire_id or uuid.uuid4().hex
    kwargs = {**command.kwargs, "_job_id": job_id, "_queue_name": queue}
    kwargs.update(_defer_by=delay or None, _expires=expires or None)
    if write(adapter, name, tuple(command.args), kwargs, command.fire_id):
        return answer(command, CommandStatus.ENQUEUED, native_id=job_id)
    reason = "arq already has a job (or a kept result) with this id"
    return answer(command, CommandStatus.DUPLICATE, native_id=job_id, reason=reason)
