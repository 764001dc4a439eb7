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

import functools
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from z4j_celery import actions
from z4j_core.adapter import InFlight, Stopwatch, count_error, dotted
from z4j_core.wire import LifecycleKind

if TYPE_CHECKING:
    from z4j_celery.adapter import CeleryAdapter

K = LifecycleKind
Receiver = Callable[..., None]

_DISPATCH_UID = "z4j-celery"
#: Celery signal -> the `SignalCapture` method that receives it (filled by `_receiver`).
_RECEIVERS: dict[str, str] = {}


def _receiver(signal: str, of_app: bool = True) -> Callable[[Receiver], Receiver]:
    """Make a method the receiver of `signal`: it catches and counts every exception (it runs
    inside Celery, often inside the user's task), and with `of_app` it ignores a sender of
    another app. Like `z4j_core.adapter.guarded`, with the sender test in the same frame."""

    def wrap(method: Receiver) -> Receiver:
        _RECEIVERS[signal] = method.__name__
        what = f"caught an error in the Celery receiver of {signal}"

        @functools.wraps(method)
        def receiver(self: SignalCapture, sender: Any = None, **kw: Any) -> None:
            try:
                if not of_app or getattr(sender, "app", self.app) is self.app:
                    method(self, sender, **kw)
            except Exception:
                count_error(self, what)

        return receiver

    return wrap


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
    get = request.get if type(request) is dict else functools.partial(getattr, request)
    extra = {"pid": str(pid)}
    for key in ("parent_id", "root_id"):
        value = get(key, None)
        if value:
            extra[key] = str(value)
    return extra


def _queue(carrier: Any) -> str | None:
    """The queue (routing key) a request or message was delivered from."""
    info = getattr(carrier, "delivery_info", None)
    queue = info.get("routing_key") if info else None
    return str(queue) if queue else None


def _failure(
    exception: Any, einfo: Any = None, message: str | None = None, **fields: Any
) -> dict[str, Any]:
    """`fields` with the failure's exception, message and (when Celery has it) traceback."""
    fields["exception"] = dotted(type(exception))
    fields["message"] = str(exception) if message is None else message
    traceback = getattr(einfo, "traceback", None)
    if traceback:
        fields["traceback"] = traceback
    return fields


