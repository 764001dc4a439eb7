"""Lifecycle capture: Celery's signals mapped onto z4j's lifecycle kinds.

Owns one set of signal receivers per instrumented app. Celery sends each signal synchronously
where the thing happened: `after_task_publish` in the publishing process, `task_received`,
`task_revoked`, `task_rejected` and `task_unknown` in the worker's main process, and
`task_prerun` / `task_success` / `task_failure` / `task_retry` wherever the task runs (a pool
child under prefork, a thread, or the main process under solo). In the main process a receiver
hands the event to the agent (`emit`); in a prefork pool child it prepares the event with the
inherited agent and sends it through the worker's relay (`z4j_core.agent.relay`). Celery's own task
events (`-E`, `worker_send_task_events`) are never switched on.

Receivers must be cheap and never raise: every exception is caught and counted here. They do no
I/O except the relay's one non-blocking send in a pool child, and, where the result backend does
not keep a failed task's arguments, one small file write per failure (its original message, kept
on this host for a retry: `Adapter.keep_original`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from z4j_celery import actions
from z4j_core.adapter import MAX_CAPTURE_IN_FLIGHT, Stopwatch, dotted
from z4j_core.wire import LifecycleKind

if TYPE_CHECKING:
    from z4j_celery.adapter import CeleryAdapter

K = LifecycleKind

_DISPATCH_UID = "z4j-celery"


def result_size(value: Any) -> str:
    """How big a result is, without serializing it: characters of a string, bytes of a bytes
    object, items of a container, characters of the repr of a number."""
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float:
        return str(len(repr(value)))
    try:
        return str(len(value))
    except Exception:
        return ""


def _ids(request: Any, pid: int) -> dict[str, str]:
    """The pid of the process that saw the event, and the task's parent and root ids."""
    extra = {"pid": str(pid)}
    if type(request) is dict:
        parent, root = request.get("parent_id"), request.get("root_id")
    else:
        parent = getattr(request, "parent_id", None)
        root = getattr(request, "root_id", None)
    if parent:
        extra["parent_id"] = str(parent)
    if root:
        extra["root_id"] = str(root)
    return extra


def _queue(delivery_info: Any) -> str | None:
    if not delivery_info:
        return None
    queue = delivery_info.get("routing_key")
    return str(queue) if queue else None


