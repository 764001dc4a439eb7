"""Lifecycle capture: Huey's signals mapped onto z4j's lifecycle kinds.

Owns one signal receiver per instrumented Huey instance. Huey sends every signal synchronously in
the thread, greenlet or process that caused it (the producer for `enqueued`, a worker for the
rest), so the receiver must be cheap and must never raise: every exception is caught and counted
here, before Huey's own receiver guard would log it. It never does I/O and never touches the
broker; the agent's `emit` only appends to an in-memory queue.

Huey signals an error before it decides to retry, so an error with retries left is held until
Huey's `retrying` signal and reported as `retried` (with the exception), never as `failed`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from z4j_core.adapter import (
    MAX_CAPTURE_IN_FLIGHT,
    Stopwatch,
    current_fire_id,
    error_fields,
    worker_id,
)
from z4j_core.wire import LifecycleKind

if TYPE_CHECKING:
    from z4j_huey.adapter import HueyAdapter

K = LifecycleKind

# Huey's signal names (huey.signals); spelled here so importing this module needs no huey.
SIGNAL_ENQUEUED = "enqueued"
SIGNAL_SCHEDULED = "scheduled"
SIGNAL_EXECUTING = "executing"
SIGNAL_COMPLETE = "complete"
SIGNAL_ERROR = "error"
SIGNAL_RETRYING = "retrying"
SIGNAL_REVOKED = "revoked"
SIGNAL_EXPIRED = "expired"
SIGNAL_LOCKED = "locked"
SIGNAL_CANCELED = "canceled"
SIGNAL_INTERRUPTED = "interrupted"
SIGNAL_TIMEOUT = "timeout"
SIGNAL_RATE_LIMITED = "rate-limited"

_names: dict[type, str] = {}


def task_name(task: Any) -> str:
    """Huey's registry name for a task: `module.name` (`myapp.tasks.send_mail`)."""
    cls = type(task)
    name = _names.get(cls)
    if name is None:
        name = f"{cls.__module__}.{cls.__name__}"
        if len(_names) < 4096:
            _names[cls] = name
    return name


ErrorInfo = tuple[str, str, str | None]  # exception type, message, traceback


