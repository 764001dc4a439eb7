"""A toy task engine for the adapter kit's tests: named tasks, one FIFO queue, worker threads.

It stands for the seventh engine in docs/adapters.md: it knows nothing of z4j. A task is a
function registered under `module.qualname`; `enqueue` returns a job id (the one given, or a
new one) and refuses neither; worker threads run jobs and tell `listeners` what happened
(`enqueued`, `started`, `succeeded`, `retried`, `failed`), synchronously, in the thread where
it happened, the way Huey's signals or Dramatiq's middleware hooks do.
"""

from __future__ import annotations

import itertools
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Listener = Callable[..., None]


@dataclass
class Job:
    id: str
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    tries: int = 0


@dataclass
class TinyQueue:
    name: str = "tiny"
    tasks: dict[str, tuple[Callable[..., Any], int]] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)
    jobs: queue.Queue[Job] = field(default_factory=queue.Queue)

    def task(self, retries: int = 0) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            self.tasks[f"{function.__module__}.{function.__qualname__}"] = (function, retries)
            return function

        return register

    def enqueue(self, name: str, args: Any = (), kwargs: Any = None, job_id: str = "") -> str:
        job = Job(job_id or uuid.uuid4().hex, name, tuple(args), dict(kwargs or {}))
        self._signal("enqueued", job)
        self.jobs.put(job)
        return job.id

    def start(self, threads: int = 1) -> None:
        for number in range(threads):
            threading.Thread(target=self._work, name=f"tiny-{number}", daemon=True).start()

    def _work(self) -> None:
        for _ in itertools.count():
            job = self.jobs.get()
            function, retries = self.tasks[job.name]
            self._signal("started", job)
            try:
                function(*job.args, **job.kwargs)
            except Exception as exc:
                job.tries += 1
                if job.tries <= retries:
                    self._signal("retried", job, exc)
                    self.jobs.put(job)
                else:
                    self._signal("failed", job, exc)
            else:
                self._signal("succeeded", job)

    def _signal(self, kind: str, job: Job, exc: BaseException | None = None) -> None:
        for listener in list(self.listeners):
            listener(kind, job, exc)
