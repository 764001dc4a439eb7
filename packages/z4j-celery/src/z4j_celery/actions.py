"""The operator's actions on Celery: retry, cancel (revoke), purge, and queue depth.

Owns sending a finished task's original message again (the result backend's extended meta, else
this host's kept original); `app.control.revoke` for cancel (`terminate=True` for a running task
in a prefork pool); each queue's ready count and purge through kombu's channel calls, the same
on every transport (passive `queue_declare`; `queue_purge`: never what a worker has reserved).

`scheduled` is not reported: Celery keeps a countdown or ETA task in the memory of the worker
that reserved it, and `inspect().scheduled()` waits for every worker, too costly for a report
every few seconds. Runs on the agent's command threads and report loop; blocks on the broker.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from z4j_core import adapter as kit
from z4j_core.adapter import ActionOutcome, CancelRequest, RetryRequest, done, failed, unavailable
from z4j_core.wire import QueueDepth

if TYPE_CHECKING:
    from z4j_celery.adapter import CeleryAdapter

#: How long `revoke` waits for a first worker to confirm it (a solo worker answers only between
#: two tasks).
REVOKE_REPLY_SECONDS = 10.0
#: Celery states of a task that has not finished (a retry of one needs `force`).
UNFINISHED = frozenset({"PENDING", "RECEIVED", "STARTED", "RETRY"})


def pack(app: Any, args: Any, kwargs: Any) -> bytes:
    """A failed task's args and kwargs in the app's own task serializer, for the local store."""
    from kombu.serialization import dumps

    content_type, encoding, body = dumps([list(args or ()), dict(kwargs or {})],
                                         serializer=app.conf.task_serializer)  # fmt: skip
    data = body if isinstance(body, bytes) else str(body).encode(encoding or "utf-8")
    return f"{content_type}\n{encoding}\n".encode() + data


def unpack(payload: bytes) -> tuple[list[Any], dict[str, Any]]:
    from kombu.serialization import loads

    content_type, encoding, body = payload.split(b"\n", 2)
    args, kwargs = loads(body, content_type.decode(), encoding.decode(),
                         accept={content_type.decode()})  # fmt: skip
    return list(args), dict(kwargs)


def stored_results(app: Any) -> Any:
    """The app's result backend when it stores results by task id (a key-value store or a
    database), else None: the RPC backend sends results to the caller and cannot be asked."""
    backend = app.backend
    key_value = kit.instance_of(backend, "celery.backends.base", "BaseKeyValueStoreBackend")
    database = kit.instance_of(backend, "celery.backends.database", "DatabaseBackend")
    return backend if key_value or database else None


def backend_keeps_arguments(app: Any) -> bool:
    """Whether the result backend keeps each task's name and arguments (`result_extended`)."""
    return bool(app.conf.result_extended) and stored_results(app) is not None


def from_backend(app: Any, task_id: str) -> tuple[dict[str, Any] | None, str]:
    """The extended result meta of `task_id` (name, args, kwargs, queue, status), or None, why."""
    if not backend_keeps_arguments(app):
        return None, "the app has no result backend with result_extended=True"
    meta = app.backend.get_task_meta(task_id)
    if not meta or meta.get("name") is None or meta.get("args") is None:
        return None, "the result backend holds no record of it (expired, or never stored)"
    for field in ("args", "kwargs"):
        if isinstance(meta.get(field), bytes):  # database backends store them encoded
            meta[field] = app.backend.decode(meta[field])
    return meta, ""


def retry(adapter: CeleryAdapter, request: RetryRequest) -> ActionOutcome:
    meta, why_not = from_backend(adapter.app, request.task_id)
    if meta is not None:
        if meta.get("status") in UNFINISHED and not request.force:
            return unavailable(f"Celery says the task is {meta['status']}, not finished")
        name, queue = str(meta["name"]), meta.get("queue") or request.queue
        args, kwargs = list(meta["args"] or ()), dict(meta["kwargs"] or {})
    elif request.original is not None:
        original = request.original
        name, queue = original.task, original.queue or request.queue
        args, kwargs = unpack(original.payload)
    else:
        return unavailable(f"no original message: {why_not}, and this host kept none")
    options: dict[str, Any] = {"headers": {"z4j_retry_of": request.task_id}}
    if queue:
        options["queue"] = queue
    try:
        sent = adapter.app.send_task(name, args, kwargs, task_id=request.new_task_id, **options)
    except Exception as exc:
        return failed(f"Celery could not publish {name!r}: {type(exc).__name__}: {exc}")
    return done(str(sent.id))


def cancel(adapter: CeleryAdapter, request: CancelRequest) -> ActionOutcome:
    """Revoke: every worker that answers keeps the id and discards the task when it gets it
    (queued, or held for its ETA); with `terminate`, the pool child running it gets SIGTERM."""
    backend = stored_results(adapter.app)
    state = None if backend is None else backend.get_task_meta(request.task_id).get("status")
    if state in ("SUCCESS", "FAILURE", "REVOKED"):
        return unavailable(f"Celery's result backend says the task already ended ({state})")
    try:
        replies = adapter.app.control.revoke(
            request.task_id, terminate=request.terminate, signal="SIGTERM",
            reply=True, limit=1, timeout=REVOKE_REPLY_SECONDS,
        )  # fmt: skip
    except Exception as exc:
        return failed(f"Celery could not broadcast the revoke: {type(exc).__name__}: {exc}")
    if not replies:
        return failed(
            f"no Celery worker confirmed the revoke within {REVOKE_REPLY_SECONDS:g}s (none is "
            "running, or all are busy in a solo pool): a worker that starts later would run it"
        )
    # A task held for its ETA is discarded (and reported) only when its time comes: the agent
    # records `revoked` now.
    return done(recorded=False)


def queue_names(adapter: CeleryAdapter) -> list[str]:
    """The queues this process consumes (a worker's `-Q`), else every queue the app declares."""
    queues = adapter.app.amqp.queues
    return sorted(str(name) for name in (queues.consume_from or queues))


def queue_depths(adapter: CeleryAdapter) -> list[QueueDepth]:
    depths = []
    with adapter.app.connection_for_read() as connection:
        channel = connection.channel()
        try:
            for name in queue_names(adapter):
                try:
                    ready = channel.queue_declare(queue=name, passive=True).message_count
                except connection.channel_errors:
                    # Not declared (Redis: empty). On AMQP the broker closed the channel.
                    ready = 0
                    _close(channel)
                    channel = connection.channel()
                depths.append(QueueDepth(name=name, ready=int(ready)))
        finally:
            _close(channel)
    return depths


def purge(adapter: CeleryAdapter, queue: str) -> ActionOutcome:
    known = queue_names(adapter)
    if queue not in known:
        return unavailable(f"{queue!r} is not a queue of this app ({', '.join(known)})")
    try:
        with adapter.app.connection_for_write() as connection:
            channel = connection.channel()
            try:
                removed = channel.queue_purge(queue)
            except connection.channel_errors as exc:
                return unavailable(f"the broker has no queue {queue!r}: {exc}")
            finally:
                _close(channel)
    except Exception as exc:
        return failed(f"Celery could not purge {queue!r}: {type(exc).__name__}: {exc}")
    return done(count=int(removed or 0))


def _close(channel: Any) -> None:
    with contextlib.suppress(Exception):
        channel.close()