class SignalCapture:
    """The receivers connected to one app's signals; calls `out` for each event."""

    def __init__(self, adapter: CeleryAdapter, emit: Callable[..., None]) -> None:
        self.adapter = adapter
        self.app = adapter.app
        self.emit = emit
        self.out: Callable[..., None] = emit  # replaced in a prefork pool child
        self.errors = 0
        self.pid = os.getpid()
        self.capture_results = adapter.capture_results
        self._keep_originals: bool | None = None  # decided at the first failure
        self._started = Stopwatch()
        # task id -> (when its publish began, sender, body, headers, routing key)
        self._publishing: dict[str, tuple[float, Any, Any, Any, Any]] = {}
        self._reported_early: set[str] = set()  # enqueued reported at receipt, before published
        # Held only to report one task's `enqueued` once and before its `received` (no I/O).
        self._order = threading.Lock()
        self.fire_ids: set[str] = set()  # fire ids being published by z4j right now
        self.agent: Any = adapter.agent  # lets `enqueued` keep its publish time
        self._relay: Any = None
        self._connected: list[tuple[Any, Callable[..., None]]] = []

    def keep_originals(self) -> bool:
        """Whether this host keeps failed tasks' original messages: only when the result backend
        does not keep their arguments (read once the app is configured, at the first failure)."""
        if self._keep_originals is None:
            self._keep_originals = not actions.backend_keeps_arguments(self.app)
        return self._keep_originals

    # -- wiring ---------------------------------------------------------------------------------

    def connect(self) -> None:
        from celery import signals

        pairs: list[tuple[Any, Callable[..., None]]] = [
            (signals.before_task_publish, self.on_publishing),
            (signals.after_task_publish, self.on_published),
            (signals.task_received, self.on_received),
            (signals.task_prerun, self.on_prerun),
            (signals.task_success, self.on_success),
            (signals.task_failure, self.on_failure),
            (signals.task_retry, self.on_retry),
            (signals.task_revoked, self.on_revoked),
            (signals.task_rejected, self.on_rejected),
            (signals.task_unknown, self.on_unknown),
            (signals.task_internal_error, self.on_internal_error),
        ]
        for signal, receiver in pairs:
            signal.connect(receiver, weak=False, dispatch_uid=(_DISPATCH_UID, id(self)))
            self._connected.append((signal, receiver))

    def disconnect(self) -> None:
        for signal, receiver in self._connected:
            signal.disconnect(receiver, dispatch_uid=(_DISPATCH_UID, id(self)))
        self._connected.clear()

    def in_pool_child(self, relay: Any, agent: Any) -> None:
        """Route events through `relay`: this process is a prefork pool child of the worker."""
        prepare = agent.prepare
        send = relay.send
        engine = self.adapter.engine

        def relayed(kind: Any, task_id: str, task_name: str, **fields: Any) -> None:
            send(prepare(kind, task_id, task_name, engine=engine, **fields))

        self.pid = os.getpid()
        self._started = Stopwatch()
        self._publishing.clear()
        self._reported_early.clear()
        self.agent = agent
        self._relay = relay
        self.out = relayed

    def _out_at(self, at: float | None, kind: Any, task_id: str, name: str, **fields: Any) -> None:
        """`out`, but stamped `at` (when the event really happened) where the agent allows."""
        agent = self.agent
        if at is None or agent is None:
            self.out(kind, task_id, name, **fields)
            return
        record = agent.prepare(kind, task_id, name, engine=self.adapter.engine, **fields)
        record = (record[0], at, *record[2:])
        if self._relay is not None:
            self._relay.send(record)
        else:
            agent.emit_prepared(record)

    # -- the publisher ---------------------------------------------------------------------------

    def on_publishing(
        self, sender: Any = None, body: Any = None, headers: Any = None, **kw: Any
    ) -> None:
        """Note when the publish began and what it publishes: `after_task_publish` fires once
        the broker has the message, by which time a fast worker may already have received and
        started it (see `on_received`)."""
        try:
            task_id = headers.get("id") if headers else None
            if task_id:
                publishing = self._publishing
                if len(publishing) >= MAX_CAPTURE_IN_FLIGHT:
                    publishing.clear()
                publishing[task_id] = (time.time(), sender, body, headers, kw.get("routing_key"))
        except Exception:
            self.errors += 1

    def on_published(
        self, sender: Any = None, body: Any = None, headers: Any = None, **kw: Any
    ) -> None:
        try:
            if not headers or "id" not in headers:
                return  # task protocol 1 (Celery 3 clients): nothing reliable to report
            task_id = headers["id"]
            with self._order:
                publishing = self._publishing.pop(task_id, None)
                if publishing is not None:
                    self._report_published(*publishing)
                elif task_id in self._reported_early:
                    self._reported_early.discard(task_id)  # `on_received` reported it
                else:
                    self._report_published(None, sender, body, headers, kw.get("routing_key"))
        except Exception:
            self.errors += 1

    def _report_published(
        self, began: float | None, sender: Any, body: Any, headers: Any, routing_key: Any
    ) -> None:
        task_id = headers["id"]
        args = kwargs = None
        if type(body) is tuple and len(body) >= 2:
            args, kwargs = body[0], body[1]
        fields: dict[str, Any] = {"queue": routing_key or None}
        eta = headers.get("eta")
        extra = _ids(headers, self.pid)
        if eta:
            extra["eta"] = str(eta)
        if headers.get("expires"):
            extra["expires"] = str(headers["expires"])
        if task_id in self.fire_ids:
            fields["fire_id"] = task_id
        retries = headers.get("retries")
        if retries:
            fields["retries"] = int(retries)
        self._out_at(
            began,
            K.SCHEDULED if eta else K.ENQUEUED,
            task_id,
            headers.get("task") or str(sender),
            args=args,
            kwargs=kwargs,
            extra=extra,
            **fields,
        )

    # -- the worker's main process ---------------------------------------------------------------

    def on_received(self, sender: Any = None, request: Any = None, **kw: Any) -> None:
        try:
            if getattr(sender, "app", self.app) is not self.app:
                return
            # Published by this very process (a z4j command in the worker) and received before
            # `after_task_publish` ran: report `enqueued` now, so that this agent's sequence
            # numbers keep the task's events in the order they happened.
            if request.id in self._publishing:
                with self._order:
                    publishing = self._publishing.pop(request.id, None)
                    if publishing is not None:
                        reported = self._reported_early
                        if len(reported) >= MAX_CAPTURE_IN_FLIGHT:
                            reported.clear()
                        reported.add(request.id)
                        self._report_published(*publishing)
            extra = _ids(request, self.pid)
            if request.eta is not None:
                extra["eta"] = request.eta.isoformat()
            self.out(
                K.RECEIVED,
                request.id,
                request.name,
                queue=_queue(request.delivery_info),
                worker=request.hostname,
                args=request.args,
                kwargs=request.kwargs,
                extra=extra,
            )
        except Exception:
            self.errors += 1

    def on_revoked(
        self,
        sender: Any = None,
        request: Any = None,
        terminated: bool = False,
        signum: Any = None,
        expired: bool = False,
        **kw: Any,
    ) -> None:
        try:
            if getattr(sender, "app", self.app) is not self.app:
                return
            extra = _ids(request, self.pid)
            if terminated:
                extra["terminated"] = "true"
                if signum is not None:
                    extra["signum"] = str(signum)
            if expired:
                kind, message = K.EXPIRED, "expired before a worker started it"
            elif terminated:
                kind, message = K.REVOKED, f"terminated while running (signal {signum})"
            else:
                kind, message = K.REVOKED, "revoked before it ran"
            self.out(
                kind,
                request.id,
                getattr(request, "task", None) or getattr(sender, "name", ""),
                queue=_queue(getattr(request, "delivery_info", None)),
                worker=getattr(request, "hostname", None),
                runtime=self._runtime(request.id),
                message=message,
                extra=extra,
            )
        except Exception:
            self.errors += 1

    def on_rejected(
        self, sender: Any = None, message: Any = None, exc: Any = None, **kw: Any
    ) -> None:
        try:
            headers = getattr(message, "headers", None) or {}
            task_id = headers.get("id")
            if not task_id:
                return
            fields: dict[str, Any] = {"message": "the worker rejected the message"}
            if exc is not None:
                fields.update(exception=dotted(type(exc)), message=str(exc))
            self.out(
                K.REJECTED,
                task_id,
                headers.get("task") or "",
                queue=_queue(getattr(message, "delivery_info", None)),
                worker=getattr(sender, "hostname", None),
                extra=_ids(headers, self.pid),
                **fields,
            )
        except Exception:
            self.errors += 1

    def on_unknown(
        self, sender: Any = None, name: Any = None, id: Any = None, message: Any = None, **kw: Any
    ) -> None:
        try:
            headers = getattr(message, "headers", None) or {}
            self.out(
                K.REJECTED,
                str(id),
                str(name),
                queue=_queue(getattr(message, "delivery_info", None)),
                worker=getattr(sender, "hostname", None),
                exception="celery.exceptions.NotRegistered",
                message=f"unknown task {name!r}: this worker does not have it (message dropped)",
                extra={**_ids(headers, self.pid), "unknown_task": "true"},
            )
        except Exception:
            self.errors += 1

    # -- wherever the task runs --------------------------------------------------------------------

    def on_prerun(
        self, sender: Any = None, task_id: Any = None, task: Any = None, args: Any = None,
        kwargs: Any = None, **kw: Any,
    ) -> None:  # fmt: skip
        try:
            if task.app is not self.app:
                return
            self._started.start(task_id)
            request = task.request
            # args and kwargs went with `received` (every pool's main process reports it).
            self.out(
                K.STARTED,
                task_id,
                task.name,
                queue=_queue(request.delivery_info),
                worker=request.hostname,
                retries=request.retries or 0,
                extra=_ids(request, self.pid),
            )
        except Exception:
            self.errors += 1

    def _runtime(self, task_id: str) -> float | None:
        return self._started.stop(task_id)

    def on_success(self, sender: Any = None, result: Any = None, **kw: Any) -> None:
        try:
            if sender.app is not self.app:
                return
            request = sender.request
            runtime = self._runtime(request.id)
            if kw.get("runtime") is not None:
                runtime = float(kw["runtime"])  # Celery >= 5.7 measures it itself
            extra = {"result_type": dotted(type(result)), "result_size": result_size(result)}
            fields: dict[str, Any] = {}
            if self.capture_results:
                fields["result"] = result
            self.out(
                K.SUCCEEDED,
                request.id,
                sender.name,
                queue=_queue(request.delivery_info),
                worker=request.hostname,
                runtime=runtime,
                retries=request.retries or 0,
                extra=extra,
                **fields,
            )
        except Exception:
            self.errors += 1

    def on_failure(
        self, sender: Any = None, task_id: Any = None, exception: Any = None, einfo: Any = None,
        **kw: Any,
    ) -> None:  # fmt: skip
        try:
            if sender.app is not self.app:
                return
            request = sender.request
            if getattr(request, "id", None) != task_id:
                request = None  # reported by the main process (a lost or timed-out child)
            traceback = getattr(einfo, "traceback", None)
            self.out(
                K.FAILED,
                str(task_id),
                sender.name,
                queue=_queue(getattr(request, "delivery_info", None)),
                worker=getattr(request, "hostname", None),
                runtime=self._runtime(task_id),
                retries=(getattr(request, "retries", 0) or 0),
                exception=dotted(type(exception)),
                message=str(exception),
                extra=_ids(request, self.pid),
                **({"traceback": traceback} if traceback else {}),
            )
            if self.keep_originals():
                payload = actions.pack(self.app, kw.get("args"), kw.get("kwargs"))
                queue = _queue(getattr(request, "delivery_info", None))
                self.adapter.keep_original(str(task_id), sender.name, payload, queue)
        except Exception:
            self.errors += 1

    def on_retry(
        self, sender: Any = None, request: Any = None, reason: Any = None, einfo: Any = None,
        **kw: Any,
    ) -> None:  # fmt: skip
        try:
            if sender.app is not self.app:
                return
            original = getattr(reason, "exc", None)
            exception = dotted(type(original if original is not None else reason))
            traceback = getattr(einfo, "traceback", None)
            extra = _ids(request, self.pid)
            when = getattr(reason, "when", None)
            if when is not None:
                extra["retry_in"] = str(when)
            self.out(
                K.RETRIED,
                request.id,
                sender.name,
                queue=_queue(getattr(request, "delivery_info", None)),
                worker=getattr(request, "hostname", None),
                runtime=self._runtime(request.id),
                retries=(request.retries or 0) + 1,
                exception=exception,
                message=str(reason),
                extra=extra,
                **({"traceback": traceback} if traceback else {}),
            )
        except Exception:
            self.errors += 1

    def on_internal_error(
        self, sender: Any = None, task_id: Any = None, exception: Any = None, einfo: Any = None,
        **kw: Any,
    ) -> None:  # fmt: skip
        try:
            if sender.app is not self.app:
                return
            traceback = getattr(einfo, "traceback", None)
            self.out(
                K.FAILED,
                str(task_id),
                sender.name,
                runtime=self._runtime(task_id),
                exception=dotted(type(exception)),
                message=f"Celery internal error: {exception}",
                extra={"pid": str(self.pid), "internal_error": "true"},
                **({"traceback": traceback} if traceback else {}),
            )
        except Exception:
            self.errors += 1


def install(adapter: CeleryAdapter, emit: Callable[..., None]) -> SignalCapture:
    """Connect the receivers for `adapter.app`; idempotent per adapter."""
    if adapter.capture is not None:
        return adapter.capture  # type: ignore[no-any-return]
    capture = SignalCapture(adapter, emit)
    capture.connect()
    adapter.capture = capture
    return capture
