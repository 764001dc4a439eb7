"""Lifecycle capture: RQ's job states mapped onto z4j's lifecycle kinds.

Owns where each event is seen, and that no code of ours runs in a work horse:
- `enqueued` / `scheduled`: on the producer side, around `Queue.enqueue_job`, `schedule_job`
  and `enqueue_many` (patched once per process; a queue counts when its Redis server and
  database are an instrumented connection's); `rejected` when RQ then fails to write the job.
- `started`, then the outcome: in the long-lived worker process, around each job
  (`z4j_rq.worker`). A forking worker's horse is gone when the job ends, so the outcome is read
  back the way RQ recorded it: the job's status and the latest result of its stream, sent in
  the same pipelined round trip as the worker's own heartbeat after the job. A job RQ will run
  again (retries left) is `retried`, never `failed`.
- `cancelled`: around `Job.cancel` in any instrumented process.
- abandoned jobs: an exception handler RQ calls when it cleans up after a dead worker.
Every entry point catches and counts its own exceptions; `emit` only appends to memory.
"""

from __future__ import annotations

import base64
import os
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import MAX_CAPTURE_IN_FLIGHT, current_fire_id, dotted
from z4j_core.wire import LifecycleKind

if TYPE_CHECKING:
    from z4j_rq.adapter import RQAdapter

K = LifecycleKind

