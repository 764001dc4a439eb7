"""A well-behaved agent for the hostile-input tests: emits events at a steady rate until its
stdin closes, then waits until every event is acknowledged and prints a JSON summary.

Usage: python -m z4j_core.testing.steady_agent RATE
(configuration from Z4J_* variables, as a real app would;
STEADY_DRAIN_SECONDS, default 60, bounds the wait for acknowledgements)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from z4j_core.testing.agent_host import make_agent


def main(rate: float) -> None:
    stop = threading.Event()

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    agent = make_agent()
    agent.start()
    emitted = 0
    while not stop.wait(1.0 / rate):
        agent.emit("succeeded", f"steady-{emitted:07d}", "app.tasks.steady", engine="testengine")
        emitted += 1
    deadline = time.monotonic() + float(os.environ.get("STEADY_DRAIN_SECONDS", "60"))
    while time.monotonic() < deadline and agent.stats["acked"] < emitted:
        time.sleep(0.05)
    stats = agent.stats
    agent.stop(5)
    print(json.dumps({"emitted": emitted, **stats}), flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]))
