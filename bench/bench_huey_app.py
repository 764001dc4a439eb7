"""The benchmark's Huey app: one no-op task on RedisHuey, instrumented when BENCH_WITH_AGENT=1.

The first and the last task of a run record the time they ran, so throughput is measured inside
the consumer, from the first task to the last, without the consumer's start-up."""

from __future__ import annotations

import os
import time

from huey import RedisHuey

huey = RedisHuey("z4j-bench", url=os.environ["BENCH_REDIS_URL"], results=False)
if os.environ.get("BENCH_WITH_AGENT") == "1":
    import z4j_huey

    z4j_huey.instrument(huey)


@huey.task()
def noop(index: int, last: int) -> None:
    if index in (0, last):
        with open(os.environ["BENCH_TIMES"], "a") as out:
            out.write(f"{index} {time.perf_counter()}\n")
