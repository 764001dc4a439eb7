"""A toy worker process: the tasks module instrumented with `z4j_tiny`, two worker threads,
until SIGTERM (then the agent drains)."""

from __future__ import annotations

import os
import signal
import threading

import tiny_app
import z4j_tiny

from z4j_core.adapter import agent_of
from z4j_core.testing import conformance


def main() -> None:
    if os.environ.get(conformance.FAULT_ENV):
        conformance.inject_capture_fault()
    z4j_tiny.instrument(tiny_app.tiny)
    tiny_app.tiny.start(threads=2)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    stopping.wait()
    agent = agent_of(tiny_app.tiny)
    if agent is not None:
        agent.stop(5.0)


if __name__ == "__main__":
    main()
