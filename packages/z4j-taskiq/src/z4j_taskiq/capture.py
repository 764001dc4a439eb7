"""Lifecycle capture: `Z4JMiddleware`, taskiq's middleware hooks mapped onto z4j's kinds.

`pre_send` and `post_send` where a task is kicked (`enqueued`), `pre_execute` in the worker
(`started`), `on_error` and `post_execute` after it ran (`succeeded`, `failed` or `retried`);
the broker's `startup` and `shutdown` start and drain the agent (`z4j_taskiq.worker`). Every
hook is cheap and never raises (an exception is counted here), and does no I/O but one small
file write per failed task: its message, kept on this host for a retry (taskiq keeps none).

taskiq's retry middlewares decide in their own `on_error` (before or after ours) by kicking the
same task id again with a `_retries` label. An attempt is `retried` when that re-kick happened
while it ran (in its asyncio task), or when its result's error was replaced by `NoResultError`
(`no_result_on_retry`); otherwise `failed`.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.exceptions import NoResultError

from z4j_core.adapter import InFlight, count_error, error_fields, guarded, worker_id
from z4j_core.wire import LifecycleKind
from z4j_taskiq import actions, worker
from z4j_taskiq.adapter import TaskiqAdapter
from z4j_taskiq.enqueue import current_fire_id

K = LifecycleKind
ENGINE = TaskiqAdapter.engine

#: The attempt running in this asyncio task. taskiq calls `pre_execute`, `on_error`, the retry
#: middleware's re-kick and `post_execute` of one message in one asyncio task, so this finds the
#: attempt without trusting the message's labels, which a retry middleware's kicker mutates.
current_attempt: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "z4j_taskiq_attempt", default=None
)


@dataclass(eq=False, slots=True)
class _Attempt:
    """One run of a task in this worker, from `pre_execute` to `post_execute`."""

    task_id: str
    retries: int
    began: float
    outer: _Attempt | None  # an attempt this one runs inside (a broker that kicks in place)
    exception: BaseException | None = None
    resent_at: float = 0.0  # when a retry middleware re-kicked it: another worker may run it now


class Z4JMiddleware(TaskiqMiddleware):
    """Add it to a broker once, in every process that imports the broker.

    start: None (default) starts the agent's link when the broker starts in this process (as
        `taskiq worker` and `taskiq scheduler` do); False leaves it to you
        (`z4j_taskiq.agent_of(broker).start()`).
    options: agent options (`brain_url`, `token`, `app_name`, ...); they win over `Z4J_*`.
    """

    def __init__(self, *, start: bool | None = None, **options: Any) -> None:
        super().__init__()
        self.start_policy = start
        self.options = options
        self.adapter: Any = None  # the `TaskiqAdapter`, once `set_broker` ran
        self.agent: Any = None
        self.emit: Callable[..., None] | None = None  # connected by `TaskiqAdapter.install_capture`
        self.errors = 0
        self.queue: str | None = None
        self._sending: InFlight[Any] = InFlight()  # prepared `enqueued` records, until sent

    def set_broker(self, broker: Any) -> None:
        super().set_broker(broker)
        worker.attach_middleware(self, broker)

    startup = worker.on_broker_startup  # the agent starts and drains with the broker
    shutdown = worker.on_broker_shutdown

    # -- the producer side -------------------------------------------------------------------
    # The event is prepared (and time-stamped) before the kick, because a worker can start the
    # task before `post_send` runs, and pushed only after it, so a kick that raised is never
    # reported as enqueued. When this process starts the task first, `pre_execute` pushes it,
    # so the agent's sequence numbers keep `enqueued` before `started`.

    def pre_send(self, message: Any) -> Any:
        try:
            attempt = current_attempt.get()
            if self.emit is None:
                pass
            elif attempt is not None and attempt.task_id == message.task_id:
                attempt.resent_at = time.time()  # a retry middleware re-kicks the running attempt
            else:
                schedule_id = message.labels.get("schedule_id")
                extra = {"schedule_id": str(schedule_id)} if schedule_id else None
                fields = self._fields(message, args=message.args, kwargs=message.kwargs)
                fields.update(fire_id=current_fire_id.get(), extra=extra)
                record = self.agent.prepare(
                    K.ENQUEUED, message.task_id, message.task_name, engine=ENGINE, **fields
                )
                self._sending.put(message.task_id, record)
        except Exception:
            count_error(self, "caught an error in the taskiq middleware's pre_send")
        return message

    @guarded
    def post_send(self, message: Any) -> None:
        self._push_enqueued(message.task_id)

    def _push_enqueued(self, task_id: str) -> None:
        record = self._sending.pop(task_id, None)
        if record is not None:
            self.agent.emit_prepared(record)

    def _fields(self, message: Any, **fields: Any) -> dict[str, Any]:
        """An event's `queue`, `worker` and `retries` (the runs of this task id before, by
        taskiq's retry label), then `fields`."""
        labels = message.labels
        try:
            retries = int(labels.get("_retries") or 0)
        except (TypeError, ValueError):
            retries = 0
        queue = labels.get("queue_name") or self.queue
        return {"queue": queue, "worker": worker_id(), "retries": retries, **fields}

    # -- the worker side ---------------------------------------------------------------------

    def pre_execute(self, message: Any) -> Any:
        try:
            emit = self.emit
            if emit is not None:
                self._push_enqueued(message.task_id)
                fields = self._fields(message, args=message.args, kwargs=message.kwargs)
                outer, began = current_attempt.get(), time.perf_counter()
                current_attempt.set(_Attempt(message.task_id, fields["retries"], began, outer))
                emit(K.STARTED, message.task_id, message.task_name, **fields)
        except Exception:
            count_error(self, "caught an error in the taskiq middleware's pre_execute")
        return message

    @guarded
    def on_error(self, message: Any, result: Any, exception: BaseException) -> None:
        attempt = current_attempt.get()
        if attempt is not None and attempt.task_id == message.task_id:
            attempt.exception = exception

    @guarded
    def post_execute(self, message: Any, result: Any) -> None:
        emit = self.emit
        if emit is None:
            return
        task_id, task_name = message.task_id, message.task_name
        attempt = current_attempt.get()
        if attempt is not None and attempt.task_id == task_id:
            current_attempt.set(attempt.outer)
            runtime = time.perf_counter() - attempt.began
            fields = self._fields(message, runtime=runtime, retries=attempt.retries)
        else:
            attempt, fields = None, self._fields(message, runtime=None)
        error = result.error
        exception = error if attempt is None or attempt.exception is None else attempt.exception
        if exception is None or isinstance(exception, NoResultError):
            # NoResultError raised by the task itself means "ran, keep no result".
            emit(K.SUCCEEDED, task_id, task_name, **fields)
            return
        replaced = error is not exception and isinstance(error, NoResultError)
        resent_at = 0.0 if attempt is None else attempt.resent_at
        if replaced or resent_at:
            fields["retries"] += 1
        fields.update(error_fields(exception))
        if resent_at:
            # Stamped when the retry was kicked: the next attempt may already have run in
            # another worker, and its events must not look older than this one.
            record = self.agent.prepare(K.RETRIED, task_id, task_name, engine=ENGINE, **fields)
            self.agent.emit_prepared((record[0], resent_at, *record[2:]))
        elif replaced:
            emit(K.RETRIED, task_id, task_name, **fields)
        else:
            emit(K.FAILED, task_id, task_name, **fields)
            adapter = self.adapter  # taskiq keeps no copy a retry could read: this host does
            if adapter is not None:
                payload = actions.pack(adapter.broker, message)
                adapter.keep_original(task_id, task_name, payload, fields["queue"])
