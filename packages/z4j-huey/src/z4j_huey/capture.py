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
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from z4j_core.wire import LifecycleKind
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

#: Bound on per-task state kept between signals (start times, errors awaiting `retrying`).
MAX_IN_FLIGHT = 10_000

_HOST = socket.gethostname()
_worker = f"{_HOST}:{os.getpid()}"


def _refresh_worker() -> None:
    global _worker
    _worker = f"{_HOST}:{os.getpid()}"


os.register_at_fork(after_in_child=_refresh_worker)

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


def dotted(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


ErrorInfo = tuple[str, str, str | None]  # exception type, message, traceback


class SignalCapture:
    """The receiver connected to one Huey instance's signals; calls `emit` for each event."""

    def __init__(self, adapter: HueyAdapter, emit: Callable[..., None]) -> None:
        self.adapter = adapter
        self.emit = emit
        self.queue = adapter.queue
        self.utc = bool(getattr(adapter.huey, "utc", True))
        self.errors = 0
        self._started: dict[str, float] = {}
        self._held: dict[str, tuple[LifecycleKind, ErrorInfo]] = {}
        self._local = threading.local()  # the fire id of an enqueue z4j is running now
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

    # -- the fire id of an enqueue in progress (set by z4j_huey.enqueue) ------------------------

    def set_fire_id(self, fire_id: str | None) -> None:
        self._local.fire_id = fire_id

    # -- one method per signal ---------------------------------------------------------------

    def _event(self, kind: LifecycleKind, task: Any, **fields: Any) -> None:
        self.emit(kind, task.id, task_name(task), queue=self.queue, worker=_worker, **fields)

    def _enqueued(self, task: Any, args: tuple[Any, ...]) -> None:
        kind = K.ENQUEUED
        extra = None
        eta = task.eta
        if eta is not None and eta > self._now():
            kind = K.SCHEDULED
            extra = {"eta": eta.isoformat()}
        fire_id = getattr(self._local, "fire_id", None)
        self.emit(
            kind,
            task.id,
            task_name(task),
            queue=self.queue,
            worker=_worker,
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
        started = self._started
        if len(started) >= MAX_IN_FLIGHT:
            started.clear()
        started[task.id] = time.perf_counter()
        self.emit(
            K.STARTED,
            task.id,
            task_name(task),
            queue=self.queue,
            worker=_worker,
            args=task.args,
            kwargs=task.kwargs,
            retries=task.retries,
        )

    def _runtime(self, task: Any) -> float | None:
        began = self._started.pop(task.id, None)
        return None if began is None else time.perf_counter() - began

    def _complete(self, task: Any, args: tuple[Any, ...]) -> None:
        self._event(K.SUCCEEDED, task, runtime=self._runtime(task), retries=task.retries)

    def _error(self, task: Any, args: tuple[Any, ...]) -> None:
        exc = args[0] if args else None
        if isinstance(exc, BaseException):
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            info: ErrorInfo = (dotted(type(exc)), str(exc), tb)
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
            self._started.pop(task.id, None)
            return
        self._failed_or_held(task, K.CANCELLED, info)

    def _failed_or_held(self, task: Any, final: LifecycleKind, info: ErrorInfo) -> None:
        """Huey retries when `task.retries` is non-zero: then wait for `retrying`."""
        if task.retries:
            held = self._held
            if len(held) >= MAX_IN_FLIGHT:
                held.clear()
            held[task.id] = (final, info)
            return
        exception, message, tb = info
        fields: dict[str, Any] = {"exception": exception, "message": message, "retries": 0}
        if tb is not None:
            fields["traceback"] = tb
        self._event(final, task, runtime=self._runtime(task), **fields)

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


def uninstall(adapter: HueyAdapter) -> None:
    capture = adapter.capture
    if capture is None:
        return
    adapter.huey.disconnect_signal(capture)
    adapter.capture = None
