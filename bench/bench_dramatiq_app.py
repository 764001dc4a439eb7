"""The broker module bench_dramatiq.py runs in `dramatiq` worker processes.

BENCH_AGENT=1 adds the z4j middleware (agent configured from Z4J_* variables); otherwise the
broker is plain Dramatiq. Each worker process keeps the time of its first message start and
of its last message end, and writes them with its message count to BENCH_TIMES_DIR when the
worker shuts down (a middleware hook: worker processes skip atexit).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
if os.environ.get("BENCH_AGENT") == "1":
    import z4j_dramatiq

    broker.add_middleware(z4j_dramatiq.Z4JMiddleware(app_name="bench-dramatiq"))

_lock = threading.Lock()
_first: list[float] = []
_last = [0.0]
_count = [0]


class WriteTimes(dramatiq.Middleware):  # type: ignore[misc]
    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        folder = os.environ.get("BENCH_TIMES_DIR")
        if folder and _first:
            path = os.path.join(folder, f"{os.getpid()}.txt")
            with open(path, "w") as fh:
                fh.write(f"{_first[0]} {_last[0]} {_count[0]}\n")


broker.add_middleware(WriteTimes())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(index: int) -> None:
    now = time.time()
    with _lock:
        if not _first:
            _first.append(now)
        _last[0] = now
        _count[0] += 1