# RQ's Result.Type values (rq.results), spelled here so reading a result needs no import.
RESULT_SUCCESSFUL = 1
RESULT_FAILED = 2
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
    if _horse:
        return True
    return bool(os.environ.get("RQ_JOB_ID")) and _worker_pid != os.getpid()


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
    return (
        kwargs.get("host"),
        kwargs.get("port"),
        kwargs.get("path") or kwargs.get("unix_socket_path"),
        int(kwargs.get("db") or 0),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Outcome:
    """What RQ recorded about one execution, read in one round trip."""

    __slots__ = ("exc_string", "number_of_retries", "result_type", "retries_left", "runtime")

    def __init__(self) -> None:
        self.result_type: int | None = None
        self.exc_string = ""
        self.runtime: float | None = None
        self.retries_left: int | None = None
        self.number_of_retries: int | None = None


def queue_outcome_read(pipe: Any, job_id: str, job_key: str) -> None:
    """Add the two reads of a job's outcome to a (non-transactional) pipeline."""
    pipe.hmget(job_key, "status", "retries_left", "number_of_retries")
    pipe.xrevrange(f"rq:results:{job_id}", "+", "-", count=1)


def parse_outcome(replies: list[Any], execution_id: str | None) -> tuple[str | None, Outcome]:
    """(status or None when the job is gone, Outcome) from the replies to `queue_outcome_read`."""
    (status, retries_left, retries_done), results = replies
    outcome = Outcome()
    if retries_left is not None:
        outcome.retries_left = int(retries_left)
    if retries_done is not None:
        outcome.number_of_retries = int(retries_done)
    if results:
        _, payload = results[0]
        fields = {_text(k): v for k, v in payload.items()}
        recorded_for = fields.get("execution_id")
        if execution_id is None or recorded_for is None or _text(recorded_for) == execution_id:
            outcome.result_type = int(fields.get("type") or 0)
            exc = fields.get("exc_string")
            if exc:
                outcome.exc_string = zlib.decompress(base64.b64decode(exc)).decode(errors="replace")
            began, ended = fields.get("execution_started_at"), fields.get("execution_ended_at")
            if began and ended:
                outcome.runtime = max(float(ended) - float(began), 0.0)
    return (None if status is None else _text(status)), outcome


def read_outcome(
    connection: Any, job_id: str, job_key: str, execution_id: str | None
) -> tuple[str | None, Outcome]:
    """The outcome in one pipelined round trip of its own."""
    with connection.pipeline(transaction=False) as pipe:
        queue_outcome_read(pipe, job_id, job_key)
        replies = pipe.execute()
    return parse_outcome(replies, execution_id)


class JobCapture:
    """Emits the lifecycle events of the jobs on one instrumented Redis connection."""

    def __init__(self, adapter: RQAdapter, emit: Callable[..., None]) -> None:
        self.adapter = adapter
        self.emit = emit
        self.errors = 0
        self._exceptions: dict[str, tuple[str, str, str]] = {}

    def disconnect(self) -> None:
        """Stop receiving this connection's jobs (the process-wide patches stay, idle)."""
        global _generation
        if _captures.get(self.adapter.key) is self:
            del _captures[self.adapter.key]
        _generation += 1

    # -- the producer side --------------------------------------------------------------------

    def enqueued(self, job: Any, queue: str, eta: Any = None) -> None:
        try:
            if in_work_horse():
                return
            status = _text(getattr(job, "_status", "") or "")
            kind = K.SCHEDULED if eta is not None or status == "deferred" else K.ENQUEUED
            fields: dict[str, Any] = {}
            if eta is not None:
                fields["extra"] = {"eta": eta.isoformat()}
            elif status == "deferred":
                fields["extra"] = {"deferred": "waiting for the jobs it depends on"}
            fire_id = current_fire_id()
            if fire_id:
                fields["fire_id"] = fire_id
            name = job.func_name
            self.adapter.saw(name, queue)
            self.emit(kind, job.id, name, queue=queue, args=job.args, kwargs=job.kwargs, **fields)
        except Exception:
            self.errors += 1

    def refused(self, job: Any, queue: str, exc: BaseException) -> None:
        """RQ raised while writing a job just reported enqueued."""
        try:
            if in_work_horse():
                return
            self.emit(
                K.REJECTED,
                job.id,
                job.func_name,
                queue=queue,
                exception=dotted(type(exc)),
                message=f"RQ did not enqueue it: {exc}",
            )
        except Exception:
            self.errors += 1

    def cancelled(self, job: Any) -> None:
        try:
            if in_work_horse():
                return
            self.emit(
                K.CANCELLED,
                job.id,
                job.func_name,
                queue=job.origin,
                message="cancelled with RQ's Job.cancel",
            )
        except Exception:
            self.errors += 1

    # -- the worker process -------------------------------------------------------------------

    def started(self, job: Any, queue: str, worker: str) -> None:
        try:
            name = job.func_name
            self.adapter.saw(name, queue)
            self.emit(
                K.STARTED,
                job.id,
                name,
                queue=queue,
                worker=worker,
                args=job.args,
                kwargs=job.kwargs,
                retries=job.retries_left,
            )
        except Exception:
            self.errors += 1

    def exception(self, job: Any, exc_info: tuple[Any, ...]) -> None:
        """An exception seen in this process (a SimpleWorker runs jobs in-process)."""
        try:
            exc_type, exc, tb = exc_info
            if exc_type is None:
                return
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            kept = self._exceptions
            if len(kept) >= MAX_CAPTURE_IN_FLIGHT:
                kept.clear()
            kept[job.id] = (dotted(exc_type), str(exc) or exc_type.__name__, text)
        except Exception:
            self.errors += 1

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
        """After the job's execution ended (its horse exited): report what RQ recorded.

        replies: the answers to `queue_outcome_read` when the caller sent it in a pipeline of
        its own; otherwise the outcome is read here, in one round trip.
        """
        try:
            if replies is None:
                status, outcome = read_outcome(
                    self.adapter.connection, job.id, job.key, execution_id
                )
            else:
                status, outcome = parse_outcome(replies, execution_id)
            self._finished(
                job, queue, worker=worker, status=status, outcome=outcome, runtime=elapsed
            )
        except Exception:
            self.errors += 1

    def _finished(
        self,
        job: Any,
        queue: str,
        *,
        worker: str,
        status: str | None,
        outcome: Outcome,
        runtime: float,
    ) -> None:
        seen = self._exceptions.pop(job.id, None)
        if outcome.runtime is not None:
            runtime = outcome.runtime  # RQ's own execution start to end
        fields: dict[str, Any] = {"queue": queue, "worker": worker, "runtime": runtime}
        result_type = outcome.result_type
        if outcome.exc_string:
            exception, message = parse_exc_string(outcome.exc_string)
            failure = (exception, message, outcome.exc_string)
        elif seen is not None:
            failure = seen
        else:
            # RQ keeps no traceback for an attempt it retries, and the horse that saw it is gone.
            failure = (
                "",
                "the attempt raised; RQ keeps no traceback for an attempt it retries",
                "",
            )
        name = job.func_name

        if status == "stopped" or result_type == RESULT_STOPPED:
            kind = K.REVOKED
            fields.update(message="stopped with RQ's stop-job command", extra={"rq": "stopped"})
        elif status == "canceled":
            kind = K.CANCELLED
            fields.update(message="cancelled while it ran")
        elif result_type == RESULT_SUCCESSFUL or status == "finished":
            kind = K.SUCCEEDED
        elif status is None and seen is None and not outcome.exc_string:
            kind = K.SUCCEEDED  # RQ deletes a finished job at once when its result_ttl is 0
        elif result_type == RESULT_RETRIED or status in ("queued", "scheduled"):
            kind = K.RETRIED
            fields["retries"] = outcome.retries_left or 0
            if result_type == RESULT_RETRIED:
                fields["message"] = "the job returned rq.Retry"
                fields["extra"] = {"number_of_retries": str(outcome.number_of_retries or 0)}
            else:
                exception, message, text = failure
                fields["message"] = message
                if exception:
                    fields["exception"] = exception
                if text:
                    fields["traceback"] = text
        else:
            kind = K.FAILED
            fields["retries"] = 0
            if result_type == RESULT_MAX_RETRIES_EXCEEDED:
                fields.update(exception="rq.Retry", message="the job's rq.Retry ran out of tries")
            else:
                exception, message, text = failure
                fields.update(exception=exception or "rq.JobFailed", message=message)
                if text:
                    fields["traceback"] = text
        self.emit(kind, job.id, name, **fields)

    def abandoned(self, job: Any, worker: str) -> None:
        """RQ's registry cleanup found `job` started by a worker that is gone."""
        try:
            retries_left = job.retries_left or 0
            kind = K.RETRIED if retries_left > 0 else K.FAILED
            self.emit(
                kind,
                job.id,
                job.func_name,
                queue=job.origin,
                worker=worker,
                retries=max(retries_left - 1, 0),
                exception=ABANDONED,
                message="the worker running this job died; RQ cleaned it up",
                extra={"rq": "abandoned"},
            )
        except Exception:
            self.errors += 1


# -- process-wide hooks into RQ: installed once, dispatched by Redis server and database -------

_captures: dict[tuple[Any, ...], JobCapture] = {}
_generation = 0  # bumped by install/uninstall, so a connection's cached answer goes stale
_patched = False
_patch_lock = threading.Lock()


def capture_for(connection: Any) -> JobCapture | None:
    """The capture of the instrumented connection to the same server and database, if any.

    The answer is cached on the connection object itself (never by `id()`, which is reused).
    """
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
    """Capture the jobs of `adapter`'s connection in this process; idempotent per adapter.

    The first capture installed for a Redis server and database receives its jobs' events.
    """
    global _generation
    if adapter.capture is not None:
        return adapter.capture  # type: ignore[no-any-return]
    capture = JobCapture(adapter, emit)
    adapter.capture = capture
    _captures.setdefault(adapter.key, capture)
    _generation += 1
    _patch_rq()
    return capture


def _around_enqueue(
    queue: Any,
    job: Any,
    eta: Any,
    unique: bool,
    original: Callable[..., Any],
    *,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Report a job as it is handed to RQ.

    Reported just before RQ writes it, so `enqueued` orders before the worker's `started`
    even when a worker takes the job at once; if the write fails, `rejected` follows with the
    error (the application sees RQ's exception as before). With `unique=True` RQ may refuse
    the id because that job exists: then it is reported only once RQ accepted it, so the
    existing job's history gets no stray events.
    """
    capture = capture_for(queue.connection) if _captures else None
    if capture is None:
        return original(queue, job, *args, **kwargs)
    if unique:
        result = original(queue, job, *args, **kwargs)
        capture.enqueued(result, queue.name, eta=eta)
        return result
    capture.enqueued(job, queue.name, eta=eta)
    try:
        return original(queue, job, *args, **kwargs)
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

        enqueue_job = Queue.enqueue_job
        schedule_job = Queue.schedule_job
        enqueue_many = Queue.enqueue_many
        cancel = Job.cancel

        def z4j_enqueue_job(self: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
            unique = kwargs.get("unique", args[2] if len(args) > 2 else False)
            return _around_enqueue(self, job, None, unique, enqueue_job, args=args, kwargs=kwargs)

        def z4j_schedule_job(self: Any, job: Any, datetime: Any, *args: Any, **kwargs: Any) -> Any:
            unique = kwargs.get("unique", args[1] if len(args) > 1 else False)
            args = (datetime, *args)
            return _around_enqueue(
                self, job, datetime, unique, schedule_job, args=args, kwargs=kwargs
            )

        def z4j_enqueue_many(self: Any, *args: Any, **kwargs: Any) -> Any:
            jobs = enqueue_many(self, *args, **kwargs)
            if _captures:
                capture = capture_for(self.connection)
                if capture is not None:
                    for job in jobs or ():
                        capture.enqueued(job, self.name)
            return jobs

        def z4j_cancel(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = cancel(self, *args, **kwargs)
            if _captures:
                capture = capture_for(self.connection)
                if capture is not None:
                    capture.cancelled(self)
            return result

        for wrapper, original in (
            (z4j_enqueue_job, enqueue_job),
            (z4j_schedule_job, schedule_job),
            (z4j_enqueue_many, enqueue_many),
            (z4j_cancel, cancel),
        ):
            wrapper.__doc__ = original.__doc__
            wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        Queue.enqueue_job = z4j_enqueue_job
        Queue.schedule_job = z4j_schedule_job
        Queue.enqueue_many = z4j_enqueue_many
        Job.cancel = z4j_cancel
        _patched = True


def monotonic() -> float:
    return time.perf_counter()
