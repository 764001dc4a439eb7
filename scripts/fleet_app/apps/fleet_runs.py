"""What every fleet task does: count its own run in Redis, by the job id its engine gave it.

One hash per engine (`fleet:runs:<engine>`), field = the job id (for a z4j fire, the fire id),
value = how many times a worker of that engine ran it. The fleet's view and its test read these
hashes: a field above 1 is a slot that ran twice, a fire id missing from its engine's hash is a
slot that never ran there. Imports only redis-py, which every engine's environment has.
"""

from __future__ import annotations

import os
from typing import Any

from redis import Redis

RUNS_KEY = "fleet:runs:{engine}"


def redis_url() -> str:
    return os.environ["FLEET_REDIS_URL"]


def runs_key(engine: str) -> str:
    return RUNS_KEY.format(engine=engine)


_client: Redis | None = None


def record(engine: str, job_id: str) -> None:
    """Count one run of `job_id` in `engine` (synchronous engines)."""
    global _client
    if _client is None:
        _client = Redis.from_url(redis_url())
    _client.hincrby(runs_key(engine), job_id, 1)


async def record_async(client: Any, engine: str, job_id: str) -> None:
    """Count one run with an asyncio Redis client the engine already holds (arq, taskiq)."""
    await client.hincrby(runs_key(engine), job_id, 1)
