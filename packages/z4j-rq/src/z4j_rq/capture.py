"""Lifecycle capture: RQ's job states mapped onto z4j's lifecycle kinds.

Owns where each event is seen, and that no code of ours runs in a work horse:
- `enqueued` / `scheduled`: on the producer side, around `Queue.enqueue_job`, `schedule_job`
  and `enqueue_many` (patched once per process; a queue counts when its Redis server and
  database are an instrumented connection's); `rejected` when RQ then fails to write the job.
- `started`, then the outcome: in the long-lived worker process, around each job
  (`z4j_rq.worker`). A forking worker's horse is gone when the job ends, so the outcome is read
  back the way RQ recorded it (the job's status and its latest result), in the same pipelined
  round trip as the worker's heartbeat after the job. A job RQ will run again is `retried`.
- `cancelled`: around `Job.cancel` in any instrumented process.
- abandoned jobs: an exception handler RQ calls when it cleans up after a dead worker.
Every entry point catches and counts its own exceptions; `emit` only appends to memory.
"""

from __future__ import annotations

import base64
import functools
import os
import threading
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import InFlight, current_fire_id, dotted, error_fields, guarded
from z4j_core.wire import LifecycleKind

if TYPE_CHECKING:
    from z4j_rq.adapter import RQAdapter

K = LifecycleKind

# RQ's Result.Type values (rq.results), spelled here so reading a result needs no import.
RESULT_SUCCESSFUL = 1
RESULT_STOPPED = 3
RESULT_RETRIED = 4
RESULT_MAX_RETRIES_EXCEEDED = 5

ABANDONED = "rq.exceptions.AbandonedJobError"

# Set in a work horse (by `z4j_rq.worker`), where nothing of ours may emit or start an agent.
_horse = False
# The pid of the process running a z4j worker loop (a forked horse has another pid).
_worker_pid = 0


def mark_horse() -> None:
    global _horse
    _horse = True


def mark_worker_process() -> None:
    global _worker_pid
    _worker_pid = os.getpid()


def in_work_horse() -> bool:
    """Whether this process is an RQ work horse (forked or spawned for one job)."""
    return _horse or (bool(os.environ.get("RQ_JOB_ID")) and _worker_pid != os.getpid())


def parse_exc_string(text: str) -> tuple[str, str]:
    """(exception type, message) from RQ's recorded failure text (a formatted traceback)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback"):
        for line in reversed(lines):
            if not line[:1].isspace():
                name, sep, message = line.partition(": ")
                if " " not in name and name:
                    return name, message if sep else name
                break
    if text.startswith("Work-horse terminated unexpectedly"):
        return "rq.WorkHorseTerminated", text.strip()
    if text.startswith("Moved to FailedJobRegistry, due to AbandonedJobError"):
        return ABANDONED, text.strip()
    return "rq.JobFailed", text.strip()[:500] or "the job failed"


def connection_key(connection: Any) -> tuple[Any, ...]:
    """Which Redis server and database a connection talks to (two clients, one key)."""
    kwargs = connection.connection_pool.connection_kwargs
    path = kwargs.get("path") or kwargs.get("unix_socket_path")
    return (kwargs.get("host"), kwargs.get("port"), path, int(kwargs.get("db") or 0))


def as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def queue_outcome_read(pipe: Any, job: Any) -> None:
    """Add the two reads of a job's outcome (its hash, its latest result) to a pipeline."""
    pipe.hmget(job.key, "status", "retries_left", "number_of_retries")
    pipe.xrevrange(f"rq:results:{job.id}", "+", "-", count=1)


