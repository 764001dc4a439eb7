"""The fire-latency benchmark's Huey app: RedisHuey, the agent attached, one recording task."""

from __future__ import annotations

from typing import Any

from fire_sink import REDIS_URL, record
from huey import RedisHuey

import z4j_huey

huey = z4j_huey.instrument(RedisHuey("z4j-fire", url=REDIS_URL, results=False))


@huey.task(context=True)
def tick(task: Any = None) -> None:
    record(getattr(task, "id", ""))