class SignalCapture:
    """The receivers connected to one app's signals; calls `out` for each event."""

    def __init__(self, adapter: CeleryAdapter, emit: Receiver) -> None:
        self.adapter = adapter
        self.app = adapter.app
        self.out: Receiver = emit  # replaced in a prefork pool child
        self.errors = 0
        self.pid = os.getpid()
        self._keep_originals: bool | None = None  # decided at the first failure
        self._started = Stopwatch()
        # task id -> (when its publish began, sender, body, headers, routing key), or None once
        # `on_received` reported its `enqueued` before `after_task_publish` ran
        self._publishing: InFlight[tuple[float, Any, Any, Any, Any] | None] = InFlight()
        # Held only to report one task's `enqueued` once and before its `received` (no I/O).
        self._order = threading.Lock()
        self.fire_ids: set[str] = set()  # fire ids being published by z4j right now
        self.agent: Any = adapter.agent  # lets `enqueued` keep its publish time
        self._relay: Any = None

    def connect(self, connected: bool = True) -> None:
        """Connect every receiver (with `connected=False`, disconnect them)."""
        from celery import signals

        for name, method in _RECEIVERS.items():
            signal, receiver = getattr(signals, name), getattr(self, method)
            if connected:
                signal.connect(receiver, weak=False, dispatch_uid=(_DISPATCH_UID, id(self)))
            else:
                signal.disconnect(receiver, dispatch_uid=(_DISPATCH_UID, id(self)))

    def disconnect(self) -> None:
        self.connect(connected=False)

    def in_pool_child(self, relay: Any, agent: Any) -> None:
        """Route events through `relay`: this process is a prefork pool child of the worker."""
        prepare, send, engine = agent.prepare, relay.send, self.adapter.engine

        def relayed(kind: Any, task_id: str, task_name: str, **fields: Any) -> None:
            send(prepare(kind, task_id, task_name, engine=engine, **fields))

        self.pid = os.getpid()
        self._started = Stopwatch()
        self._publishing.clear()
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

    @_receiver("before_task_publish")
    def on_publishing(self, sender: Any, body: Any = None, headers: Any = None, **kw: Any) -> None:
        """Note when the publish began and what it publishes: `after_task_publish` fires once
        the broker has the message, by which time a fast worker may already have received and
        started it (see `on_received`)."""
        task_id = headers.get("id") if headers else None
        if task_id:
            noted = (time.time(), sender, body, headers, kw.get("routing_key"))
            self._publishing.put(task_id, noted)

    @_receiver("after_task_publish")
    def on_published(self, sender: Any, body: Any = None, headers: Any = None, **kw: Any) -> None:
        if not headers or "id" not in headers:
            return  # task protocol 1 (Celery 3 clients): nothing reliable to report
        task_id = headers["id"]
        with self._order:
            publishing = self._publishing.pop(task_id, ())
            if publishing is not None:  # None: `on_received` reported it
                unnoted = (None, sender, body, headers, kw.get("routing_key"))
                self._report_published(*(publishing or unnoted))

    def _report_published(
        self, began: float | None, sender: Any, body: Any, headers: Any, routing_key: Any
    ) -> None:
        task_id = headers["id"]
        args, kwargs = body[:2] if type(body) is tuple and len(body) >= 2 else (None, None)
        extra = _ids(headers, self.pid)
        for key in ("eta", "expires"):
            if headers.get(key):
                extra[key] = str(headers[key])
        fields: dict[str, Any] = {"queue": routing_key or None}
        if task_id in self.fire_ids:
            fields["fire_id"] = task_id
        if headers.get("retries"):
            fields["retries"] = int(headers["retries"])
        kind = K.SCHEDULED if headers.get("eta") else K.ENQUEUED
        name = headers.get("task") or str(sender)
        self._out_at(began, kind, task_id, name, args=args, kwargs=kwargs, extra=extra, **fields)

    def _task(self, kind: Any, task_id: Any, name: Any, carrier: Any, **fields: Any) -> None:
        """`out`, with the queue (and, unless given, the worker) read from a request or message."""
        fields.setdefault("worker", getattr(carrier, "hostname", None))
        self.out(kind, task_id, name, queue=_queue(carrier), **fields)

    # -- the worker's main process ---------------------------------------------------------------

    @_receiver("task_received")
    def on_received(self, sender: Any, request: Any = None, **kw: Any) -> None:
        # Published by this very process (a z4j command in the worker) and received before
        # `after_task_publish` ran: report `enqueued` now, so that this agent's sequence
        # numbers keep the task's events in the order they happened.
        if self._publishing.get(request.id):
            with self._order:
                publishing = self._publishing.get(request.id)
                if publishing:
                    self._publishing[request.id] = None
                    self._report_published(*publishing)
        extra = _ids(request, self.pid)
        if request.eta is not None:
            extra["eta"] = request.eta.isoformat()
        fields = {"args": request.args, "kwargs": request.kwargs, "extra": extra}
        self._task(K.RECEIVED, request.id, request.name, request, **fields)

    @_receiver("task_revoked")
    def on_revoked(
        self, sender: Any, request: Any = None, terminated: bool = False, **kw: Any
    ) -> None:
        signum = kw.get("signum")
        extra = _ids(request, self.pid)
        if terminated:
            extra["terminated"] = "true"
            if signum is not None:
                extra["signum"] = str(signum)
        if kw.get("expired"):
            kind, message = K.EXPIRED, "expired before a worker started it"
        elif terminated:
            kind, message = K.REVOKED, f"terminated while running (signal {signum})"
        else:
            kind, message = K.REVOKED, "revoked before it ran"
        name = getattr(request, "task", None) or getattr(sender, "name", "")
        fields = {"runtime": self._started.stop(request.id), "message": message, "extra": extra}
        self._task(kind, request.id, name, request, **fields)

    @_receiver("task_rejected", of_app=False)
    def on_rejected(self, sender: Any, message: Any = None, exc: Any = None, **kw: Any) -> None:
        headers = getattr(message, "headers", None) or {}
        if not headers.get("id"):
            return
        refused = {"message": "the worker rejected the message"}
        fields: dict[str, Any] = refused if exc is None else _failure(exc)
        fields["worker"] = getattr(sender, "hostname", None)
        fields["extra"] = _ids(headers, self.pid)
        self._task(K.REJECTED, headers["id"], headers.get("task") or "", message, **fields)

    @_receiver("task_unknown", of_app=False)
    def on_unknown(
        self, sender: Any, name: Any = None, id: Any = None, message: Any = None, **kw: Any
    ) -> None:
        headers = getattr(message, "headers", None) or {}
        why = f"unknown task {name!r}: this worker does not have it (message dropped)"
        fields: dict[str, Any] = {"exception": "celery.exceptions.NotRegistered", "message": why}
        fields["extra"] = {**_ids(headers, self.pid), "unknown_task": "true"}
        worker = getattr(sender, "hostname", None)
        self._task(K.REJECTED, str(id), str(name), message, worker=worker, **fields)

    # -- wherever the task runs --------------------------------------------------------------------

    @_receiver("task_prerun")
    def on_prerun(self, sender: Any, task_id: Any = None, task: Any = None, **kw: Any) -> None:
        self._started.start(task_id)
        request = task.request
        # args and kwargs went with `received` (every pool's main process reports it).
        fields = {"retries": request.retries or 0, "extra": _ids(request, self.pid)}
        self._task(K.STARTED, task_id, task.name, request, **fields)

    @_receiver("task_success")
    def on_success(self, sender: Any, result: Any = None, **kw: Any) -> None:
        request = sender.request
        runtime = self._started.stop(request.id)
        if kw.get("runtime") is not None:
            runtime = float(kw["runtime"])  # Celery >= 5.7 measures it itself
        extra = {"result_type": dotted(type(result)), "result_size": result_size(result)}
        fields = {"runtime": runtime, "retries": request.retries or 0, "extra": extra}
        if self.adapter.capture_results:
            fields["result"] = result
        self._task(K.SUCCEEDED, request.id, sender.name, request, **fields)

    @_receiver("task_failure")
    def on_failure(
        self, sender: Any, task_id: Any = None, exception: Any = None, einfo: Any = None, **kw: Any
    ) -> None:
        request = sender.request
        if getattr(request, "id", None) != task_id:
            request = None  # reported by the main process (a lost or timed-out child)
        fields = _failure(exception, einfo, runtime=self._started.stop(task_id))
        fields.update(retries=getattr(request, "retries", 0) or 0, extra=_ids(request, self.pid))
        self._task(K.FAILED, str(task_id), sender.name, request, **fields)
        if self._keep_originals is None:  # only when the result backend keeps no arguments
            self._keep_originals = not actions.backend_keeps_arguments(self.app)
        if self._keep_originals:
            payload = actions.pack(self.app, kw.get("args"), kw.get("kwargs"))
            self.adapter.keep_original(str(task_id), sender.name, payload, _queue(request))

    @_receiver("task_retry")
    def on_retry(
        self, sender: Any, request: Any = None, reason: Any = None, einfo: Any = None, **kw: Any
    ) -> None:
        original = getattr(reason, "exc", None)
        extra = _ids(request, self.pid)
        if getattr(reason, "when", None) is not None:
            extra["retry_in"] = str(reason.when)
        fields = _failure(reason if original is None else original, einfo, str(reason))
        fields.update(runtime=self._started.stop(request.id), retries=(request.retries or 0) + 1)
        self._task(K.RETRIED, request.id, sender.name, request, extra=extra, **fields)

    @_receiver("task_internal_error")
    def on_internal_error(
        self, sender: Any, task_id: Any = None, exception: Any = None, einfo: Any = None, **kw: Any
    ) -> None:
        why = f"Celery internal error: {exception}"
        fields = _failure(exception, einfo, why, runtime=self._started.stop(task_id))
        extra = {"pid": str(self.pid), "internal_error": "true"}
        self.out(K.FAILED, str(task_id), sender.name, extra=extra, **fields)


def install(adapter: CeleryAdapter, emit: Receiver) -> SignalCapture:
    """Connect the receivers for `adapter.app`; idempotent per adapter."""
    if adapter.capture is not None:
        return adapter.capture  # type: ignore[no-any-return]
    capture = SignalCapture(adapter, emit)
    capture.connect()
    adapter.capture = capture
    return capture