class JobCapture:
    """Emits the lifecycle events of the jobs on one instrumented Redis connection."""

    def __init__(self, adapter: RQAdapter, emit: Callable[..., None]) -> None:
        self.adapter = adapter
        self.emit = emit
        self.errors = 0
        self._exceptions: InFlight[dict[str, Any]] = InFlight()

    def disconnect(self) -> None:
        """Stop receiving this connection's jobs (the process-wide patches stay, idle)."""
        global _generation
        if _captures.get(self.adapter.key) is self:
            del _captures[self.adapter.key]
        _generation += 1

    # -- the producer side (never in a work horse) --------------------------------------------

    @guarded
    def enqueued(self, job: Any, queue: str, eta: Any = None) -> None:
        if in_work_horse():
            return
        extra = None if eta is None else {"eta": eta.isoformat()}
        if extra is None and as_str(getattr(job, "_status", "") or "") == "deferred":
            extra = {"deferred": "waiting for the jobs it depends on"}
        name = job.func_name
        self.adapter.saw(name, queue)
        kind = K.ENQUEUED if extra is None else K.SCHEDULED
        fields = {"queue": queue, "extra": extra, "fire_id": current_fire_id()}
        self.emit(kind, job.id, name, args=job.args, kwargs=job.kwargs, **fields)

    @guarded
    def refused(self, job: Any, queue: str, exc: BaseException) -> None:
        """RQ raised while writing a job just reported enqueued."""
        if not in_work_horse():
            message = f"RQ did not enqueue it: {exc}"
            fields = {"queue": queue, "exception": dotted(type(exc)), "message": message}
            self.emit(K.REJECTED, job.id, job.func_name, **fields)

    @guarded
    def cancelled(self, job: Any) -> None:
        if not in_work_horse():
            message = "cancelled with RQ's Job.cancel"
            self.emit(K.CANCELLED, job.id, job.func_name, queue=job.origin, message=message)

    # -- the worker process -------------------------------------------------------------------

    @guarded
    def started(self, job: Any, queue: str, worker: str) -> None:
        name = job.func_name
        self.adapter.saw(name, queue)
        fields = {"queue": queue, "worker": worker, "retries": job.retries_left}
        self.emit(K.STARTED, job.id, name, args=job.args, kwargs=job.kwargs, **fields)

    @guarded
    def exception(self, job: Any, exc_info: tuple[Any, ...]) -> None:
        """An exception seen in this process (a SimpleWorker runs jobs in-process)."""
        if exc_info[0] is not None:
            self._exceptions.put(job.id, error_fields(exc_info[1]))

    @guarded
    def finished(
        self,
        job: Any,
        queue: str,
        *,
        worker: str,
        execution_id: str | None,
        elapsed: float,
        replies: list[Any] | None = None,
    ) -> None:
        """After the job's execution ended (its horse exited): report what RQ recorded, from
        `replies` to `queue_outcome_read` sent in the caller's pipeline, else read here."""
        if replies is None:
            with self.adapter.connection.pipeline(transaction=False) as pipe:
                queue_outcome_read(pipe, job)
                replies = pipe.execute()
        (status, retries_left, retries_done), results = replies
        status = None if status is None else as_str(status)
        result = {as_str(k): v for k, v in results[0][1].items()} if results else {}
        recorded_for = result.get("execution_id")
        if None not in (execution_id, recorded_for) and as_str(recorded_for) != execution_id:
            result = {}  # the latest result is another execution's
        result_type = int(result.get("type") or 0)
        exc = result.get("exc_string")
        exc_string = zlib.decompress(base64.b64decode(exc)).decode(errors="replace") if exc else ""
        # RQ's own execution start to end, when it recorded them.
        began, ended = result.get("execution_started_at"), result.get("execution_ended_at")
        runtime = max(float(ended) - float(began), 0.0) if began and ended else elapsed
        seen = self._exceptions.pop(job.id, None)
        if exc_string:
            exception, message = parse_exc_string(exc_string)
            failure = {"exception": exception, "message": message, "traceback": exc_string}
        else:
            # RQ keeps no traceback for an attempt it retries, and the horse that saw it is gone.
            no_traceback = "the attempt raised; RQ keeps no traceback for an attempt it retries"
            failure = seen or {"message": no_traceback}
        fields: dict[str, Any] = {"queue": queue, "worker": worker, "runtime": runtime}
        if status == "stopped" or result_type == RESULT_STOPPED:
            kind = K.REVOKED
            fields.update(message="stopped with RQ's stop-job command", extra={"rq": "stopped"})
        elif status == "canceled":
            kind = K.CANCELLED
            fields.update(message="cancelled while it ran")
        elif result_type == RESULT_SUCCESSFUL or status == "finished":
            kind = K.SUCCEEDED
        elif status is None and seen is None and not exc_string:
            kind = K.SUCCEEDED  # RQ deletes a finished job at once when its result_ttl is 0
        elif result_type == RESULT_RETRIED:
            kind = K.RETRIED
            fields.update(retries=int(retries_left or 0), message="the job returned rq.Retry")
            fields["extra"] = {"number_of_retries": str(int(retries_done or 0))}
        elif status in ("queued", "scheduled"):
            kind = K.RETRIED
            fields.update(failure, retries=int(retries_left or 0))
        elif result_type == RESULT_MAX_RETRIES_EXCEEDED:
            kind = K.FAILED
            message = "the job's rq.Retry ran out of tries"
            fields.update(retries=0, exception="rq.Retry", message=message)
        else:
            kind = K.FAILED
            fields.update({"retries": 0, "exception": "rq.JobFailed", **failure})
        self.emit(kind, job.id, job.func_name, **fields)

    @guarded
    def abandoned(self, job: Any, worker: str) -> None:
        """RQ's registry cleanup found `job` started by a worker that is gone."""
        retries_left = job.retries_left or 0
        kind = K.RETRIED if retries_left > 0 else K.FAILED
        message = "the worker running this job died; RQ cleaned it up"
        fields = {"queue": job.origin, "worker": worker, "exception": ABANDONED, "message": message}
        retries = max(retries_left - 1, 0)
        self.emit(kind, job.id, job.func_name, retries=retries, extra={"rq": "abandoned"}, **fields)


