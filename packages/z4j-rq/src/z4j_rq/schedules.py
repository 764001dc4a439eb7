"""Observing RQ's schedules from Redis, read-only: `rq cron`, rq-scheduler, scheduled jobs.

Owns reading three native sources back into `ObservedSchedule`s with their next run times:
- `rq cron` (source `rq_cron`): each live cron scheduler's registered cron and interval jobs.
  Cron expressions match the scheduler host's local time (as RQ evaluates them, with croniter);
  an interval job runs `interval` seconds after its latest enqueue.
- rq-scheduler (source `rq_scheduler`): the jobs in `rq:scheduler:scheduled_jobs` with their
  `cron_string`, `interval` and `repeat` meta; the first next run is the score rq-scheduler
  stored (naive UTC, as a Unix time), later ones follow its cron string or interval.
- RQ's scheduled registries (source `rq_scheduled`): jobs waiting for `enqueue_at` /
  `enqueue_in` or a retry interval, one run each.
Also refreshes the adapter's snapshot of queues and the workers listening on them. Reads
Redis in a few bounded round trips; never writes (rq's own cleanup of stale registry entries
is not called). Runs on the agent's threads, never the host's.
"""

from __future__ import annotations

import datetime
import json
import math
import time
from typing import Any

from z4j_core.wire import ObservedSchedule
from z4j_rq.adapter import RQAdapter

NEXT_RUNS = 5
#: Bounds on what one observation reads (a huge backlog must not make inventory slow).
MAX_SCHEDULED_PER_QUEUE = 50
MAX_RQ_SCHEDULER_JOBS = 200

RQ_CRON = "rq_cron"
RQ_SCHEDULER = "rq_scheduler"
RQ_SCHEDULED = "rq_scheduled"
RQ_SCHEDULER_KEY = "rq:scheduler:scheduled_jobs"
CRON_SCHEDULERS_KEY = "rq:cron_schedulers"
CRON_JOBS_KEY = "rq:cron_jobs"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def next_cron_runs(expression: str, after: float, count: int = NEXT_RUNS) -> list[float]:
    """The next runs of `expression` matched in this host's local time, as epoch seconds.

    Like RQ: a local time repeated by a DST fall-back counts once (its first occurrence).
    """
    from croniter import croniter

    local = datetime.datetime.fromtimestamp(after).replace(microsecond=0)
    iterator = croniter(expression, local)
    runs: list[float] = []
    while len(runs) < count:
        candidate = iterator.get_next(datetime.datetime).replace(fold=0).timestamp()
        if candidate > after and (not runs or candidate > runs[-1]):
            runs.append(candidate)
    return runs


def next_interval_runs(
    latest: float | None, interval: float, now: float, count: int = NEXT_RUNS
) -> list[float]:
    """`latest + k * interval`, from the first one not before `now` (or `now` if never run)."""
    if interval <= 0:
        return []
    if latest is None:
        return [now + k * interval for k in range(count)]
    k = max(1, math.ceil((now - latest) / interval))
    return [latest + (k + i) * interval for i in range(count)]


def _utc_epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def observe_rq_cron(adapter: RQAdapter, now: float) -> list[ObservedSchedule]:
    connection = adapter.connection
    names = [_text(n) for n in connection.zrange(CRON_SCHEDULERS_KEY, 0, -1)]
    if not names:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hget(f"rq:cron_scheduler:{name}", "cron_jobs")
        pipe.zrange(CRON_JOBS_KEY, 0, -1, withscores=True)
        *raw_jobs, enqueued = pipe.execute()
    latest_by_name = {_text(name): float(score) for name, score in enqueued}
    observed: dict[tuple[str, str, str], ObservedSchedule] = {}
    for raw in raw_jobs:
        if not raw:
            continue
        try:
            jobs = json.loads(raw)
        except ValueError:
            continue
        for job in jobs:
            func = str(job.get("func_name") or "")
            name = str(job.get("name") or func)
            queue = str(job.get("queue_name") or adapter.default_queue)
            adapter.saw(func, queue)
            cron, interval = job.get("cron"), job.get("interval")
            if cron:
                kind, expression = "cron", str(cron)
                runs = next_cron_runs(expression, now)
            elif interval:
                kind, expression = "interval", f"every {int(interval)}s"
                latest = max(
                    filter(
                        None,
                        (_utc_epoch(job.get("latest_enqueue_time")), latest_by_name.get(name)),
                    ),
                    default=None,
                )
                runs = next_interval_runs(latest, float(interval), now)
            else:
                continue
            observed.setdefault(
                (name, kind, expression),
                ObservedSchedule(
                    source=RQ_CRON,
                    name=name,
                    task=func,
                    kind=kind,
                    expression=expression,
                    next_runs=runs,
                    read_only=True,
                ),
            )
    return list(observed.values())


