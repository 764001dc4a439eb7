"""What every fire-latency worker app shares: the sink that counts executions by job id.

Each run of the benchmark task appends its engine job id (for a z4j fire, the id the agent
reported as the fire's native id) as one line to FIRE_SINK; appends of one short line with
O_APPEND are atomic, so processes and threads never interleave. Imports no engine.
"""

from __future__ import annotations

import os

SINK = os.environ.get("FIRE_SINK", "")
REDIS_URL = os.environ.get("FIRE_REDIS_URL", "redis://127.0.0.1:6379/15")
QUEUE = os.environ.get("FIRE_QUEUE", "z4j-fire")


def record(job_id: object) -> None:
    if not SINK:
        return
    fd = os.open(SINK, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{job_id}\n".encode())
    finally:
        os.close(fd)
