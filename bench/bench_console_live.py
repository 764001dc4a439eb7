"""Console live-update benchmark (docs/console.md "Live updates"): how long after a task is sent
through the brain its row is on an open Tasks page, without a reload.

A real brain (SQLite), a real Huey consumer with the agent (the scheduler rig's sink app), and
Chromium through Playwright (Debian's /usr/bin/chromium) logged in on the Tasks page. Each
round sends one task (`POST /api/v1/commands`, which returns once the agent enqueued it) and
waits for its row; the figure is from sending to the row being there, so it includes the
worker running the task and the agent reporting it. Prints figures; asserts nothing.
Run with the console test session's environment:
`.nox/console/bin/python bench/bench_console_live.py [--rounds 20]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchjson import Recorder, add_option

from z4j_core.testing.brainproc import ADMIN_TOKEN
from z4j_core.testing.browser import CHROMIUM, LAUNCH_ARGS
from z4j_core.testing.sink import SINK_TASK, Sink, make_brain
from z4j_core.testing.waiting import wait_for


def main() -> int:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="tasks sent, one at a time (20)")
    add_option(parser)
    options = parser.parse_args()
    recorder = Recorder("console_live", options.json)
    work = Path(tempfile.mkdtemp(prefix="z4j-bench-live-"))
    brain = make_brain(work / "brain")
    token = brain.create_token("sink")
    brain.start()
    sink = Sink(work / "sink", brain.url, token)
    samples: list[float] = []
    try:
        agents = wait_for(
            lambda: brain.api("GET", "/api/v1/agents?connected=1")["agents"], 30, "the sink's agent"
        )
        app = agents[0]["app"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=list(LAUNCH_ARGS)
            )
            page = browser.new_page(base_url=brain.http_url)
            page.goto("/login")
            page.get_by_label("Token").fill(ADMIN_TOKEN)
            page.get_by_role("button", name="Log in").click()
            page.goto("/tasks")
            page.get_by_text("Updates live.").wait_for()
            for _ in range(options.rounds + 1):
                began = time.perf_counter()
                outcome = brain.api(
                    "POST",
                    "/api/v1/commands",
                    {"kind": "enqueue", "engine": "huey", "app": app, "task": SINK_TASK},
                )
                page.get_by_text(str(outcome["native_id"])).wait_for(timeout=30000)
                samples.append((time.perf_counter() - began) * 1000)
            browser.close()
    finally:
        sink.stop()
        brain.stop()
    warm = sorted(samples[1:])
    print(
        f"send to row on the page, {len(warm)} tasks: median {statistics.median(warm):.0f} ms, "
        f"p95 {warm[int(len(warm) * 0.95) - 1]:.0f} ms, max {warm[-1]:.0f} ms"
    )
    recorder.add("send to row on the Tasks page", "ms", warm)
    recorder.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
