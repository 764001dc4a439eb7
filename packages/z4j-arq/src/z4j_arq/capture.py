"""Lifecycle capture: an arq worker's jobs and a pool's enqueues mapped onto z4j's kinds.

arq hands its per-job hooks only `ctx`, never the function, its arguments or how it ended, so
capture reads them where arq has them, with no Redis round trip and no wrapped user function:
the function and arguments from the worker's wrapped `job_deserializer` (a context variable of
the job's `run_job` task); the outcome from `JobTasks.__delitem__`, which runs in `run_job`'s
`finally` while arq's exception is in flight; jobs that end before they start (expired, aborted,
unknown function, too many tries) from the wrapped `job_serializer`; enqueues from the
`enqueue_job` of an instrumented pool (the producer's, and the worker's own: cron jobs, jobs
enqueued by jobs), wrapped on that instance.

Every entry point catches and counts every exception: nothing here reaches a job or the
worker's loop. No I/O (`emit` appends to memory) but one small file write per failed job, its
original kept on this host for a retry (`Adapter.keep_original`): arq's record of it expires.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import pickle
import sys
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from z4j_arq import actions
from z4j_arq.enqueue import RESERVED
from z4j_core.adapter import count_error, dotted, error_fields, guarded, worker_id
from z4j_core.wire import LifecycleKind

if TYPE_CHECKING:
    from z4j_arq.adapter import ArqAdapter

K = LifecycleKind


@dataclass(eq=False, slots=True)
class Running:
    """One job between `on_job_start` and `after_job_end`, in run_job's context."""

    job_id: str
    name: str
    job_try: int
    began: float
    decoded: dict[str, Any]  # arq's job message ({} if unseen): kept if the job fails
    kind: LifecycleKind | None = None
    fields: dict[str, Any] | None = None


#: arq's job message (`f`, `a`, `k`, ...) as the worker's deserializer decoded it
_decoded: ContextVar[dict[str, Any] | None] = ContextVar("z4j_arq_decoded", default=None)
_running: ContextVar[Running | None] = ContextVar("z4j_arq_running", default=None)


class JobTasks(dict):  # type: ignore[type-arg]
    """The worker's `job_tasks` (job id -> the job function's task), reporting each outcome.

    arq deletes a job's entry in the `finally` around awaiting it, so `__delitem__` sees the
    exception arq is handling (None on success) before arq decides what to do with it.
    """

    def __init__(self, capture: JobCapture, worker: Any, initial: dict[str, Any]) -> None:
        super().__init__(initial)
        self.capture = capture
        self.worker = worker

    def __delitem__(self, job_id: str) -> None:
        super().__delitem__(job_id)
        if self.capture.connected:
            self.capture.job_ended(self.worker, job_id)  # catches and counts its own errors


