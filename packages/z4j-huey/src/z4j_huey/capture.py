"""Lifecycle capture: Huey's signals mapped onto z4j's lifecycle kinds.

Owns one signal receiver per instrumented Huey instance. Huey sends every signal synchronously in
the thread, greenlet or process that caused it (the producer for `enqueued`, a worker for the
rest), so the receiver must be cheap and must never raise: every exception is caught and counted
here, before Huey's own receiver guard would log it. No I/O: `emit` appends to a memory queue.

Huey signals an error before it decides to retry, so an error with retries left is held until
Huey's `retrying` signal and reported as `retried` (with the exception), never as `failed`.
"""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Any

from z4j_core import adapter as kit
from z4j_core.adapter import Emit, InFlight, Stopwatch, guarded, worker_id
from z4j_core.wire import LifecycleKind
from z4j_huey.enqueue import huey_now

if TYPE_CHECKING:
    from z4j_huey.adapter import HueyAdapter

K = LifecycleKind
#: Signals of a run that ended on an error Huey does not hand over, each with its kind (when it
#: is final), the `huey.exceptions` class, and the message.
_ENDINGS = {
    "timeout": (K.FAILED, "TaskTimeout", "timed out after {task.timeout}s"),
    "locked": (K.LOCKED, "TaskLockedException", "a lock the task needs was held"),
    "rate-limited": (K.SKIPPED, "RateLimitExceeded", "the task's rate limit was exceeded"),
    "canceled": (K.CANCELLED, "CancelExecution", "cancelled by the application"),
}


class SignalCapture:
    """The receiver connected to one Huey instance's signals; calls `emit` for each event."""

    def __init__(self, adapter: HueyAdapter, emit: Emit) -> None:
        self.adapter = adapter
        self.emit = emit
        self.queue = adapter.queue
        self.errors = 0
        self._started = Stopwatch()
        self._held: InFlight[dict[str, Any]] = InFlight()  # the error of a task Huey will retry

    @guarded  # Huey calls this as receiver(signal, task, *args); it must never raise.
    def __call__(self, signal: str, task: Any, *args: Any, **kwargs: Any) -> None:
        # Names are huey.signals', spelled here so that importing this needs no huey.
        if signal in _ENDINGS:
            final, name, message = _ENDINGS[signal]
            error = {"exception": f"huey.exceptions.{name}", "message": message.format(task=task)}
            self._ended(task, final, **error)
            return
        handler = getattr(self, "_on_" + signal, None)  # signal `x`: `_on_x`
        if handler is not None:
            handler(task, args)

    def disconnect(self) -> None:
        self.adapter.huey.disconnect_signal(self)

    def _event(self, kind: LifecycleKind, task: Any, **fields: Any) -> None:
        name = f"{type(task).__module__}.{type(task).__name__}"  # Huey's registry name
        # A field left None (no fire id, no eta) is dropped by the agent.
        self.emit(kind, task.id, name, queue=self.queue, worker=worker_id(), **fields)
        if kind is K.FAILED:  # always final: keep its message on this host (Huey keeps none)
            payload = self.adapter.huey.serialize_task(task)
            self.adapter.keep_original(task.id, name, payload, self.queue)

    def _on_enqueued(self, task: Any, args: tuple[Any, ...]) -> None:
        later = task.eta is not None and task.eta > huey_now(self.adapter.huey)
        self._event(
            K.SCHEDULED if later else K.ENQUEUED,
            task,
            args=task.args,
            kwargs=task.kwargs,
            retries=task.retries,
            fire_id=kit.current_fire_id(),
            extra={"eta": task.eta.isoformat()} if later else None,
        )

    def _on_scheduled(self, task: Any, args: tuple[Any, ...]) -> None:
        extra = None if task.eta is None else {"eta": task.eta.isoformat()}
        self._event(K.SCHEDULED, task, retries=task.retries, extra=extra)

    def _on_executing(self, task: Any, args: tuple[Any, ...]) -> None:
        self._started.start(task.id)
        self._event(K.STARTED, task, args=task.args, kwargs=task.kwargs, retries=task.retries)

    def _on_complete(self, task: Any, args: tuple[Any, ...]) -> None:
        self._event(K.SUCCEEDED, task, runtime=self._started.stop(task.id), retries=task.retries)

    def _on_error(self, task: Any, args: tuple[Any, ...]) -> None:
        # Huey passes the exception; should it not, an unraised Exception stands in.
        exc = next((a for a in args if isinstance(a, BaseException)), Exception("the task raised"))
        self._ended(task, K.FAILED, **kit.error_fields(exc))

    def _ended(self, task: Any, final: LifecycleKind, **error: str) -> None:
        """Report a run that ended in `error` as `final`, or, when Huey will retry it (non-zero
        `task.retries`), hold `error` for its `retrying` signal. A task a pre-execute hook
        cancelled is never retried, whatever `retries` says."""
        if task.retries and not (final is K.CANCELLED and _cancelled_before_running()):
            self._held.put(task.id, error)
            return
        self._event(final, task, runtime=self._started.stop(task.id), retries=0, **error)

    def _on_retrying(self, task: Any, args: tuple[Any, ...]) -> None:
        error = self._held.pop(task.id, {})
        retries = max(int(task.retries) - 1, 0)
        self._event(K.RETRIED, task, runtime=self._started.stop(task.id), retries=retries, **error)

    def _on_revoked(self, task: Any, args: tuple[Any, ...]) -> None:
        self._event(K.REVOKED, task)

    def _on_expired(self, task: Any, args: tuple[Any, ...]) -> None:
        expires = getattr(task, "expires_resolved", None)
        extra = None if expires is None else {"expired_at": expires.isoformat()}
        self._event(K.EXPIRED, task, extra=extra)

    def _on_interrupted(self, task: Any, args: tuple[Any, ...]) -> None:
        message = "the consumer stopped while the task ran; Huey does not run it again"
        runtime = self._started.stop(task.id)
        self._event(K.FAILED, task, runtime=runtime, exception="huey.interrupted", message=message)


def _cancelled_before_running() -> bool:
    """Whether the CancelExecution being handled came from a pre-execute hook."""
    frames = traceback.walk_tb(sys.exc_info()[2])
    return any(frame.f_code.co_name == "_run_pre_execute" for frame, _ in frames)


def install(adapter: HueyAdapter, emit: Emit) -> SignalCapture:
    """Connect a receiver for every Huey signal of `adapter.huey`; idempotent per adapter."""
    if adapter.capture is None:
        adapter.capture = SignalCapture(adapter, emit)
        adapter.huey.signal()(adapter.capture)  # no names: every signal
    return adapter.capture  # type: ignore[no-any-return]
