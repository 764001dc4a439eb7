"""Capture's cost on the worker's own thread, per task, in-process and without a worker.

taskiq: CPU time (process_time) of `Z4JMiddleware.pre_execute` + `post_execute` on a no-op
message. arq: CPU time of one job's hooks (the wrapped deserializer, `on_job_start`, the
`job_tasks` delete that reports the outcome, `after_job_end`) minus the same loop without them.
The agent is never started (no link thread, no brain): records stay in its in-memory queue,
drained between repeats. Five repeats of N tasks; prints the median, min and max in
microseconds per task; asserts nothing.

Run: python bench/bench_capture_hotpath.py taskiq|arq [--tasks N]
in the engine's bench environment (.venv-bench/taskiq or .venv-bench/arq).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import statistics
import time
from collections.abc import Callable
from typing import Any

REPEATS = 5


def taskiq_runs(tasks: int) -> list[float]:
    from taskiq import TaskiqMessage, TaskiqResult
    from taskiq_redis import ListQueueBroker

    import z4j_taskiq

    broker = ListQueueBroker("redis://127.0.0.1:6379/15")  # never connected
    middleware = z4j_taskiq.Z4JMiddleware(app_name="hotpath", start=False)
    broker.add_middlewares(middleware)
    messages = [
        TaskiqMessage(task_id=f"{i:032x}", task_name="bench.noop", labels={}, args=[i], kwargs={})
        for i in range(tasks)
    ]
    result = TaskiqResult(is_err=False, return_value=None, execution_time=0.0)

    async def main() -> list[float]:  # on a loop, as in a worker (contextvars, running loop)
        runs = []
        for _ in range(REPEATS):
            middleware.agent._records.drain(10**7)
            began = time.process_time()
            for message in messages:
                middleware.pre_execute(message)
                middleware.post_execute(message, result)
            runs.append((time.process_time() - began) / tasks * 1e6)
        return runs

    return asyncio.run(main())


def arq_runs(tasks: int) -> list[float]:
    import z4j_arq
    from z4j_core.agent import default_agent

    async def noop(ctx: dict[str, Any], index: int) -> None:
        return None

    class Settings:
        functions = [noop]

    class FakeWorker:
        retry_jobs = True
        aborting_tasks: set[str] = set()
        queue_name = "arq:queue"
        job_tasks: dict[str, Any] = {}

    settings: Any = z4j_arq.instrument(Settings, start=False)
    agent = default_agent()
    worker = FakeWorker()
    agent.adapters[-1].capture.follow_worker(worker)  # type: ignore[attr-defined]
    loads, on_start, after = (
        settings.job_deserializer,
        settings.on_job_start,
        settings.after_job_end,
    )
    blobs = [pickle.dumps({"t": 1, "f": "noop", "a": (i,), "k": {}, "et": 0}) for i in range(tasks)]

    def drive(coroutine: Any) -> None:
        try:
            coroutine.send(None)
        except StopIteration:
            pass

    def hooks() -> None:
        for i in range(tasks):
            loads(blobs[i])
            ctx = {"job_id": f"{i:032x}", "job_try": 1}
            drive(on_start(ctx))
            worker.job_tasks[ctx["job_id"]] = None
            del worker.job_tasks[ctx["job_id"]]
            drive(after(ctx))

    def bare() -> None:
        tasks_by_id: dict[str, Any] = {}
        for i in range(tasks):
            pickle.loads(blobs[i])
            ctx = {"job_id": f"{i:032x}", "job_try": 1}
            tasks_by_id[ctx["job_id"]] = None
            del tasks_by_id[ctx["job_id"]]

    def cpu(run: Callable[[], None]) -> float:
        began = time.process_time()
        run()
        return time.process_time() - began

    runs = []
    for _ in range(REPEATS):
        agent._records.drain(10**7)
        runs.append((cpu(hooks) - cpu(bare)) / tasks * 1e6)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=("taskiq", "arq"))
    parser.add_argument("--tasks", type=int, default=20_000)
    options = parser.parse_args()
    os.environ.setdefault("Z4J_BRAIN_URL", "ws://127.0.0.1:9")  # never dialled: not started
    os.environ.setdefault("Z4J_TOKEN", "x" * 40)
    os.environ.setdefault("Z4J_SPOOL_DIR", "/tmp/z4j-bench-hotpath")
    runs = (taskiq_runs if options.engine == "taskiq" else arq_runs)(options.tasks)
    print(
        f"{options.engine}: capture on the worker's thread {statistics.median(runs):.2f} us/task "
        f"(min {min(runs):.2f}, max {max(runs):.2f}; {REPEATS} x {options.tasks} tasks)"
    )


if __name__ == "__main__":
    main()