class JobCapture:
    """The capture for one arq adapter: hooks for its worker, wrappers for its pools."""

    def __init__(self, adapter: ArqAdapter, emit: Callable[..., None]) -> None:
        self.adapter = adapter
        self.emit = emit
        self.errors = 0
        self.queue = adapter.queue
        self.connected = True

    def disconnect(self) -> None:
        """Put back the pool's own `enqueue_job`, and stop reporting job ends. It may run on
        the agent's drain thread while arq's loop still finishes jobs, so the worker's
        `job_tasks` (which that loop changes) is never touched here: it stays a `JobTasks`
        that reports nothing once disconnected."""
        self.connected = False
        pool = self.adapter.pool
        if getattr(getattr(pool, "enqueue_job", None), "z4j_capture", None) is self:
            del pool.enqueue_job  # the class's own method shows through again

    def wrap_deserializer(self, inner: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
        loads = inner or pickle.loads

        def z4j_job_deserializer(data: bytes) -> Any:
            decoded = loads(data)
            try:
                if isinstance(decoded, dict) and "f" in decoded and "s" not in decoded:
                    _decoded.set(decoded)
            except Exception:
                count_error(self, "caught an error in the arq job deserializer")
            return decoded

        z4j_job_deserializer.z4j_inner = inner  # type: ignore[attr-defined]
        return z4j_job_deserializer

    def wrap_serializer(self, inner: Callable[[Any], bytes] | None) -> Callable[[Any], bytes]:
        dumps = inner or pickle.dumps

        def z4j_job_serializer(data: Any) -> bytes:
            try:
                if isinstance(data, dict) and data.get("s") is False and _running.get() is None:
                    self.ended_before_start(data)
            except Exception:
                count_error(self, "caught an error in the arq job serializer")
            return dumps(data)

        z4j_job_serializer.z4j_inner = inner  # type: ignore[attr-defined]
        return z4j_job_serializer

    @guarded
    def on_job_start(self, ctx: dict[str, Any]) -> None:
        decoded = _decoded.get() or {}
        job_id, job_try = str(ctx.get("job_id")), int(ctx.get("job_try") or 1)
        name = decoded.get("f", "<unknown>")
        _running.set(Running(job_id, name, job_try, time.perf_counter(), decoded))
        self.emit(
            K.STARTED,
            job_id,
            name,
            queue=self.queue,
            worker=worker_id(),
            args=decoded.get("a"),
            kwargs=decoded.get("k"),
            retries=job_try - 1,
        )

    @guarded
    def job_ended(self, worker: Any, job_id: str) -> None:
        """In run_job's `finally`: decide the outcome as arq's `except` clauses will."""
        running = _running.get()
        if running is None or running.job_id != job_id:
            return
        exc = sys.exc_info()[1]
        fields: dict[str, Any] = {
            "queue": self.queue,
            "worker": worker_id(),
            "runtime": time.perf_counter() - running.began,
            "retries": running.job_try - 1,
        }
        kind = K.SUCCEEDED if exc is None else self._outcome(worker, running, exc, fields)
        running.kind, running.fields = kind, fields

    def _outcome(
        self, worker: Any, running: Running, exc: BaseException, fields: dict[str, Any]
    ) -> LifecycleKind:
        """The kind of a job that raised `exc`; adds the error to `fields`."""
        from arq.worker import Retry, RetryJob  # here, not per job: arq is imported by now

        retry_jobs = bool(getattr(worker, "retry_jobs", True))
        if retry_jobs and isinstance(exc, Retry):
            extra = {"defer_seconds": exc.defer_score / 1000} if exc.defer_score else None
            fields.update(error_fields(exc), retries=running.job_try, extra=extra)
            return K.RETRIED
        aborting = running.job_id in getattr(worker, "aborting_tasks", ())
        if aborting and isinstance(exc, asyncio.CancelledError):
            fields.update(exception="arq.aborted", message="aborted with Job.abort()")
            return K.CANCELLED
        if retry_jobs and isinstance(exc, (asyncio.CancelledError, RetryJob)):
            message = "cancelled (the worker stopped or lost the job); arq runs it again"
            fields.update(exception=dotted(type(exc)), message=message, retries=running.job_try)
            return K.RETRIED
        fields.update(error_fields(exc))
        return K.FAILED

    @guarded
    def after_job_end(self, ctx: dict[str, Any]) -> None:
        running = _running.get()
        if running is None or running.kind is None:
            return
        _running.set(None)
        self.emit(running.kind, running.job_id, running.name, **(running.fields or {}))
        if running.kind is K.FAILED and (decoded := running.decoded):
            # arq's own record (its result) expires after `keep_result`, an hour by default.
            payload = actions.pack(self.adapter, running.name, decoded.get("a"), decoded.get("k"))
            self.adapter.keep_original(running.job_id, running.name, payload, self.queue)

    def ended_before_start(self, data: dict[str, Any]) -> None:
        """A job arq failed before running it (its result is being serialized)."""
        from arq.worker import JobExecutionFailed

        result = data.get("r")
        message, exception, kind = str(result), dotted(type(result)), K.FAILED
        if isinstance(result, asyncio.CancelledError):
            kind, exception = K.CANCELLED, "arq.aborted"
            message = "aborted with Job.abort() before it started"
        elif not isinstance(result, BaseException):
            exception = "arq.failed"
        elif isinstance(result, JobExecutionFailed) and message == "job expired":
            kind = K.EXPIRED
        elif "Serializ" in type(result).__name__ or (
            isinstance(result, JobExecutionFailed) and message.endswith("not found")
        ):
            kind = K.REJECTED
        job_try = data.get("t")
        self.emit(
            kind,
            str(data.get("id") or ""),
            str(data.get("f") or "<unknown>"),
            queue=str(data.get("q") or self.queue),
            worker=worker_id(),
            exception=exception,
            message=message,
            **({"retries": max(int(job_try) - 1, 0)} if isinstance(job_try, int) else {}),
        )

    def follow_worker(self, worker: Any) -> None:
        """Replace the worker's `job_tasks` so each job's outcome is seen (idempotent)."""
        if not isinstance(worker.job_tasks, JobTasks):
            worker.job_tasks = JobTasks(self, worker, worker.job_tasks)
        self.queue = str(worker.queue_name)

    def stamp(
        self, function: str, args: Any, kwargs: dict[str, Any], fire_id: str | None = None
    ) -> Callable[[], None]:
        """The `enqueued` (or `scheduled`) event of a job about to be written (`kwargs` with
        arq's options), stamped now, before the write (a worker may start the job before the
        write returns), as a push to call once arq took the job (never for a duplicate id).
        The push never raises (`emit` does not); one that could not be prepared (counted)
        pushes nothing."""
        try:
            eta, defer_by = kwargs.get("_defer_until"), kwargs.get("_defer_by")
            if eta is None and defer_by:
                if not isinstance(defer_by, datetime.timedelta):
                    defer_by = datetime.timedelta(seconds=float(defer_by))
                if defer_by > datetime.timedelta(0):
                    eta = datetime.datetime.now(datetime.timezone.utc) + defer_by
            fields: dict[str, Any] = {"queue": kwargs["_queue_name"], "worker": worker_id()}
            if fire_id:
                fields["fire_id"] = fire_id
            if eta is not None:
                fields["extra"] = {"eta": eta.isoformat()}
            fields["kwargs"] = {k: v for k, v in kwargs.items() if k not in RESERVED}
            event = (K.ENQUEUED if eta is None else K.SCHEDULED, kwargs["_job_id"], function)
            agent = self.adapter.agent
            if agent is None:
                return functools.partial(self.emit, *event, args=args, **fields)
            record = agent.prepare(*event, engine=self.adapter.engine, args=args, **fields)
            return functools.partial(agent.emit_prepared, record)
        except Exception:
            count_error(self, "caught an error preparing an arq enqueue's event")
            return lambda: None

    def instrument_pool(self, pool: Any) -> None:
        """Wrap `pool.enqueue_job` on this instance (idempotent)."""
        original = pool.enqueue_job
        if getattr(original, "z4j_capture", None) is not None:
            return

        @functools.wraps(original)
        async def enqueue_job(function: str, *args: Any, **kwargs: Any) -> Any:
            # what arq would choose, chosen here first so that the event carries them
            kwargs["_job_id"] = kwargs.get("_job_id") or uuid.uuid4().hex
            kwargs["_queue_name"] = kwargs.get("_queue_name") or pool.default_queue_name
            push = self.stamp(function, args, kwargs)
            job = await original(function, *args, **kwargs)
            if job is not None:
                push()
            return job

        enqueue_job.z4j_capture = self  # type: ignore[attr-defined]
        pool.enqueue_job = enqueue_job


def install(adapter: ArqAdapter, emit: Callable[..., None]) -> JobCapture:
    """Create the capture for `adapter`; wraps a producer's pool at once (a worker's hooks are
    installed by `z4j_arq.worker`). Idempotent per adapter."""
    if adapter.capture is None:
        adapter.capture = JobCapture(adapter, emit)
        if adapter.pool is not None:
            adapter.capture.instrument_pool(adapter.pool)
    return adapter.capture  # type: ignore[no-any-return]
