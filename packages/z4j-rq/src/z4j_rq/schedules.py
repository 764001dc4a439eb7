"""Observing RQ's schedules from Redis, read-only: `rq cron`, rq-scheduler, scheduled jobs.

Owns reading three native sources back into `ObservedSchedule`s with their next run times:
`rq cron` (crons match the scheduler host's local time; an interval job runs `interval` seconds
after its latest enqueue), rq-scheduler (the first run is the stored score, naive UTC as a Unix
time) and RQ's scheduled registries (jobs waiting for `enqueue_at`, `enqueue_in` or a retry).
Also refreshes the adapter's snapshot of queues and their workers. Reads Redis in a few bounded
round trips; never writes (not even rq's cleanup of stale entries); runs on the agent's threads.

Next cron runs come from croniter, not `z4j_core.scheduling`: `rq cron` and rq-scheduler use
croniter themselves, so this reproduces what they will do (DST included), not what z4j's own
scheduler would. The one adapter module allowed to import croniter (`test_croniter_imports`).
"""

from __future__ import annotations

import datetime
import json
import math
import socket
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import NEXT_RUNS, host_zone_name, native_definition
from z4j_core.wire import ObservedSchedule
from z4j_rq.capture import as_str

if TYPE_CHECKING:
    from z4j_rq.adapter import RQAdapter

#: Bounds on what one observation reads (a huge backlog must not make inventory slow).
MAX_SCHEDULED_PER_QUEUE = 50
MAX_RQ_SCHEDULER_JOBS = 200

RQ_CRON = "rq_cron"
RQ_SCHEDULER = "rq_scheduler"
RQ_SCHEDULED = "rq_scheduled"
NOT_A_SCHEDULE = (
    "it is one job waiting in RQ's scheduled registry (enqueue_at, enqueue_in or a retry), "
    "not a schedule: it runs once by itself"
)


