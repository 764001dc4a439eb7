"""Many simulated agents in one process, for the reconnect-storm test and benchmark.

Usage: python -m z4j_core.testing.storm_host FIRST COUNT
  (Z4J_BRAIN_URL, STORM_TOKENS: tokens, comma-separated)

Each simulated agent is the agent's own `Link` (the class every real agent runs: backoff with
full jitter, the signed handshake, the outbox, acks) with its own identity, token and outbox;
all of them share this process's one event loop, as an `Agent` runs one link on its own loop.
Every agent sends one event when it first connects and one more after it reconnects.

Writes JSON lines to stdout: {"type": "open", ...} for every session opened, a "status" line
every half second, and a "final" line (per-agent counts) after SIGTERM stops the links.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from typing import Any

from z4j_core import __version__
from z4j_core.agent.config import AgentConfig
from z4j_core.agent.link import Link
from z4j_core.agent.outbox import Outbox, RecordQueue
from z4j_core.wire import PROTOCOL_VERSION, Capability, EngineInfo, Hello

APP = "storm"
ENGINE = "storm"


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class SimulatedAgent:
    """One agent identity: a `Link` with its own outbox, fed one event per (re)connect."""

    def __init__(self, index: int, config: AgentConfig) -> None:
        self.index = index
        self.instance = uuid.uuid4().hex
        self.records = RecordQueue(cap=1000)
        self.opens = 0
        self.link = Link(
            config,
            self.hello,
            Outbox(config.max_memory_events, None),
            records=self.records,
            on_command=lambda command: None,
            on_open=self.opened,
        )
        self.emit("received")  # sent once the first session opens

    def hello(self) -> Hello:
        return Hello(
            protocol_version=PROTOCOL_VERSION,
            agent_instance=self.instance,
            app=APP,
            host=f"{socket.gethostname()}-storm",
            pid=os.getpid(),
            agent_version=__version__,
            engines=[EngineInfo(name=ENGINE, version="1", capabilities=[Capability.LIFECYCLE])],
        )

    def emit(self, kind: str) -> None:
        task_id = f"storm-{self.index:05d}-{self.opens}"
        self.records.push((kind, time.time(), ENGINE, task_id, "storm.tick", None))

    def opened(self, link: Link) -> None:
        self.opens += 1
        if self.opens == 2:
            self.emit("succeeded")  # the event batch of the reconnected session
        say({
            "type": "open", "i": self.index, "n": self.opens, "t": time.time(),
            "instance": self.instance, "connects": link.stats.connects,
        })  # fmt: skip


async def main(first: int, count: int) -> None:
    url = os.environ["Z4J_BRAIN_URL"]
    tokens = os.environ["STORM_TOKENS"].split(",")
    spool = tempfile.mkdtemp(prefix="z4j-storm-")
    agents = [
        SimulatedAgent(
            i,
            AgentConfig(
                brain_url=url, token=tokens[i % len(tokens)], app_name=APP, spool_dir=spool
            ),
        )
        for i in range(first, first + count)
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [asyncio.ensure_future(a.link.run()) for a in agents]
    tasks += [asyncio.ensure_future(a.link.sweep_forever()) for a in agents]

    async def report() -> None:
        while True:
            say({
                "type": "status", "t": time.time(),
                "connected": sum(a.link.connected.is_set() for a in agents),
                "acked": sum(a.link.stats.events_acked for a in agents),
            })  # fmt: skip
            await asyncio.sleep(0.5)

    reporter = asyncio.ensure_future(report())
    await stop.wait()
    reporter.cancel()
    await asyncio.gather(*(a.link.stop(None) for a in agents), return_exceptions=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, reporter, return_exceptions=True)
    say({
        "type": "final",
        "agents": [
            {"i": a.index, "instance": a.instance, "opens": a.opens,
             "connects": a.link.stats.connects, "acked": a.link.stats.events_acked}
            for a in agents
        ],
    })  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
