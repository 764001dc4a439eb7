"""The operator's actions on arq: retry, cancel (abort), purge, and queue depth.

Owns retrying a job from arq's own record (`arq:result:<id>`, kept `keep_result` seconds, an
hour by default; for a forced retry of a job still queued or running, `arq:job:<id>`) or from
this host's kept original; `Job.abort()`'s two writes (a deferred job is moved to run now, and
its id goes into `arq:abort`), which only a worker with `allow_abort_jobs=True` acts on, so only
such a worker advertises cancel; the queue's sorted set counted by score (ready: due now, the
running jobs included, which arq keeps in the set until they end; scheduled: due later); and a
purge of the due jobs no worker has started.

Every call runs on the adapter's private loop on the connections kept there (`enqueue.own_pool`),
from the agent's command threads and report loop, never on the worker's loop.
"""

from __future__ import annotations

import pickle
import time
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from z4j_arq.enqueue import RESERVED, inner, own_pool, send
from z4j_core.adapter import ActionOutcome, CancelRequest, RetryRequest, done, failed, unavailable
from z4j_core.wire import QueueDepth

if TYPE_CHECKING:
    from z4j_arq.adapter import ArqAdapter

#: arq.constants, named here so that reading them needs no import of arq.
JOB_KEY, IN_PROGRESS_KEY, RESULT_KEY = "arq:job:", "arq:in-progress:", "arq:result:"
RETRY_KEY, ABORT_SET = "arq:retry:", "arq:abort"
ACTION_TIMEOUT = 30.0
T = TypeVar("T")

#: Removes the due jobs of a queue that no worker has started, with their job and try keys.
PURGE_SCRIPT = """
local removed = 0
for _, id in ipairs(redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1])) do
  if redis.call('exists', ARGV[2] .. id) == 0 then
    redis.call('zrem', KEYS[1], id)
    redis.call('del', ARGV[3] .. id, ARGV[4] .. id)
    removed = removed + 1
  end
end
return removed
"""


def _now_ms() -> int:
    return round(time.time() * 1000)


def _serializers(adapter: ArqAdapter) -> tuple[Any, Any]:
    settings = adapter.settings or {}
    source = adapter.pool if adapter.settings is None else None
    dumps = settings.get("job_serializer") or getattr(source, "job_serializer", None)
    loads = settings.get("job_deserializer") or getattr(source, "job_deserializer", None)
    return inner(dumps) or pickle.dumps, inner(loads) or pickle.loads


def pack(adapter: ArqAdapter, name: str, args: Any, kwargs: Any) -> bytes:
    """A failed job's function and arguments in the app's own job serializer (local store)."""
    dumps, _ = _serializers(adapter)
    return bytes(dumps({"f": name, "a": tuple(args or ()), "k": dict(kwargs or {})}))


def run(adapter: ArqAdapter, coroutine: Coroutine[Any, Any, T]) -> T:
    return adapter.private_loop.run(coroutine, ACTION_TIMEOUT)


async def retry(adapter: ArqAdapter, request: RetryRequest) -> ActionOutcome:
    from arq.jobs import deserialize_job, deserialize_result

    task_id = request.task_id
    _, loads = _serializers(adapter)
    pool = await own_pool(adapter)
    queued, stored = await pool.get(JOB_KEY + task_id), await pool.get(RESULT_KEY + task_id)
    if queued and not request.force:
        return unavailable("arq still has this job queued or running")
    queue = request.queue or adapter.queue
    if stored or queued:  # arq's own record: its result, else the job itself (forced)
        decode = deserialize_result if stored else deserialize_job
        record = decode(stored or queued, deserializer=loads)
        name, args, kwargs = record.function, record.args, record.kwargs
        queue = getattr(record, "queue_name", None) or queue
    elif request.original is not None:
        message = loads(request.original.payload)
        name, args, kwargs = message["f"], message["a"], message["k"]
        queue = request.original.queue or queue
    else:
        return unavailable(
            "no original message: arq's result has expired or was never kept "
            "(keep_result), and this host kept none"
        )
    clash = sorted(RESERVED & set(kwargs))
    if clash:
        return unavailable(f"arq would take the kwargs {', '.join(clash)} as its own options")
    job_id = request.new_task_id or uuid.uuid4().hex
    job = await send(adapter, name, list(args), {**kwargs, "_job_id": job_id, "_queue_name": queue})
    if job is None:
        return failed(f"arq already has a job (or a kept result) with the new id {job_id!r}")
    return done(str(job.job_id))


async def cancel(adapter: ArqAdapter, request: CancelRequest) -> ActionOutcome:
    """What `Job.abort()` writes, without waiting for the result: a job deferred to later is
    moved to run now, so the worker takes it and aborts it before it starts."""
    task_id, queue = request.task_id, request.queue or adapter.queue
    pool = await own_pool(adapter)
    async with pool.pipeline(transaction=True) as tr:
        tr.exists(JOB_KEY + task_id)
        tr.exists(IN_PROGRESS_KEY + task_id)
        tr.zscore(queue, task_id)
        queued, running, score = await tr.execute()
    if not queued:
        return unavailable("arq has no queued or running job with this id (it has ended)")
    if running and not request.terminate:
        return unavailable("the job is running: arq can only stop it (cancel with terminate)")
    now = _now_ms()
    async with pool.pipeline(transaction=True) as tr:
        if score is not None and score > now:
            tr.zadd(queue, {task_id: 1}, xx=True)
        tr.zadd(ABORT_SET, {task_id: now})
        await tr.execute()
    return done(recorded=True)  # the worker reports `cancelled` as it aborts it


async def queue_depths(adapter: ArqAdapter) -> list[QueueDepth]:
    queue, now = adapter.queue, _now_ms()
    async with (await own_pool(adapter)).pipeline(transaction=False) as tr:
        tr.zcount(queue, "-inf", now)
        tr.zcount(queue, f"({now}", "+inf")
        ready, later = await tr.execute()
    return [QueueDepth(name=queue, ready=int(ready), scheduled=int(later))]


async def purge(adapter: ArqAdapter, queue: str) -> ActionOutcome:
    if queue != adapter.queue:
        return unavailable(f"{queue!r} is not this arq app's queue ({adapter.queue})")
    pool = await own_pool(adapter)
    removed = await pool.eval(
        PURGE_SCRIPT, 1, queue, _now_ms(), IN_PROGRESS_KEY, JOB_KEY, RETRY_KEY
    )
    return done(count=int(removed))