def _fetch_jobs(adapter: RQAdapter, ids: list[str]) -> list[Any]:
    from rq.job import Job

    if not ids:
        return []
    jobs = Job.fetch_many(ids, connection=adapter.connection, serializer=adapter.serializer)
    return [job for job in jobs if job is not None]


def observe_rq_scheduler(adapter: RQAdapter, now: float) -> list[ObservedSchedule]:
    entries = adapter.connection.zrange(
        RQ_SCHEDULER_KEY, 0, MAX_RQ_SCHEDULER_JOBS - 1, withscores=True
    )
    scores = {_text(job_id): float(score) for job_id, score in entries}
    observed = []
    for job in _fetch_jobs(adapter, list(scores)):
        try:
            func, meta = job.func_name or "", dict(job.meta or {})
        except Exception:
            continue  # a job whose payload this process cannot read
        first = scores[job.id]
        adapter.saw(func, job.origin)
        repeat = meta.get("repeat")
        left = NEXT_RUNS if repeat is None else max(int(repeat), 0)
        cron, interval = meta.get("cron_string"), meta.get("interval")
        if cron:
            kind, expression = "cron", str(cron)
            runs = [first, *next_cron_runs(expression, first, NEXT_RUNS - 1)]
        elif interval:
            kind, expression = "interval", f"every {int(interval)}s"
            runs = [first + k * int(interval) for k in range(NEXT_RUNS)]
        else:
            kind, expression, runs = "once", "at " + _iso(first), [first]
        if repeat is not None:
            expression += f" (repeat {int(repeat)} more)"
            # rq-scheduler enqueues at the stored time, then repeats while the count lasts.
            runs = runs[: left + 1] if left else runs[:1]
        observed.append(
            ObservedSchedule(
                source=RQ_SCHEDULER,
                name=job.id,
                task=func,
                kind=kind,
                expression=expression,
                next_runs=runs,
                read_only=True,
            )
        )
    return observed


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()


def observe_scheduled_registries(adapter: RQAdapter, queues: list[str]) -> list[ObservedSchedule]:
    connection = adapter.connection
    with connection.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zrange(f"rq:scheduled:{queue}", 0, MAX_SCHEDULED_PER_QUEUE - 1, withscores=True)
        per_queue = pipe.execute()
    scores: dict[str, float] = {}
    for entries in per_queue:
        for job_id, score in entries:
            scores[_text(job_id)] = float(score)
    observed = []
    for job in _fetch_jobs(adapter, list(scores)):
        try:
            func = job.func_name or ""
        except Exception:
            continue
        adapter.saw(func, job.origin)
        at = scores[job.id]
        observed.append(
            ObservedSchedule(
                source=RQ_SCHEDULED,
                name=job.id,
                task=func,
                kind="once",
                expression="at " + _iso(at),
                next_runs=[at],
                read_only=True,
            )
        )
    return observed


def refresh_queues(adapter: RQAdapter) -> list[str]:
    """Read the queue names and which workers listen on each into `adapter.queues`."""
    from rq import Queue
    from rq.worker import Worker

    connection = adapter.connection
    names = sorted(q.name for q in Queue.all(connection=connection))
    listening: dict[str, list[str]] = {name: [] for name in names}
    for worker in Worker.all(connection=connection):
        for queue in worker.queue_names():
            listening.setdefault(queue, []).append(worker.name)
    adapter.queues = {queue: sorted(workers) for queue, workers in listening.items()}
    return names


def observe(adapter: RQAdapter, now: float | None = None) -> list[ObservedSchedule]:
    """Every schedule RQ, `rq cron` and rq-scheduler hold on `adapter`'s Redis database."""
    now = time.time() if now is None else now
    queues = refresh_queues(adapter)
    return [
        *observe_rq_cron(adapter, now),
        *observe_rq_scheduler(adapter, now),
        *observe_scheduled_registries(adapter, queues),
    ]
