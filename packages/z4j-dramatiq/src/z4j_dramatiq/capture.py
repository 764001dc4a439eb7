"""Lifecycle capture: `Z4JMiddleware`, Dramatiq's middleware hooks mapped onto z4j's kinds.

Owns one middleware object per instrumented broker. Dramatiq calls each hook synchronously in
the thread that caused it (the producer's thread for `before_enqueue`, a worker thread for the
rest), so every hook is cheap and never raises: exceptions are caught and counted here, before
Dramatiq's own guard would log them as critical. It never touches the broker, and does no I/O
(the agent's `emit` only appends to an in-memory queue) except one small file write per failed
message whose broker keeps no copy a retry can read (`Adapter.keep_original`).

Where the Retries middleware's decision is seen. A failed attempt is not reported when the actor
raises: Retries decides in its own `after_process_message`, which may run before or after ours
(Dramatiq runs `after_*` hooks in reverse order of the middleware list, and the user chooses that
order). What Retries decided is visible later in the same worker thread, whatever the order:
it re-enqueues the same message id (our `before_enqueue` sees the id the thread is processing),
or it fails the message so the worker nacks it (dead letter), or, with no Retries middleware, the
worker acks it. So the failed attempt is held per thread and reported at `after_ack` (`retried`
when re-enqueued, else `failed`) or at `after_nack` (`failed`, then `dead_lettered`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq

from z4j_core.adapter import current_fire_id, dotted, error_fields, worker_id
from z4j_core.wire import LifecycleKind

K = LifecycleKind


def canonical_queue(queue_name: str) -> str:
    """`default.DQ` and `default.XQ` -> `default` (Dramatiq's delay and dead-letter queues)."""
    if queue_name.endswith((".DQ", ".XQ")):
        return queue_name[:-3]
    return queue_name


def _ignore(*args: Any, **kwargs: Any) -> None:
    """The emit of a middleware that is not connected to an agent yet."""


class Z4JMiddleware(dramatiq.Middleware):
    """Reports every message's lifecycle to the process's z4j agent.

    `broker.add_middleware(z4j_dramatiq.Z4JMiddleware())` (or `z4j_dramatiq.instrument(broker)`,
    which adds it). Options are the agent's (`brain_url`, `token`, `app_name`, ...; `Z4J_*`
    variables otherwise) plus `start` (see `z4j_dramatiq.instrument`). The middleware connects
    itself to the agent on the first hook Dramatiq calls with its broker.
    """

    def __init__(self, *, start: bool | None = None, **options: Any) -> None:
        self.options = options
        self.start = start
        self.adapter: Any = None  # the `DramatiqAdapter` once bound to a broker
        self.emit: Callable[..., None] = _ignore
        self.errors = 0
        self._local = threading.local()  # per worker thread: the message it is processing
        self._binding = False

    # -- connecting to the agent ---------------------------------------------------------------

    def bind(self, broker: Any) -> None:
        """Instrument `broker` with this middleware, once (the first hook that names it)."""
        if self.adapter is not None or self._binding:
            return
        self._binding = True
        try:
            from z4j_dramatiq import instrument

            instrument(broker, start=self.start, middleware=self, **self.options)
        finally:
            self._binding = False

    def connect(self, adapter: Any, emit: Callable[..., None]) -> None:
        self.adapter = adapter
        self.emit = emit

    def disconnect(self) -> None:
        self.emit = _ignore

    @property
    def agent(self) -> Any:
        return None if self.adapter is None else self.adapter.agent

    # -- where the worker's agent starts and drains ---------------------------------------------

    def after_declare_actor(self, broker: Any, actor_name: str) -> None:
        self._bind_quietly(broker)

    def after_declare_queue(self, broker: Any, queue_name: str) -> None:
        self._bind_quietly(broker)

    def after_process_boot(self, broker: Any) -> None:
        self._bind_quietly(broker)

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        self._bind_quietly(broker)

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        agent = self.agent
        if agent is not None and self.start is not False:
            agent.start()  # idempotent; a worker process's agent is normally running already

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        # Dramatiq's worker processes leave through multiprocessing, which skips `atexit`:
        # drain here, after the worker's threads have finished their messages.
        agent = self.agent
        if agent is not None:
            agent.stop()

    def _bind_quietly(self, broker: Any) -> None:
        if self.adapter is None:
            try:
                self.bind(broker)
            except Exception:
                self.errors += 1

    # -- producer side -------------------------------------------------------------------------

    def before_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        try:
            if self.adapter is None:
                self.bind(broker)
            local = self._local
            if getattr(local, "message_id", None) == message.message_id:
                # The message this thread is processing is enqueued again: Retries' retry.
                local.retry_delay = delay or 0
                return
            options = message.options
            fields: dict[str, Any] = {
                "args": message.args,
                "kwargs": message.kwargs,
                "retries": options.get("retries", 0),
            }
            kind = K.ENQUEUED
            if delay:
                kind = K.SCHEDULED
                fields["extra"] = {"eta": options.get("eta") or time.time() * 1000 + delay}
            fire_id = current_fire_id()
            if fire_id:
                fields["fire_id"] = fire_id
            self._event(kind, message, **fields)
        except Exception:
            self.errors += 1

    def enqueue_failed(self, message: Any, exc: BaseException) -> None:
        """z4j's own enqueue raised after `before_enqueue` reported the message."""
        try:
            self._event(
                K.REJECTED,
                message,
                exception=dotted(type(exc)),
                message=f"the broker refused the message: {exc}",
            )
        except Exception:
            self.errors += 1

    # -- worker side ---------------------------------------------------------------------------

    def before_process_message(self, broker: Any, message: Any) -> None:
        try:
            local = self._local
            local.message_id = message.message_id
            local.began = time.perf_counter()
            local.error = None
            local.retry_delay = None
            retries = message.options.get("retries", 0)
            local.retries = retries
            self._event(
                K.STARTED, message, args=message.args, kwargs=message.kwargs, retries=retries
            )
        except Exception:
            self.errors += 1

    def _runtime(self, message: Any) -> float | None:
        local = self._local
        if getattr(local, "message_id", None) != message.message_id:
            return None
        began: float = local.began
        return time.perf_counter() - began

    def after_process_message(
        self,
        broker: Any,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        try:
            runtime = self._runtime(message)
            if exception is None:
                retries = getattr(self._local, "retries", 0)
                self._event(K.SUCCEEDED, message, runtime=runtime, retries=retries)
                return
            local = self._local
            if getattr(local, "message_id", None) == message.message_id:
                local.error = (error_fields(exception), runtime)  # reported at ack or nack
        except Exception:
            self.errors += 1

    def after_skip_message(self, broker: Any, message: Any) -> None:
        try:
            exc = getattr(message, "_exception", None)
            fields: dict[str, Any] = {
                "retries": message.options.get("retries", 0),
                "message": str(exc) if exc else "a middleware skipped the message",
            }
            if exc is not None:
                fields["exception"] = dotted(type(exc))
            self._event(K.SKIPPED, message, **fields)
        except Exception:
            self.errors += 1

    def after_ack(self, broker: Any, message: Any) -> None:
        try:
            local = self._local
            if getattr(local, "message_id", None) != message.message_id:
                return
            local.message_id = None
            held = local.error
            if held is None:
                return
            local.error = None
            info, runtime = held
            if local.retry_delay is not None:
                self._failure(K.RETRIED, message, info, runtime, local.retries + 1)
            else:  # no Retries middleware: Dramatiq acks a failed message
                self._failure(K.FAILED, message, info, runtime, local.retries)
                self._keep(message, dead_lettered=False)
        except Exception:
            self.errors += 1

    def after_nack(self, broker: Any, message: Any) -> None:
        try:
            local = self._local
            exc = getattr(message, "_exception", None)
            if getattr(local, "message_id", None) == message.message_id:
                local.message_id = None
                held = local.error
                local.error = None
                if held is not None:
                    info, runtime = held
                    self._failure(K.FAILED, message, info, runtime, local.retries)
            fields: dict[str, Any] = {}
            if exc is not None:
                fields["exception"] = dotted(type(exc))
                fields["message"] = str(exc) or type(exc).__name__
            self._event(K.DEAD_LETTERED, message, **fields)
            self._keep(message, dead_lettered=True)
        except Exception:
            self.errors += 1

    def _keep(self, message: Any, dead_lettered: bool) -> None:
        """Keep a failed message on this host for a retry, unless the broker keeps it where a
        retry can read it back (a Redis dead-letter queue)."""
        from z4j_dramatiq import actions

        adapter = self.adapter
        if adapter is None or (dead_lettered and actions.keeps_dead_letters(adapter.broker)):
            return
        queue = canonical_queue(message.queue_name)
        adapter.keep_original(message.message_id, message.actor_name, message.encode(), queue)

    def _failure(
        self,
        kind: LifecycleKind,
        message: Any,
        error: dict[str, Any],
        runtime: float | None,
        retries: int,
    ) -> None:
        fields: dict[str, Any] = {"runtime": runtime, "retries": retries, **error}
        if kind is K.RETRIED:
            fields["extra"] = {"delay_ms": self._local.retry_delay}
        self._event(kind, message, **fields)

    def _event(self, kind: LifecycleKind, message: Any, /, **fields: Any) -> None:
        """Emit for `message` (positional: `fields` may carry a `message` text of their own)."""
        queue = canonical_queue(message.queue_name)
        self.emit(
            kind, message.message_id, message.actor_name, queue=queue, worker=worker_id(), **fields
        )


def find(broker: Any) -> Z4JMiddleware | None:
    for middleware in getattr(broker, "middleware", ()):
        if isinstance(middleware, Z4JMiddleware):
            return middleware
    return None


def install(adapter: Any, emit: Callable[..., None]) -> Z4JMiddleware:
    """Connect `emit` to the broker's Z4JMiddleware, adding one if the broker has none.

    An added middleware goes just before Retries, so its `after_*` hooks run after Retries
    decided (the capture does not depend on that order, but logs read better).
    """
    broker = adapter.broker
    middleware = adapter.capture if adapter.capture is not None else find(broker)
    if middleware is None:
        middleware = Z4JMiddleware()
        middleware.adapter = adapter  # bound already: the hooks add_middleware calls are no-ops
        from dramatiq.middleware import Retries

        has_retries = any(isinstance(m, Retries) for m in broker.middleware)
        broker.add_middleware(middleware, before=Retries if has_retries else None)
    middleware.connect(adapter, emit)
    adapter.capture = middleware
    return middleware
