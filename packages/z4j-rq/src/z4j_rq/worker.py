"""The worker classes: `rq worker -w z4j_rq.Worker` (or `z4j_rq.SimpleWorker`, `SpawnWorker`).

Owns where the agent lives in an RQ worker: the long-lived worker process, never a work horse
(RQ forks or spawns one per job; our only code there sets one flag, so nothing of ours emits or
starts an agent in it, and the agent stays disabled in every process this one forks). Around
each job it emits `started`, then the outcome RQ recorded (`z4j_rq.capture`). The link starts
with the work loop and drains when it ends. Never raises into RQ: every hook falls back to RQ's.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any, ClassVar

from rq.exceptions import AbandonedJobError
from rq.worker import SimpleWorker as RQSimpleWorker
from rq.worker import SpawnWorker as RQSpawnWorker
from rq.worker import Worker as RQWorker

from z4j_core.adapter import count_error
from z4j_rq import capture

log = logging.getLogger("z4j.rq")


def report_abandoned(job: Any, exc_type: Any, exc: Any, tb: Any) -> bool:
    """An RQ exception handler: reports jobs RQ's registry cleanup found abandoned (a module-level
    function, so SpawnWorker can pickle it with the worker's configuration)."""
    try:
        if exc_type is AbandonedJobError and not capture.in_work_horse():
            found = capture.capture_for(job.connection)
            if found is not None:
                found.abandoned(job, getattr(job, "worker_name", None) or "")
    except Exception:
        pass
    return True


class Z4JWorkerMixin:
    """Adds z4j to an RQ worker class. `z4j_options` are agent options (`app_name`, ...)."""

    z4j_options: ClassVar[dict[str, Any]] = {}
    #: Freeze what exists when the work loop starts (modules, the app, the agent) out of the
    #: cyclic GC, so a horse's collections never walk and copy those pages (Python's advice for
    #: pre-fork servers). Only cyclic garbage made before the loop is then never collected.
    z4j_freeze_before_fork: ClassVar[bool] = False
    _z4j_capture: capture.JobCapture | None = None
    _z4j_execution_id: str | None = None
    _z4j_pending: dict[str, Any] | None = None

    def work(self, *args: Any, **kwargs: Any) -> bool:
        agent = self._z4j_attach()
        if self.z4j_freeze_before_fork:
            gc.collect()
            gc.freeze()
        try:
            return super().work(*args, **kwargs)  # type: ignore[misc,no-any-return]
        finally:
            self._z4j_flush()
            if agent is not None:
                agent.stop()

    def _z4j_attach(self) -> Any:
        try:
            from z4j_rq import attach_worker

            capture.mark_worker_process()
            agent, adapter = attach_worker(self, **self.z4j_options)
            self._z4j_capture = adapter.capture
            if report_abandoned not in self._exc_handlers:  # type: ignore[attr-defined]
                self.push_exc_handler(report_abandoned)  # type: ignore[attr-defined]
            return agent
        except Exception:
            log.exception("z4j could not attach to this RQ worker; jobs run without it")
            return None

    def prepare_execution(self, job: Any) -> Any:
        execution = super().prepare_execution(job)  # type: ignore[misc]
        self._z4j_execution_id = getattr(execution, "id", None)
        return execution

    def execute_job(self, job: Any, queue: Any) -> None:
        found = self._z4j_capture
        if found is None:
            super().execute_job(job, queue)  # type: ignore[misc]
            return
        self._z4j_flush()
        name: str = self.name  # type: ignore[attr-defined]
        found.started(job, queue.name, name)
        self._z4j_execution_id = None
        began = time.perf_counter()
        try:
            super().execute_job(job, queue)  # type: ignore[misc]
        finally:
            # RQ's work loop sends a heartbeat right after each job: the outcome read rides
            # in the same round trip (`heartbeat` below), or is flushed on its own.
            self._z4j_pending = {
                "job": job,
                "queue": queue.name,
                "worker": name,
                "execution_id": self._z4j_execution_id,
                "elapsed": time.perf_counter() - began,
            }

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        pending = self._z4j_pending
        if pending is None or pipeline is not None or self._z4j_capture is None:
            super().heartbeat(timeout, pipeline)  # type: ignore[misc]
            return
        self._z4j_pending = None
        try:
            with self.connection.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
                capture.queue_outcome_read(pipe, pending["job"])
                super().heartbeat(timeout, pipe)  # type: ignore[misc]
                replies = pipe.execute()[:2]
        except Exception:
            count_error(self._z4j_capture, "could not read a job's outcome with the heartbeat", log)
            super().heartbeat(timeout)  # type: ignore[misc]
            replies = None  # the outcome is read on its own
        self._z4j_capture.finished(**pending, replies=replies)

    def _z4j_flush(self) -> None:
        """Report a finished job whose outcome did not ride on a heartbeat."""
        pending, self._z4j_pending = self._z4j_pending, None
        if pending is not None and self._z4j_capture is not None:
            self._z4j_capture.finished(**pending)

    def handle_exception(self, job: Any, *exc_info: Any) -> None:
        found = self._z4j_capture
        if found is not None and not self._is_horse:  # type: ignore[attr-defined]
            found.exception(job, exc_info)
        super().handle_exception(job, *exc_info)  # type: ignore[misc]

    def main_work_horse(self, job: Any, queue: Any) -> None:
        capture.mark_horse()  # the horse-side guard: nothing of ours emits in this process
        super().main_work_horse(job, queue)  # type: ignore[misc]


class Worker(Z4JWorkerMixin, RQWorker):
    """RQ's forking worker with z4j: `rq worker -w z4j_rq.Worker`."""

    z4j_freeze_before_fork = True


class SimpleWorker(Z4JWorkerMixin, RQSimpleWorker):
    """RQ's in-process worker with z4j: `rq worker -w z4j_rq.SimpleWorker`."""


class SpawnWorker(Z4JWorkerMixin, RQSpawnWorker):
    """RQ's posix_spawn worker with z4j: `rq worker -w z4j_rq.SpawnWorker`."""