class SignalCapture:
    """The receiver connected to one Huey instance's signals; calls `emit` for each event."""

    def __init__(self, adapter: HueyAdapter, emit: Callable[..., None]) -> None:
        self.adapter = adapter
        self.emit = emit
        self.queue = adapter.queue
        self.utc = bool(getattr(adapter.huey, "utc", True))
        self.errors = 0
        self._started = Stopwatch()
        self._held: dict[str, tuple[LifecycleKind, ErrorInfo]] = {}
        self._dispatch: dict[str, Callable[[Any, tuple[Any, ...]], None]] = {
            SIGNAL_ENQUEUED: self._enqueued,
            SIGNAL_SCHEDULED: self._scheduled,
            SIGNAL_EXECUTING: self._executing,
            SIGNAL_COMPLETE: self._complete,
            SIGNAL_ERROR: self._error,
            SIGNAL_RETRYING: self._retrying,
            SIGNAL_REVOKED: self._revoked,
            SIGNAL_EXPIRED: self._expired,
            SIGNAL_LOCKED: self._locked,
            SIGNAL_CANCELED: self._canceled,
            SIGNAL_INTERRUPTED: self._interrupted,
            SIGNAL_TIMEOUT: self._timeout,
            SIGNAL_RATE_LIMITED: self._rate_limited,
        }

    # Huey calls this as receiver(signal, task, *args); it must never raise.
    def __call__(self, signal: str, task: Any, *args: Any, **kwargs: Any) -> None:
        try:
            handler = self._dispatch.get(signal)
            if handler is not None:
                handler(task, args)
        except Exception:
            self.errors += 1

    def disconnect(self) -> None:
        self.adapter.huey.disconnect_signal(self)

    # -- one method per signal ---------------------------------------------------------------

    def _event(self, kind: LifecycleKind, task: Any, **fields: Any) -> None:
        self.emit(kind, task.id, task_name(task), queue=self.queue, worker=worker_id(), **fields)

    def _enqueued(self, task: Any, args: tuple[Any, ...]) -> None:
        kind = K.ENQUEUED
        extra = None
        eta = task.eta
        if eta is not None and eta > self._now():
            kind = K.SCHEDULED
            extra = {"eta": eta.isoformat()}
        fire_id = current_fire_id()
        self._event(
            kind,
            task,
            args=task.args,
            kwargs=task.kwargs,
            retries=task.retries,
            **({"fire_id": fire_id} if fire_id else {}),
            **({"extra": extra} if extra else {}),
        )

    def _scheduled(self, task: Any, args: tuple[Any, ...]) -> None:
        eta = task.eta
        self._event(
            K.SCHEDULED,
            task,
            retries=task.retries,
            **({"extra": {"eta": eta.isoformat()}} if eta is not None else {}),
        )

    def _executing(self, task: Any, args: tuple[Any, ...]) -> None:
        self._started.start(task.id)
        self._event(K.STARTED, task, args=task.args, kwargs=task.kwargs, retries=task.retries)

    def _runtime(self, task: Any) -> float | None:
        return self._started.stop(task.id)

    def _complete(self, task: Any, args: tuple[Any, ...]) -> None:
        self._event(K.SUCCEEDED, task, runtime=self._runtime(task), retries=task.retries)

    def _error(self, task: Any, args: tuple[Any, ...]) -> None:
        exc = args[0] if args else None
        if isinstance(exc, BaseException):
            fields = error_fields(exc)
            info: ErrorInfo = (fields["exception"], fields["message"], fields.get("traceback"))
        else:
            info = ("Exception", "the task raised", None)
        self._failed_or_held(task, K.FAILED, info)

    def _timeout(self, task: Any, args: tuple[Any, ...]) -> None:
        info = ("huey.exceptions.TaskTimeout", f"timed out after {task.timeout}s", None)
        self._failed_or_held(task, K.FAILED, info)

    def _locked(self, task: Any, args: tuple[Any, ...]) -> None:
        info = ("huey.exceptions.TaskLockedException", "a lock the task needs was held", None)
        self._failed_or_held(task, K.LOCKED, info)

    def _rate_limited(self, task: Any, args: tuple[Any, ...]) -> None:
        info = ("huey.exceptions.RateLimitExceeded", "the task's rate limit was exceeded", None)
        self._failed_or_held(task, K.SKIPPED, info)

    def _canceled(self, task: Any, args: tuple[Any, ...]) -> None:
        info = ("huey.exceptions.CancelExecution", "cancelled by the application", None)
        if _cancelled_before_running():
            # A pre-execute hook cancelled it: Huey never retries that, whatever `retries` says.
            self._event(K.CANCELLED, task, message=info[1], exception=info[0])
            self._started.stop(task.id)
            return
        self._failed_or_held(task, K.CANCELLED, info)

    def _failed_or_held(self, task: Any, final: LifecycleKind, info: ErrorInfo) -> None:
        """Huey retries when `task.retries` is non-zero: then wait for `retrying`."""
        if task.retries:
            held = self._held
            if len(held) >= MAX_CAPTURE_IN_FLIGHT:
                held.clear()
            held[task.id] = (final, info)
            return
        exception, message, tb = info
        fields: dict[str, Any] = {"exception": exception, "message": message, "retries": 0}
        if tb is not None:
            fields["traceback"] = tb
        self._event(final, task, runtime=self._runtime(task), **fields)
        if final is K.FAILED:
            self._keep(task)

    def _keep(self, task: Any) -> None:
        """Keep a finally-failed task's message on this host, for a retry (Huey keeps none)."""
        try:
            payload = self.adapter.huey.serialize_task(task)
        except Exception:
            self.errors += 1
            return
        self.adapter.keep_original(task.id, task_name(task), payload, self.adapter.queue)

    def _retrying(self, task: Any, args: tuple[Any, ...]) -> None:
        held = self._held.pop(task.id, None)
        fields: dict[str, Any] = {"retries": max(int(task.retries) - 1, 0)}
        if held is not None:
            exception, message, tb = held[1]
            fields.update(exception=exception, message=message)
            if tb is not None:
                fields["traceback"] = tb
        self._event(K.RETRIED, task, runtime=self._runtime(task), **fields)

    def _revoked(self, task: Any, args: tuple[Any, ...]) -> None:
        self._event(K.REVOKED, task)

    def _expired(self, task: Any, args: tuple[Any, ...]) -> None:
        expires = getattr(task, "expires_resolved", None)
        extra = {"expired_at": expires.isoformat()} if expires is not None else None
        self._event(K.EXPIRED, task, **({"extra": extra} if extra else {}))

    def _interrupted(self, task: Any, args: tuple[Any, ...]) -> None:
        self._event(
            K.FAILED,
            task,
            runtime=self._runtime(task),
            exception="huey.interrupted",
            message="the consumer stopped while the task ran; Huey does not run it again",
        )
        self._keep(task)

    def _now(self) -> datetime.datetime:
        if self.utc:
            return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        return datetime.datetime.now()


def _cancelled_before_running() -> bool:
    """Whether the CancelExecution being handled came from a pre-execute hook."""
    import sys

    exc = sys.exc_info()[1]
    tb = exc.__traceback__ if exc is not None else None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_run_pre_execute":
            return True
        tb = tb.tb_next
    return False


def install(adapter: HueyAdapter, emit: Callable[..., None]) -> SignalCapture:
    """Connect a receiver for every Huey signal of `adapter.huey`; idempotent per adapter."""
    if adapter.capture is not None:
        return adapter.capture  # type: ignore[no-any-return]
    capture = SignalCapture(adapter, emit)
    adapter.huey.signal()(capture)  # no names: every signal
    adapter.capture = capture
    return capture
