"""Actions on RQ jobs and queues (docs/actions.md), with RQ's own calls.

retry: a new job from the old job's hash (RQ keeps a failed job, with its original arguments,
for its `failure_ttl`), never from the brain's redacted copy. cancel: `Job.cancel` for a queued,
deferred or scheduled job; with terminate, `send_stop_job_command` for a running one (its worker
kills the horse). Queue depth: one pipelined round trip. Runs on the agent's command threads;
may block on Redis.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import ActionOutcome, CancelRequest, RetryRequest, done, failed, unavailable
from z4j_core.wire import QueueDepth
from z4j_rq.enqueue import JOB_ID

if TYPE_CHECKING:
    from z4j_rq.adapter import RQAdapter

#: Statuses of a job that has ended (RQ's `JobStatus` values).
ENDED = frozenset({"finished", "failed", "stopped", "canceled"})
#: How long a terminate waits to see the job stop (its worker kills the horse at once).
STOP_WAIT_SECONDS = 5.0


def _fetch(adapter: RQAdapter, task_id: str) -> tuple[Any, str]:
    """The job `task_id` and its status read now, or (None, "") when RQ has no such job."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    if not JOB_ID.match(task_id):
        return None, ""
    try:
        job = Job.fetch(task_id, connection=adapter.connection, serializer=adapter.serializer)
    except NoSuchJobError:
        return None, ""
    return job, _status(job)


def _status(job: Any) -> str:
    status = job.get_status(refresh=True)
    return str(getattr(status, "value", status) or "")


def retry(adapter: RQAdapter, request: RetryRequest) -> ActionOutcome:
    from rq.exceptions import DuplicateJobError

    job, status = _fetch(adapter, request.task_id)
    if job is None:
        return unavailable(
            f"RQ no longer has job {request.task_id} (its failure_ttl or result_ttl passed, "
            "or it was deleted): no original arguments to retry with"
        )
    if status not in ENDED:
        return unavailable(f"job {request.task_id} is {status}, not finished: nothing to retry")
    if status != "failed" and not request.force:
        return unavailable(f"job {request.task_id} is {status}, not failed: pass force")
    if job.instance is not None:
        return unavailable(f"job {request.task_id} calls a method of an instance: not retried")
    new_id = request.new_task_id if JOB_ID.match(request.new_task_id or "") else None
    meta = {k: v for k, v in (job.meta or {}).items() if not str(k).startswith("z4j_")}
    meta["z4j_retry_of"] = job.id
    options: dict[str, Any] = {
        "args": tuple(job.args),
        "kwargs": dict(job.kwargs),
        "job_id": new_id,
        "unique": new_id is not None,
        "meta": meta,
        "job_timeout": job.timeout,
        "result_ttl": job.result_ttl,
        "failure_ttl": job.failure_ttl,
        "description": job.description,
    }
    options = {k: v for k, v in options.items() if v is not None}
    try:
        new = adapter.rq_queue(job.origin).enqueue(job.func_name, **options)
    except DuplicateJobError:
        return done(new_id)  # this very retry was already enqueued (the answer was lost)
    return done(new.id)


def cancel(adapter: RQAdapter, request: CancelRequest) -> ActionOutcome:
    from rq.command import send_stop_job_command

    job, status = _fetch(adapter, request.task_id)
    if job is None:
        return unavailable(f"RQ has no job {request.task_id} (finished and expired, or unknown)")
    if status in ENDED:
        return unavailable(f"job {request.task_id} already ended ({status}): nothing to cancel")
    if status == "started":
        if not request.terminate:
            return unavailable(f"job {request.task_id} is running: pass terminate to stop it")
        # The worker running it kills its work horse; its capture records `revoked`.
        send_stop_job_command(adapter.connection, job.id, serializer=adapter.serializer)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if _status(job) != "started":
                return done(recorded=True)
        return failed(
            f"job {request.task_id} is still running {STOP_WAIT_SECONDS:.0f}s after RQ's "
            "stop-job command: its worker cannot stop it (a SimpleWorker runs jobs in its own "
            "process)"
        )
    # Queued, deferred or scheduled: RQ takes it out of its queue or registry; the patched
    # `Job.cancel` records `cancelled` through this process's capture when there is one.
    job.cancel()
    return done(recorded=adapter.capture is not None)


def purge(adapter: RQAdapter, queue: str) -> ActionOutcome:
    return done(count=int(adapter.rq_queue(queue).empty() or 0))


def queue_depths(adapter: RQAdapter) -> list[QueueDepth]:
    from rq import Queue
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

    connection = adapter.connection
    names = sorted(
        {q.name for q in Queue.all(connection=connection)}
        | {adapter.default_queue}
        | {q for queues in adapter.functions.values() for q in queues}
    )
    registries = {
        "scheduled": ScheduledJobRegistry,
        "running": StartedJobRegistry,
        "failed": FailedJobRegistry,
    }
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.llen(Queue(name, connection=connection).key)
        for registry in registries.values():
            pipe.zcard(registry(name, connection=connection).key)
    counts = iter(pipe.execute())
    return [
        QueueDepth(name=name, ready=int(next(counts)), **{k: int(next(counts)) for k in registries})
        for name in names
    ]
