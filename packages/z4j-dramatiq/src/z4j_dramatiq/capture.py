"""Lifecycle capture: `Z4JMiddleware`, Dramatiq's middleware hooks mapped onto z4j's kinds
(the table: docs/engines/dramatiq.md).

Dramatiq calls each hook synchronously in the thread that caused it: every hook is cheap and
never raises (counted here, before Dramatiq's guard would log it as critical). Never touches the
broker; no I/O but one small file write per failed message the broker keeps no readable copy of.

Retries decides in its own `after_process_message`, before or after ours (the user orders the
middleware), so a failed attempt is held per worker thread until the decision shows there: its
message re-enqueued (`retried`, at ack), nacked (`failed`, `dead_lettered`), or acked (`failed`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.common import q_name
from dramatiq.middleware import Retries

from z4j_core.adapter import current_fire_id, dotted, error_fields, guarded, worker_id
from z4j_core.wire import LifecycleKind
from z4j_dramatiq.actions import is_redis

K = LifecycleKind


def _ignore(*args: Any, **kwargs: Any) -> None:
    """The emit of a middleware that is not connected to an agent yet."""


def _raised(message: Any) -> dict[str, Any]:
    """The `exception` and `message` fields of the exception Dramatiq stored on `message`."""
    exc = getattr(message, "_exception", None)
    if exc is None:
        return {}
    return {"exception": dotted(type(exc)), "message": str(exc) or type(exc).__name__}


class Z4JMiddleware(dramatiq.Middleware):
    """Reports every message's lifecycle to the process's z4j agent, binding itself to the agent
    on the first hook Dramatiq calls with its broker. Options: `z4j_dramatiq.instrument`'s."""

    def __init__(self, *, start: bool | None = None, **options: Any) -> None:
        self.options = options
        self.start = start
        self.adapter: Any = None  # the `DramatiqAdapter` once bound to a broker
        self.emit: Callable[..., None] = _ignore
        self.errors = 0
        self._local = threading.local()  # per worker thread: the message it is processing

    def disconnect(self) -> None:
        self.emit = _ignore

    @property
    def agent(self) -> Any:
        return None if self.adapter is None else self.adapter.agent

    # -- where the worker's agent starts and drains (z4j_dramatiq.worker) ----------------------

    @guarded
    def bind(self, broker: Any, *_: Any) -> None:
        """Instrument `broker` with this middleware, once (the first hook that names it).
        `instrument` sets `adapter` before anything in it could call a hook again."""
        if self.adapter is None:
            from z4j_dramatiq import instrument

            instrument(broker, start=self.start, middleware=self, **self.options)

    after_declare_actor = after_declare_queue = after_process_boot = before_worker_boot = bind

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        if self.agent is not None and self.start is not False:
            self.agent.start()  # idempotent; a worker process's agent is normally running already

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        # Dramatiq's worker processes leave through multiprocessing, which skips `atexit`:
        # drain here, after the worker's threads have finished their messages.
        if self.agent is not None:
            self.agent.stop()

    @guarded
    def before_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        self.bind(broker)
        local = self._current(message)
        if local is not None:
            # The message this thread is processing is enqueued again: Retries' retry.
            local.retry_delay = delay or 0
            return
        fields: dict[str, Any] = {"args": message.args, "kwargs": message.kwargs}
        if delay:
            fields["extra"] = {"eta": message.options.get("eta") or time.time() * 1000 + delay}
        if fire_id := current_fire_id():
            fields["fire_id"] = fire_id
        retries = message.options.get("retries", 0)
        self._event(K.SCHEDULED if delay else K.ENQUEUED, message, retries=retries, **fields)

    @guarded
    def enqueue_failed(self, message: Any, exc: BaseException) -> None:
        """z4j's own enqueue raised after `before_enqueue` reported the message."""
        reason = f"the broker refused the message: {exc}"
        self._event(K.REJECTED, message, exception=dotted(type(exc)), message=reason)

    @guarded
    def before_process_message(self, broker: Any, message: Any) -> None:
        local = self._local
        local.message_id, local.began = message.message_id, time.perf_counter()
        local.error = local.retry_delay = None
        local.retries = retries = message.options.get("retries", 0)
        self._event(K.STARTED, message, args=message.args, kwargs=message.kwargs, retries=retries)

    @guarded
    def after_process_message(
        self, broker: Any, message: Any, result: Any = None, exception: BaseException | None = None
    ) -> None:
        local = self._current(message)
        runtime = None if local is None else time.perf_counter() - local.began
        if exception is None:
            retries = getattr(self._local, "retries", 0)
            self._event(K.SUCCEEDED, message, runtime=runtime, retries=retries)
        elif local is not None:  # reported at ack or nack
            local.error = {"runtime": runtime, **error_fields(exception)}

    @guarded
    def after_skip_message(self, broker: Any, message: Any) -> None:
        fields = {"message": "a middleware skipped the message", **_raised(message)}
        self._event(K.SKIPPED, message, retries=message.options.get("retries", 0), **fields)

    @guarded
    def after_ack(self, broker: Any, message: Any) -> None:
        error = self._finish(message)
        if error is None:
            return
        local = self._local
        if local.retry_delay is not None:
            extra = {"delay_ms": local.retry_delay}
            self._event(K.RETRIED, message, retries=local.retries + 1, extra=extra, **error)
        else:  # no Retries middleware: Dramatiq acks a failed message
            self._event(K.FAILED, message, retries=local.retries, **error)
            self._keep(message, dead_lettered=False)

    @guarded
    def after_nack(self, broker: Any, message: Any) -> None:
        error = self._finish(message)
        if error is not None:
            self._event(K.FAILED, message, retries=self._local.retries, **error)
        self._event(K.DEAD_LETTERED, message, **_raised(message))
        self._keep(message, dead_lettered=True)

    def _current(self, message: Any) -> Any:
        """This thread's state when it is processing `message`, else None."""
        local = self._local
        return local if getattr(local, "message_id", None) == message.message_id else None

    def _finish(self, message: Any) -> dict[str, Any] | None:
        """Forget that this thread processes `message`; the failure held for it, if any."""
        local = self._current(message)
        if local is None:
            return None
        error: dict[str, Any] | None = local.error
        local.message_id = local.error = None
        return error

    def _keep(self, message: Any, dead_lettered: bool) -> None:
        """Keep a failed message on this host for a retry, unless the broker keeps it where a
        retry can read it back (a Redis dead-letter queue)."""
        adapter = self.adapter
        if adapter is not None and not (dead_lettered and is_redis(adapter.broker)):
            queue = q_name(message.queue_name)
            adapter.keep_original(message.message_id, message.actor_name, message.encode(), queue)

    def _event(self, kind: LifecycleKind, message: Any, /, **fields: Any) -> None:
        """Emit for `message` (positional: `fields` may carry a `message` text of their own).
        The queue is the canonical one: never the delay (`.DQ`) or dead-letter (`.XQ`) queue."""
        queue = q_name(message.queue_name)
        self.emit(
            kind, message.message_id, message.actor_name, queue=queue, worker=worker_id(), **fields
        )


def find(broker: Any) -> Z4JMiddleware | None:
    return next((m for m in broker.middleware if isinstance(m, Z4JMiddleware)), None)


def install(adapter: Any, emit: Callable[..., None]) -> Z4JMiddleware:
    """Connect `emit` to the broker's Z4JMiddleware, adding one if it has none: before Retries,
    so its `after_*` hooks run after Retries decided (not needed, but logs read better)."""
    broker = adapter.broker
    middleware = adapter.capture or find(broker)
    if middleware is None:
        middleware = Z4JMiddleware()
        middleware.adapter = adapter  # bound already: the hooks add_middleware calls are no-ops
        has_retries = any(isinstance(m, Retries) for m in broker.middleware)
        broker.add_middleware(middleware, before=Retries if has_retries else None)
    middleware.adapter, middleware.emit = adapter, emit
    adapter.capture = middleware
    return middleware
