"""The arq adapter's command path alone: how many `enqueue` commands a second one process
writes into Redis, and the CPU each costs (no agent, no worker, no brain).

    python bench/bench_arq_commands.py                    # 5,000 commands, 1 and 16 threads
    python bench/bench_arq_commands.py --commands 20000 --threads 1 4 16

Each command goes through `ArqAdapter.enqueue` as the agent's command threads call it (a thread
pool of `--threads`), into a Redis database claimed for the run; CPU is the process's user and
system time over the run, per command. What a fire costs the worker process that hosts the
agent, besides the job itself (docs/engines/arq.md). Prints figures; asserts nothing. Needs
Redis on 127.0.0.1:6379 and z4j-arq with arq installed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import resource
import time
import uuid
from typing import Any

from arq.connections import RedisSettings

from z4j_arq.adapter import ArqAdapter
from z4j_core.testing import services
from z4j_core.wire import Command, CommandKind, CommandStatus


async def noop(ctx: dict[str, Any]) -> None:
    pass


def command() -> Command:
    return Command(command_id=uuid.uuid4().hex, kind=CommandKind.ENQUEUE, deadline_seconds=30,
                   engine="arq", app="bench", task="noop")  # fmt: skip


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(database: int, commands: int, threads: int) -> None:
    settings = {"functions": [noop], "redis_settings": RedisSettings(database=database)}
    adapter = ArqAdapter(settings=settings)
    adapter.enqueue(command())  # opens the connections
    batch = [command() for _ in range(commands)]
    began, cpu_began = time.perf_counter(), cpu()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(adapter.enqueue, batch))
    seconds, used = time.perf_counter() - began, cpu() - cpu_began
    enqueued = sum(r.status is CommandStatus.ENQUEUED for r in results)
    rate, each = commands / seconds, used / commands * 1e6
    print(f"{threads:>3} threads: {rate:8,.0f} commands/s, {each:6.0f} us CPU per command, "
          f"{enqueued} of {commands} enqueued")  # fmt: skip
    adapter.uninstall_capture()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 16])
    options = parser.parse_args()
    database = services.claim_redis_database()
    try:
        for threads in options.threads:
            run(database, options.commands, threads)
    finally:
        services.release_redis_database(database)
    print(f"machine: load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