# -- process-wide hooks into RQ: installed once, dispatched by Redis server and database -------

_captures: dict[tuple[Any, ...], JobCapture] = {}
_generation = 0  # bumped by install/uninstall, so a connection's cached answer goes stale
_patched = False
_patch_lock = threading.Lock()


def capture_for(connection: Any) -> JobCapture | None:
    """The capture of the instrumented connection to the same server and database, if any,
    cached on the connection object itself (never by `id()`, which is reused)."""
    try:
        cached = getattr(connection, "_z4j_capture", None)
        if cached is not None and cached[0] == _generation:
            return cached[1]  # type: ignore[no-any-return]
        found = _captures.get(connection_key(connection))
        connection._z4j_capture = (_generation, found)
        return found
    except Exception:
        return None


def install(adapter: RQAdapter, emit: Callable[..., None]) -> JobCapture:
    """Capture the jobs of `adapter`'s connection in this process; idempotent per adapter (the
    first capture installed for a Redis server and database receives its jobs' events)."""
    global _generation
    if adapter.capture is not None:
        return adapter.capture  # type: ignore[no-any-return]
    capture = adapter.capture = JobCapture(adapter, emit)
    _captures.setdefault(adapter.key, capture)
    _generation += 1
    _patch_rq()
    return capture


def _around_enqueue(queue: Any, job: Any, eta: Any, unique: bool, write: Callable[[], Any]) -> Any:
    """Report a job just before RQ writes it, so `enqueued` orders before a worker's `started`;
    if the write fails, `rejected` follows (RQ's exception still reaches the caller). With
    `unique=True` RQ may refuse the id of an existing job: then the job is reported only once RQ
    accepted it, so the existing job's history gets no stray events."""
    capture = capture_for(queue.connection) if _captures else None
    if capture is None:
        return write()
    if unique:
        result = write()
        capture.enqueued(result, queue.name, eta=eta)
        return result
    capture.enqueued(job, queue.name, eta=eta)
    try:
        return write()
    except Exception as exc:
        capture.refused(job, queue.name, exc)
        raise


def _patch_rq() -> None:
    """Wrap the producer-side entry points of RQ's Queue and Job once per process."""
    global _patched
    with _patch_lock:
        if _patched:
            return
        from rq.job import Job
        from rq.queue import Queue

        enqueue_job, schedule_job = Queue.enqueue_job, Queue.schedule_job
        enqueue_many, cancel = Queue.enqueue_many, Job.cancel

        # Each wrapper keeps RQ's docstring and `__wrapped__` (the original), not RQ's names.
        keep = functools.partial(functools.wraps, assigned=("__doc__",))

        @keep(enqueue_job)
        def z4j_enqueue_job(self: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
            unique = kwargs.get("unique", args[2] if len(args) > 2 else False)
            write = functools.partial(enqueue_job, self, job, *args, **kwargs)
            return _around_enqueue(self, job, None, unique, write)

        @keep(schedule_job)
        def z4j_schedule_job(self: Any, job: Any, datetime: Any, *args: Any, **kwargs: Any) -> Any:
            unique = kwargs.get("unique", args[1] if len(args) > 1 else False)
            write = functools.partial(schedule_job, self, job, datetime, *args, **kwargs)
            return _around_enqueue(self, job, datetime, unique, write)

        @keep(enqueue_many)
        def z4j_enqueue_many(self: Any, *args: Any, **kwargs: Any) -> Any:
            jobs = enqueue_many(self, *args, **kwargs)
            capture = capture_for(self.connection) if _captures else None
            if capture is not None:
                for job in jobs or ():
                    capture.enqueued(job, self.name)
            return jobs

        @keep(cancel)
        def z4j_cancel(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = cancel(self, *args, **kwargs)
            capture = capture_for(self.connection) if _captures else None
            if capture is not None:
                capture.cancelled(self)
            return result

        Queue.enqueue_job, Queue.schedule_job = z4j_enqueue_job, z4j_schedule_job
        Queue.enqueue_many, Job.cancel = z4j_enqueue_many, z4j_cancel
        _patched = True