def next_cron_runs(expression: str, after: float, count: int = NEXT_RUNS) -> list[float]:
    """The next runs of `expression` matched in this host's local time, as epoch seconds; like
    RQ, a local time repeated by a DST fall-back counts once (its first occurrence)."""
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
    try:
        moment = datetime.datetime.fromisoformat((value or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or datetime.timezone.utc).timestamp()


def observe_rq_cron(adapter: RQAdapter, now: float) -> list[ObservedSchedule]:
    connection = adapter.connection
    names = [as_str(n) for n in connection.zrange("rq:cron_schedulers", 0, -1)]
    if not names:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(f"rq:cron_scheduler:{name}", "cron_jobs", "hostname")
        pipe.zrange("rq:cron_jobs", 0, -1, withscores=True)
        *schedulers, enqueued = pipe.execute()
    latest_by_name = {as_str(name): float(score) for name, score in enqueued}
    observed: dict[tuple[str, str, str], ObservedSchedule] = {}
    for raw, hostname in schedulers:
        try:
            jobs = json.loads(raw) if raw else []
        except ValueError:
            continue
        # `rq cron` reads its crons in its host's local zone: known here only on that host.
        zone = host_zone_name() if hostname and as_str(hostname) == socket.gethostname() else None
        for job in jobs:
            func = str(job.get("func_name") or "")
            name = str(job.get("name") or func)
            queue = str(job.get("queue_name") or adapter.default_queue)
            adapter.saw(func, queue)
            cron, interval = job.get("cron"), job.get("interval")
            if cron:
                kind, expression = "cron", str(cron)
                runs, read_in = next_cron_runs(expression, now), zone
                timing: dict[str, Any] = {"cron": expression, "day_and": False}
            elif interval:
                kind, expression = "interval", f"every {int(interval)}s"
                enqueued_at = (_utc_epoch(job.get("latest_enqueue_time")), latest_by_name.get(name))
                latest = max(filter(None, enqueued_at), default=None)
                runs, read_in = next_interval_runs(latest, float(interval), now), "UTC"
                timing = {"every": float(interval), "anchor": None}
            else:
                continue
            definition = _definition(timing, read_in, queue, job)
            observed.setdefault(
                (name, kind, expression),
                ObservedSchedule(
                    source=RQ_CRON,
                    name=name,
                    task=func,
                    kind=kind,
                    expression=expression,
                    next_runs=runs,
                    definition=definition,
                ),
            )
    return list(observed.values())


#: RQ job options an `rq cron` job may carry; `ttl` (how long it may wait queued) is z4j's
#: expiry, the others have no z4j equivalent.
_RQ_CRON_OPTIONS = ("job_timeout", "result_ttl", "ttl", "failure_ttl", "meta", "webhooks")


def _definition(
    timing: dict[str, Any], zone: str | None, queue: str, job: Mapping[str, Any]
) -> dict[str, Any]:
    """`native_definition` for an RQ job: its `args` and `kwargs` (JSON text, or decoded) and its
    `_RQ_CRON_OPTIONS` (None where unset)."""
    from rq.defaults import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL

    withheld = None
    try:
        args, kwargs = job.get("args"), job.get("kwargs")
        args = json.loads(args) if isinstance(args, str) else list(args or ())
        kwargs = json.loads(kwargs) if isinstance(kwargs, str) else dict(kwargs or {})
    except (TypeError, ValueError):
        args, kwargs = (), None
        withheld = "RQ stored the arguments as something other than JSON"
    # What RQ does anyway, so a job that sets it is run by z4j's enqueue alike.
    same_as_default = {"result_ttl": DEFAULT_RESULT_TTL, "failure_ttl": DEFAULT_FAILURE_TTL}
    options: dict[str, Any] = {"queue": queue}
    unsupported = []
    for key in _RQ_CRON_OPTIONS:
        value = job.get(key)
        if key == "ttl" and isinstance(value, (int, float)) and value > 0:
            options["expires_seconds"] = float(value)
        elif value is not None and same_as_default.get(key) != value:
            unsupported.append(f"{key}={value!r}"[:80])
    definition = native_definition(
        timing, timezone=zone, args=args, kwargs=kwargs, options=options, unsupported=unsupported
    )
    if withheld:
        del definition["args"], definition["kwargs"]
        definition["withheld"] = withheld
    return definition


def _jobs(adapter: RQAdapter, scores: dict[str, float]) -> Iterator[tuple[Any, str, float]]:
    """(job, function, score) of each job of `scores` that Redis still holds and this process
    can read; each function joins the inventory."""
    from rq.job import Job

    if not scores:
        return
    ids = list(scores)
    for job in Job.fetch_many(ids, connection=adapter.connection, serializer=adapter.serializer):
        if job is None:
            continue
        try:
            func = job.func_name or ""
        except Exception:
            continue  # a job whose payload this process cannot read
        adapter.saw(func, job.origin)
        yield job, func, scores[job.id]


def observe_rq_scheduler(adapter: RQAdapter, now: float) -> list[ObservedSchedule]:
    entries = adapter.connection.zrange(
        "rq:scheduler:scheduled_jobs", 0, MAX_RQ_SCHEDULER_JOBS - 1, withscores=True
    )
    scores = {as_str(job_id): float(score) for job_id, score in entries}
    observed = []
    for job, func, first in _jobs(adapter, scores):
        meta = job.meta or {}  # RQ's restore always leaves a dict (an unreadable one wrapped)
        repeat = meta.get("repeat")
        cron, interval = meta.get("cron_string"), meta.get("interval")
        # rq-scheduler matches a cron against its host's local wall clock (`datetime.now()`,
        # whatever `use_local_timezone` says, which only sets the zone the result is kept in);
        # like the next runs above, this assumes it runs in this host's zone.
        zone = host_zone_name()
        if cron:
            kind, expression = "cron", str(cron)
            runs = [first, *next_cron_runs(expression, first, NEXT_RUNS - 1)]
            timing: dict[str, Any] = {"cron": expression, "day_and": False}
        elif interval:
            kind, expression = "interval", f"every {int(interval)}s"
            runs = [first + k * int(interval) for k in range(NEXT_RUNS)]
            timing, zone = {"every": float(interval), "anchor": first}, "UTC"
        else:
            kind, expression, runs = "once", "at " + _iso(first), [first]
            timing, zone = {"at": first}, "UTC"
        stored: dict[str, Any] = {"ttl": job.ttl or None, "job_timeout": job.timeout}
        try:
            stored.update(args=list(job.args or ()), kwargs=dict(job.kwargs or {}))
        except Exception:
            stored["args"] = object()  # unreadable here: withheld
        definition = _definition(timing, zone, job.origin, stored)
        if repeat is not None:
            expression += f" (repeat {int(repeat)} more)"
            # rq-scheduler enqueues at the stored time, then repeats while the count lasts.
            runs = runs[: max(int(repeat), 0) + 1]
            definition.setdefault("unsupported", []).append(f"repeat {int(repeat)} more times")
        observed.append(
            ObservedSchedule(
                source=RQ_SCHEDULER,
                name=job.id,
                task=func,
                kind=kind,
                expression=expression,
                next_runs=runs,
                definition=definition,
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
    scores = {as_str(job_id): float(score) for entries in per_queue for job_id, score in entries}
    return [
        ObservedSchedule(
            source=RQ_SCHEDULED,
            name=job.id,
            task=func,
            kind="once",
            expression="at " + _iso(at),
            next_runs=[at],
            definition={"refused": NOT_A_SCHEDULE},
        )
        for job, func, at in _jobs(adapter, scores)
    ]


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
