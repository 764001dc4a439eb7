"""Actions on Huey tasks and its queue (docs/actions.md), with Huey's own calls.

retry: Huey keeps no failed message, so the capture keeps each finally-failed task's message
(Huey's own serialization) in the agent's local store on that host; a retry enqueues a new task
of the same class with the same arguments, under the brain's new id.
cancel: `revoke_by_id` (once: the consumer skips the task when it dequeues it, or when it is due
if scheduled). Huey cannot stop a running task, so `terminate` is not advertised.
purge: the storage's `flush_queue` (ready messages only; the schedule and results stay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from z4j_core.adapter import ActionOutcome, CancelRequest, RetryRequest, done, unavailable
from z4j_core.wire import QueueDepth

if TYPE_CHECKING:
    from z4j_huey.adapter import HueyAdapter


def retry(adapter: HueyAdapter, request: RetryRequest) -> ActionOutcome:
    original = request.original
    if original is None:
        return unavailable(
            f"no original message of {request.task_id} on this host: Huey keeps none, and the "
            "agent keeps one only where the task failed (within its size and age bounds)"
        )
    huey = adapter.huey
    old = huey.deserialize_task(original.payload)
    # A new task of the same class: the class's own retries and timeout, a new id.
    priority = getattr(old, "priority", None)
    new = type(old)(old.args, old.kwargs, id=request.new_task_id or None, priority=priority)
    huey.enqueue(new)
    return done(new.id)


def cancel(adapter: HueyAdapter, request: CancelRequest) -> ActionOutcome:
    if request.terminate:
        return unavailable("Huey cannot stop a running task")
    adapter.huey.revoke_by_id(request.task_id, revoke_once=True)
    return done()


def purge(adapter: HueyAdapter, queue: str) -> ActionOutcome:
    if queue != adapter.queue:
        return unavailable(f"Huey {adapter.app_name!r} has one queue, {adapter.queue!r}")
    storage = adapter.huey.storage
    count = storage.queue_size()
    storage.flush_queue()
    return done(count=int(count))


def queue_depths(adapter: HueyAdapter) -> list[QueueDepth]:
    huey = adapter.huey
    ready, scheduled = int(huey.pending_count()), int(huey.scheduled_count())
    return [QueueDepth(name=adapter.queue, ready=ready, scheduled=scheduled)]
