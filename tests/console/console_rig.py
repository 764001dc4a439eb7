"""The console's browser tests' rig: one real brain and one real Huey consumer (with the agent) for
the whole module, and Playwright for Python driving Debian's Chromium (never a browser that
Playwright downloads). Without /usr/bin/chromium the tests skip with the command that installs
it; with ``CI`` set they fail instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from z4j_core.testing.brainproc import ADMIN_TOKEN, BrainProcess
from z4j_core.testing.browser import CHROMIUM, LAUNCH_ARGS
from z4j_core.testing.sink import Sink, make_brain
from z4j_core.testing.waiting import wait_for

HERE = Path(__file__).parent
#: Where the screenshot test writes: docs/console/ when Z4J_CONSOLE_SCREENSHOTS=docs (how the
#: committed ones are made), else a folder of the run's own (a plain run leaves the tree clean).
SCREENSHOTS = (
    HERE.parent.parent / "docs" / "console"
    if os.environ.get("Z4J_CONSOLE_SCREENSHOTS") == "docs"
    else Path(tempfile.gettempdir()) / f"z4j-console-screenshots-{os.getuid()}"
)
#: How long a browser step may wait for its outcome (a generous deadline, not a measure).
WAIT_MS = 30_000
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 740}


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    why = f"{CHROMIUM} is missing: apt-get install -y chromium"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {why}", pytrace=False)
    pytest.skip(why)


@dataclass
class Rig:
    brain: BrainProcess
    sink: Sink
    app: str
    viewer_token: str
    schedule_id: str

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return self.brain.api(method, "/api/v1" + path, body)

    def run(self, task: str, *args: Any, delay: float | None = None) -> str:
        """Enqueue ``task`` through the brain (to run ``delay`` seconds from now); its id."""
        outcome = self.api(
            "POST",
            "/commands",
            {
                "kind": "enqueue",
                "engine": "huey",
                "app": self.app,
                "task": task,
                "args": list(args),
                "options": {"delay_seconds": delay},
            },
        )
        assert outcome["status"] == "enqueued", outcome
        return str(outcome["native_id"])

    def task(self, task_id: str) -> dict[str, Any] | None:
        rows = self.api("GET", f"/tasks?task_id={task_id}&engine=huey")["tasks"]
        return rows[0] if rows else None

    def wait_state(self, task_id: str, state: str) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            row = self.task(task_id)
            return row if row is not None and row["state"] == state else None

        return wait_for(settled, 30, f"task {task_id} to be {state}")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    _need_chromium()
    work = tmp_path_factory.mktemp("console")
    brain = make_brain(work / "brain")
    token = brain.create_token("console-worker")
    brain.start()
    sink = Sink(work / "worker", brain.url, token, app="console_app", app_dir=HERE)
    try:
        agents = wait_for(
            lambda: [
                a for a in brain.api("GET", "/api/v1/agents?connected=1")["agents"] if a["engines"]
            ],
            30,
            "the console worker's agent",
        )
        app = agents[0]["app"]
        wait_for(lambda: brain.api("GET", "/api/v1/observed")["observed"], 30, "its inventory")
        viewer = brain.api("POST", "/api/v1/operators", {"name": "watcher", "role": "viewer"})
        created = brain.api(
            "POST",
            "/api/v1/schedules",
            {
                "name": "nightly-report",
                "task": "console_app.record",
                "engine": "huey",
                "app": app,
                "schedule": {
                    "kind": "cron",
                    "expression": "0 4 * * *",
                    "timezone": "Europe/Berlin",
                },
            },
        )
        # A schedule firing all along: the overview's fires and the history have something.
        brain.api(
            "POST",
            "/api/v1/schedules",
            {
                "name": "heartbeat",
                "task": "console_app.record",
                "engine": "huey",
                "app": app,
                "schedule": {"kind": "interval", "every": "5s"},
            },
        )
        yield Rig(brain, sink, app, viewer["token"], created["id"])
    finally:
        sink.stop()
        brain.stop()


@dataclass
class Watch:
    """What a page did that it must not: page errors, console errors, dialogs."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"),
        )

        def dialog(d: Any) -> None:
            self.errors.append(f"dialog: {d.message}")
            d.dismiss()

        page.on("dialog", dialog)


@pytest.fixture(scope="module")
def browser(rig: Rig) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(LAUNCH_ARGS)
        )
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(browser: Any, rig: Rig, token: str, viewport: dict[str, int] = LAPTOP) -> Any:
    """A new browser context logged in with ``token`` through the login form; its page."""
    context = browser.new_context(viewport=viewport, base_url=rig.brain.http_url)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto("/")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Overview").wait_for()
    return page


@pytest.fixture
def admin(browser: Any, rig: Rig) -> Iterator[tuple[Any, Watch]]:
    page = log_in(browser, rig, ADMIN_TOKEN)
    watch = Watch()
    watch.attach(page)
    try:
        yield page, watch
    finally:
        page.context.close()
