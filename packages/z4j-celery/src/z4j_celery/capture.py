"""Lifecycle capture: Celery's signals mapped onto z4j's lifecycle kinds.

Owns one set of signal receivers per instrumented app. Celery sends each signal synchronously
where the thing happened: the publish signals in the publisher, `task_received`, `task_revoked`,
`task_rejected` and `task_unknown` in the worker's main process, the others wherever the task
runs (a prefork pool child, a thread, or the main process under solo). In the main process an
event goes to the agent; in a pool child it is prepared with the inherited agent and sent
through the worker's relay (`z4j_core.agent.relay`). Celery's own task events (`-E`) stay off.

Receivers must be cheap and never raise: every exception is caught and counted here. No I/O but
the relay's non-blocking send in a pool child and, where the result backend keeps no arguments,
one small file write per failure (its original, for a retry: `Adapter.keep_original`).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from z4j_celery import actions
from z4j_core.adapter import InFlight, Stopwatch, count_error, current_fire_id, dotted
from z4j_core.wire import LifecycleKind

if TYPE_CHECKING:
    from z4j_celery.adapter import CeleryAdapter

K = LifecycleKind
Receiver = Callable[..., None]

_DISPATCH_UID = "z4j-celery"
#: Celery signal -> the `SignalCapture` method that receives it (filled by `_receiver`).
_RECEIVERS: dict[str, str] = {}


def _receiver(signal: str, of_app: bool = True) -> Callable[[Receiver], Receiver]:
    """Make a method the receiver of `signal`: `z4j_core.adapter.guarded` (it runs inside
    Celery, often inside the user's task), and with `of_app` it ignores another app's sender."""

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
    return {"pid": str(pid), **{k: str(v) for k in ("parent_id", "root_id") if (v := get(k, None))}}


def _queue(carrier: Any) -> str | None:
    """The queue (routing key) a request or message was delivered from."""
    queue = (getattr(carrier, "delivery_info", None) or {}).get("routing_key")
    return str(queue) if queue else None


def _failure(
    exception: Any, einfo: Any = None, message: str | None = None, **fields: Any
) -> dict[str, Any]:
    """`fields` with the failure's exception, message and (when Celery has it) traceback."""
    fields.update(exception=dotted(type(exception)), message=message or str(exception))
    if traceback := getattr(einfo, "traceback", None):
        fields["traceback"] = traceback
    return fields


class SignalCapture:
    """The receivers connected to one app's signals; each event goes out through `_out`."""

    def __init__(self, adapter: CeleryAdapter, emit: Receiver) -> None:
        self.adapter = adapter
        self.app = adapter.app
        self.emit = emit
        self.errors = 0
        self.pid = os.getpid()
        self._keep_originals: bool | None = None  # decided at the first failure
        self._started = Stopwatch()
        # task id -> (when its publish began, its fire id, sender, body, headers, routing key), or
        # None once `on_received` reported its `enqueued` before `after_task_publish` ran
        self._publishing: InFlight[tuple[Any, ...] | None] = InFlight()
        # Held only to report one task's `enqueued` once and before its `received` (no I/O).
        self._order = threading.Lock()
        self.agent: Any = adapter.agent  # lets `enqueued` keep its publish time
        self._relay: Any = None  # set in a prefork pool child

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
        self.pid = os.getpid()
        self._started = Stopwatch()
        self.agent = agent
        self._relay = relay
        self._publishing.clear()

    def _out(
        self, kind: Any, task_id: str, name: str, at: float | None = None, **fields: Any
    ) -> None:
        """Hand an event to the agent (in a pool child, to the relay), stamped `at` (when it
        really happened) where given and the agent allows."""
        agent, relay = self.agent, self._relay
        if relay is None and (at is None or agent is None):
            self.emit(kind, task_id, name, **fields)
            return
        record = agent.prepare(kind, task_id, name, engine=self.adapter.engine, **fields)
        if at is not None:
            record = (record[0], at, *record[2:])
        (agent.emit_prepared if relay is None else relay.send)(record)

    # -- the publisher ---------------------------------------------------------------------------

    @_receiver("before_task_publish")
    def on_publishing(self, sender: Any, body: Any = None, headers: Any = None, **kw: Any) -> None:
        """Note when the publish began and what it publishes: `after_task_publish` fires once
        the broker has the message, by which time a fast worker may already have received and
        started it (see `on_received`)."""
        task_id = headers.get("id") if headers else None
        if task_id:  # a fire's id is its task id, and z4j publishes it in this thread
            fire_id = task_id if current_fire_id() == task_id else None
            noted = (time.time(), fire_id, sender, body, headers, kw.get("routing_key"))
            self._publishing.put(task_id, noted)

    @_receiver("after_task_publish")
    def on_published(self, sender: Any, body: Any = None, headers: Any = None, **kw: Any) -> None:
        if not headers or "id" not in headers:
            return  # task protocol 1 (Celery 3 clients): nothing reliable to report
        task_id = headers["id"]
        with self._order:
            publishing = self._publishing.pop(task_id, ())
            if publishing is not None:  # None: `on_received` reported it
                fire_id = task_id if current_fire_id() == task_id else None
                unnoted = (None, fire_id, sender, body, headers, kw.get("routing_key"))
                self._report_published(publishing or unnoted)

    def _report_published(self, noted: tuple[Any, ...]) -> None:
        began, fire_id, sender, body, headers, queue = noted
        args, kwargs = body[:2] if type(body) is tuple and len(body) >= 2 else (None, None)
        extra = _ids(headers, self.pid)
        extra.update({key: str(headers[key]) for key in ("eta", "expires") if headers.get(key)})
        fields = {"queue": queue or None, "fire_id": fire_id, "args": args, "kwargs": kwargs}
        if headers.get("retries"):
            fields["retries"] = int(headers["retries"])
        kind = K.SCHEDULED if headers.get("eta") else K.ENQUEUED
        name = headers.get("task") or str(sender)
        self._out(kind, headers["id"], name, began, extra=extra, **fields)

    def _task(self, kind: Any, task_id: Any, name: Any, carrier: Any, **fields: Any) -> None:
        """`_out`, with the queue (and, unless given, the worker) read from a request or message."""
        fields.setdefault("worker", getattr(carrier, "hostname", None))
        self._out(kind, task_id, name, queue=_queue(carrier), **fields)

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
                    self._report_published(publishing)
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
        if kw.get("expired"):  # Celery never sends it with `terminated`
            kind, message = K.EXPIRED, "expired before a worker started it"
        elif terminated:
            extra.update(terminated="true", **({} if signum is None else {"signum": str(signum)}))
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
        rejected = {"message": "the worker rejected the message"}
        fields: dict[str, Any] = rejected if exc is None else _failure(exc)
        fields.update(worker=getattr(sender, "hostname", None), extra=_ids(headers, self.pid))
        self._task(K.REJECTED, headers["id"], headers.get("task") or "", message, **fields)

    @_receiver("task_unknown", of_app=False)
    def on_unknown(
        self, sender: Any, name: Any = None, id: Any = None, message: Any = None, **kw: Any
    ) -> None:
        headers = getattr(message, "headers", None) or {}
        why = f"unknown task {name!r}: this worker does not have it (message dropped)"
        extra = {**_ids(headers, self.pid), "unknown_task": "true"}
        fields = {"exception": "celery.exceptions.NotRegistered", "message": why}
        worker = getattr(sender, "hostname", None)
        self._task(K.REJECTED, str(id), str(name), message, worker=worker, extra=extra, **fields)

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
        self._out(K.FAILED, str(task_id), sender.name, extra=extra, **fields)


def install(adapter: CeleryAdapter, emit: Receiver) -> SignalCapture:
    """Connect the receivers for `adapter.app`; idempotent per adapter."""
    if adapter.capture is None:
        capture = SignalCapture(adapter, emit)
        capture.connect()
        adapter.capture = capture
    return adapter.capture  # type: ignore[no-any-return]
